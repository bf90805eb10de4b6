"""CSV exports of bailleur software → one ``prevex.bailleur-notice/1`` document per line (pure, no I/O).

The file format (documented for emitters in ``docs/ingest.md``):

- **Encoding**: UTF-8 when the whole file is valid UTF-8 (a leading byte-order mark is dropped);
  otherwise Windows-1252, the "ANSI" encoding French spreadsheet software writes (a superset of Latin-1's
  printable characters, with ``€``, ``œ`` and typographic quotes); otherwise Latin-1 (ISO-8859-1), which
  reads any byte. Text that is valid UTF-8 but meant as Latin-1 is only possible with unusual byte pairs
  such as ``Ã©``, so the order is safe for real exports.
- **Layout**: ``;``-separated, ``"``-quoted when a value holds a ``;``; the first line is the header, with
  the column names of :data:`COLUMNS` in any order (case, accents and spaces ignored). A record is one
  line: a quoted value cannot span lines, so an unbalanced quote spoils one line, never the next ones.
  Blank lines, and lines of separators only, are skipped.
- **Values**: dates ``jj/mm/aaaa`` (ISO ``aaaa-mm-jj`` also read), months ``mm/aaaa``, amounts in the
  French style (``1 200,50``, ``1.200,50 €``; a plain ``1200.50`` too), codes as in the JSON format
  (case-insensitive), ``oui``/``non`` for yes/no, French mobile numbers (``06 12 34 56 78``) or E.164.

Each line becomes a raw input of its own: the header and the line, stored as UTF-8 text. A value the
adapter cannot convert is passed on unchanged, so the domain rejects it with its own code
(``DATE_INVALID``, ``AMOUNT_INVALID``, ``SCHEMA_INVALID``...), the same as over the JSON API. Reading a
French amount is a coercion the JSON API never does (docs/domain.md §9.8): the line is marked
``AMOUNT_COERCED``.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from schemas.sources import BAILLEUR_NOTICE_FORMAT
from services.ingest.domain.rejections import RejectionCode, RejectionError, WarningCode

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "Column",
    "CsvFile",
    "CsvLine",
    "decode_text",
    "parse_csv",
]

DELIMITER: Final = ";"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # not str.splitlines: Latin-1 byte 0x85 would split a line
_BLANK = re.compile(r"^[\s;]*$")
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_FRENCH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_FRENCH_MONTH = re.compile(r"^(\d{1,2})/(\d{4})$")
_INTEGER = re.compile(r"^\d+$")
_FRENCH_MOBILE = re.compile(r"^0([67]\d{8})$")
_PHONE_PUNCTUATION = re.compile(r"[\s.\-()\u00a0]")
_BOOLEANS = {"oui": True, "o": True, "vrai": True, "true": True, "1": True, "non": False, "n": False, "faux": False}
_BOOLEANS |= {"false": False, "0": False}
_MAX_REPORTED_COLUMNS = 10
_MAX_REFERENCE = 128  # schemas.ingest.ExternalRef


@dataclass(frozen=True, slots=True)
class _Cell:
    """A converted cell: the value for the JSON document, and whether a French amount was coerced."""

    value: Any
    coerced: bool = False


def _text(cell: str) -> _Cell:
    return _Cell(cell)


def _code(cell: str) -> _Cell:
    return _Cell(_SPACES.sub("_", cell).upper())


def _date(cell: str) -> _Cell:
    found = _FRENCH_DATE.match(cell)
    return _Cell(f"{found[3]}-{int(found[2]):02d}-{int(found[1]):02d}" if found else cell)


def _month(cell: str) -> _Cell:
    found = _FRENCH_MONTH.match(cell)
    return _Cell(f"{found[2]}-{int(found[1]):02d}" if found else cell)


def _integer(cell: str) -> _Cell:
    return _Cell(int(cell) if _INTEGER.match(cell) and len(cell) <= 9 else cell)


def _boolean(cell: str) -> _Cell:
    value = _BOOLEANS.get(cell.lower())
    return _Cell(cell if value is None else value)


def _mobile(cell: str) -> _Cell:
    compact = _PHONE_PUNCTUATION.sub("", cell)
    found = _FRENCH_MOBILE.match(compact)
    return _Cell(f"+33{found[1]}" if found else compact)


def _amount(cell: str) -> _Cell:
    """``1 200,50`` → 1200.5. Whatever does not read as a number stays text (the domain says AMOUNT_INVALID)."""
    if _PLAIN_NUMBER.match(cell):
        return _Cell(_json_number(Decimal(cell)))
    compact = _SPACES.sub("", cell).removesuffix("€").removesuffix("EUR")
    if "," in compact:
        compact = compact.replace(".", "").replace(",", ".")
    if not _PLAIN_NUMBER.match(compact):
        return _Cell(cell)
    try:
        return _Cell(_json_number(Decimal(compact)), coerced=True)
    except InvalidOperation:  # pragma: no cover - the pattern only lets valid decimals through
        return _Cell(cell)


def _json_number(value: Decimal) -> int | float:
    # An amount with at most 2 decimals and 12 digits is exactly represented by its float's repr, which is
    # how json.dumps writes it; with more decimals the domain rejects it (AMOUNT_INVALID) all the same.
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True, slots=True)
class Column:
    """A CSV column: where its value goes in the bailleur notice, and how the text is read."""

    name: str
    path: str
    read: Callable[[str], _Cell]
    description: str


COLUMNS: Final[tuple[Column, ...]] = (
    Column("reference", "external_ref", _text, "référence de l'acte chez l'émetteur (unique par acte)"),
    Column("dossier", "procedure_ref", _text, "numéro de dossier de l'émetteur ou EXPLOC"),
    Column("etape", "stage", _code, "code d'étape : IMPAYE_CONSTATE, SIGNALEMENT_CAF, SAISINE_CCAPEX_BAILLEUR…"),
    Column("date_acte", "act_date", _date, "jj/mm/aaaa"),
    Column("locataire_nom", "tenants.0.last_name", _text, "nom du locataire titulaire"),
    Column("locataire_prenom", "tenants.0.first_name", _text, "prénom du locataire titulaire"),
    Column("locataire_date_naissance", "tenants.0.birth_date", _date, "jj/mm/aaaa"),
    Column("cotitulaire_nom", "tenants.1.last_name", _text, "nom d'un second titulaire du bail"),
    Column("cotitulaire_prenom", "tenants.1.first_name", _text, "prénom du second titulaire"),
    Column("adresse", "dwelling.address.line1", _text, "numéro et voie"),
    Column("complement_adresse", "dwelling.address.line2", _text, "bâtiment, étage, appartement"),
    Column("code_postal", "dwelling.address.postal_code", _text, "5 chiffres"),
    Column("code_insee", "dwelling.address.commune_insee", _text, "code INSEE (ou code postal + commune)"),
    Column("commune", "dwelling.address.commune_name", _text, "nom de la commune"),
    Column("parc", "dwelling.parc", _code, "SOCIAL, PRIVE ou INCONNU (déduit du type de bailleur si vide)"),
    Column("bailleur_type", "landlord.type", _code, "BAILLEUR_SOCIAL, PERSONNE_MORALE_PRIVEE, PERSONNE_PHYSIQUE…"),
    Column("bailleur_nom", "landlord.name", _text, "nom du bailleur"),
    Column("bailleur_siren", "landlord.siren", _text, "SIREN du bailleur (9 chiffres)"),
    Column("bail_date_debut", "lease.start_date", _date, "jj/mm/aaaa"),
    Column("loyer_hc", "lease.rent_excl_charges", _amount, "loyer mensuel hors charges, en euros"),
    Column("charges", "lease.charges", _amount, "charges mensuelles, en euros"),
    Column("dette_montant", "debt.amount", _amount, "montant de la dette, en euros"),
    Column("dette_date", "debt.as_of", _date, "date d'arrêté de la dette, jj/mm/aaaa"),
    Column("premier_impaye", "debt.first_unpaid_month", _month, "mois du premier impayé, mm/aaaa"),
    Column("mois_impayes", "debt.months_unpaid", _integer, "nombre de mois impayés"),
    Column("composition", "household.composition", _code, "PERSONNE_SEULE, COUPLE_SANS_ENFANT, MONOPARENTALE…"),
    Column("nb_enfants", "household.children_count", _integer, "nombre d'enfants"),
    Column("allocataire", "household.caf.allocataire", _code, "OUI, NON ou INCONNU"),
    Column("organisme_payeur", "household.caf.organisme", _code, "CAF ou MSA"),
    Column("tiers_payant", "household.caf.tiers_payant", _boolean, "oui / non"),
    Column("ressources_mensuelles", "household.monthly_resources", _amount, "ressources mensuelles, en euros"),
    Column("telephone", "household.contact.mobile", _mobile, "mobile du ménage (06…, 07… ou +33…)"),
    Column("email", "household.contact.email", _text, "courriel du ménage"),
    Column("motif_cloture", "cloture.reason", _code, "CLOTURE : DETTE_SOLDEE, DEPART_VOLONTAIRE…"),
)
"""The documented column set, in the order of the example export (``schemas/sources/examples/*.csv``)."""

REQUIRED_COLUMNS: Final = frozenset({"reference", "etape", "date_acte"})
_BY_NAME = {column.name: column for column in COLUMNS}


@dataclass(frozen=True, slots=True)
class CsvLine:
    """One record of the file, ready to be stored and processed as a raw input.

    ``raw`` is the header line and this line, UTF-8 encoded: what is stored. ``document`` is the bailleur
    notice built from it (``None`` when the line could not be split into its cells, ``error`` then says
    why). ``external_ref`` is the line's reference, for the report, when it has one.
    """

    line: int
    raw: bytes
    document: bytes | None
    error: RejectionError | None
    warnings: tuple[str, ...]
    external_ref: str | None


@dataclass(frozen=True, slots=True)
class CsvFile:
    """A parsed file: its encoding and lines, or the reason it could not be read as a whole."""

    encoding: str
    lines: tuple[CsvLine, ...]
    error: RejectionError | None = None


def decode_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding)``: UTF-8 (BOM dropped) if valid, else Windows-1252, else Latin-1 (see module doc)."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _column_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.strip().lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\s\-]+", "_", plain)


def _split(line: str) -> list[str]:
    """The cells of one line; raises ``csv.Error`` for a line the csv module refuses (NUL, huge field)."""
    return next(csv.reader([line], delimiter=DELIMITER, quotechar='"', strict=False), [])


def _header_error(message: str) -> RejectionError:
    return RejectionError(RejectionCode.SCHEMA_INVALID.value, "csv.header", message)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_REPORTED_COLUMNS])
    return shown + (f" (+{len(names) - _MAX_REPORTED_COLUMNS} more)" if len(names) > _MAX_REPORTED_COLUMNS else "")


def _read_header(line: str) -> tuple[Column, ...] | RejectionError:
    """The header's columns, or why it is not this format's header (unknown names are refused, not dropped)."""
    try:
        names = [_column_key(cell) for cell in _split(line)]
    except csv.Error:
        return _header_error("the header line cannot be read as ';'-separated values")
    if len(names) == 1 and ("," in line or "\t" in line):
        return _header_error("columns must be separated by ';'")
    # Quoted back to the emitter and stored (jsonb): a control character, NUL above all, is shown as "?".
    unknown = ["".join(c if c.isprintable() else "?" for c in name[:40]) for name in names if name not in _BY_NAME]
    if unknown:
        return _header_error(f"unknown columns: {_listed(unknown)}")
    if len(set(names)) != len(names):
        return _header_error("a column appears twice")
    missing = sorted(REQUIRED_COLUMNS - set(names))
    if missing:
        return _header_error(f"missing columns: {', '.join(missing)}")
    return tuple(_BY_NAME[name] for name in names)


def _put(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path, creating objects, and lists for numeric parts (``tenants.0``)."""
    parts = path.split(".")
    target: Any = document
    for part, following in itertools.pairwise(parts):
        if isinstance(target, list):
            index = int(part)
            while len(target) <= index:
                target.append({})
            target = target[index]
        else:
            target = target.setdefault(part, [] if following.isdigit() else {})
    target[parts[-1]] = value


def _document(columns: tuple[Column, ...], cells: list[str], emitter_siret: str) -> tuple[dict[str, Any], bool]:
    """The bailleur notice of one line (empty cells left out) and whether an amount was coerced."""
    document: dict[str, Any] = {"format": BAILLEUR_NOTICE_FORMAT, "emitter": {"siret": emitter_siret}}
    coerced = False
    for column, cell in zip(columns, cells, strict=False):
        text = cell.strip()
        if text:
            converted = column.read(text)
            coerced = coerced or converted.coerced
            _put(document, column.path, converted.value)
    return document, coerced


def _reference(columns: tuple[Column, ...], cells: list[str]) -> str | None:
    """The line's ``reference`` for reports, if usable as one (1-128 printable characters)."""
    for column, cell in zip(columns, cells, strict=False):
        if column.name == "reference":
            reference = cell.strip()
            return reference if 0 < len(reference) <= _MAX_REFERENCE and reference.isprintable() else None
    return None


def _line_of(number: int, header: str, text: str, columns: tuple[Column, ...], emitter_siret: str) -> CsvLine:
    raw = f"{header}\n{text}\n".encode()
    try:
        cells = _split(text)
    except csv.Error:
        error = RejectionError(RejectionCode.SCHEMA_INVALID.value, "csv.line", "the line cannot be read as CSV")
        return CsvLine(number, raw, None, error, (), None)
    external_ref = _reference(columns, cells)
    extra = cells[len(columns) :]
    if any(cell.strip() for cell in extra):
        message = f"expected at most {len(columns)} ';'-separated values, found {len(cells)}"
        error = RejectionError(RejectionCode.SCHEMA_INVALID.value, "csv.line", message)
        return CsvLine(number, raw, None, error, (), external_ref)
    document, coerced = _document(columns, cells, emitter_siret)
    warnings = (WarningCode.AMOUNT_COERCED.value,) if coerced else ()
    body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
    return CsvLine(number, raw, body, None, warnings, external_ref)


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the non-blank lines, numbered from 1 like an editor does."""
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not _BLANK.match(line):
            yield number, line


def parse_csv(data: bytes, *, emitter_siret: str) -> CsvFile:
    """Every record of a CSV export as a :class:`CsvLine`; a file-level problem as ``CsvFile.error``.

    ``emitter_siret`` is the authenticated emitter: the notices claim it, as the CSV has no emitter column.
    Never raises because of ``data``.
    """
    text, encoding = decode_text(data)
    lines = _numbered_lines(text)
    first = next(lines, None)
    if first is None:
        return CsvFile(encoding, (), _header_error("the file has no header line"))
    header = first[1]
    columns = _read_header(header)
    if isinstance(columns, RejectionError):
        return CsvFile(encoding, (), columns)
    return CsvFile(encoding, tuple(_line_of(n, header, line, columns, emitter_siret) for n, line in lines))
