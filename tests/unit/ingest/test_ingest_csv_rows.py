"""The CSV adapter: encodings, header, French values, one outcome per line whatever the line holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.procedure import EmitterType
from schemas.sources.samples import EXAMPLES_DIR
from services.ingest.domain.csv_rows import COLUMNS, CsvLine, decode_text, parse_csv
from services.ingest.domain.normalise import Accepted, Emitter
from services.ingest.domain.rejections import Rejected

TH = "99990000100015"
HEADER = "reference;etape;date_acte;locataire_nom;locataire_prenom;adresse;code_postal;code_insee;bailleur_type"
VALID = "TH-1;SIGNALEMENT_CAF;02/03/2026;Lefèvre;Zoé;4 rue de Belfort;90000;90010;BAILLEUR_SOCIAL"


def _lines(text: str, encoding: str = "utf-8") -> tuple[CsvLine, ...]:
    parsed = parse_csv(text.encode(encoding), emitter_siret=TH)
    assert parsed.error is None, parsed.error
    return parsed.lines


def _document(line: CsvLine) -> dict[str, Any]:
    assert line.document is not None, line.error
    document: dict[str, Any] = json.loads(line.document, parse_float=Decimal)
    return document


@pytest.mark.parametrize(
    ("data", "encoding", "text"),
    [
        ("Zoé;Lefèvre".encode(), "utf-8", "Zoé;Lefèvre"),
        (b"\xef\xbb\xbfZo\xc3\xa9", "utf-8", "Zoé"),  # byte-order mark dropped
        ("Zoé;œuvre;12 €".encode("cp1252"), "windows-1252", "Zoé;œuvre;12 €"),
        (b"Zo\xe9\x81", "latin-1", "Zoé\x81"),  # 0x81 is no Windows-1252 character
        (b"plain ascii", "utf-8", "plain ascii"),
    ],
)
def test_encoding_is_detected(data: bytes, encoding: str, text: str) -> None:
    assert decode_text(data) == (text, encoding)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no header"),
        (b"\n\n;;\n", "no header"),
        (b"reference,etape,date_acte\nTH-1,X,01/01/2026\n", "separated by ';'"),
        (b"reference;etape;date_acte;loyer\n", "unknown columns: loyer"),
        (b"reference;etape;date_acte;etape\n", "twice"),
        (b"reference;etape\n", "missing columns: date_acte"),
    ],
)
def test_a_header_that_is_not_this_format_refuses_the_file(data: bytes, message: str) -> None:
    parsed = parse_csv(data, emitter_siret=TH)
    assert parsed.lines == ()
    assert parsed.error is not None
    assert (parsed.error.code, parsed.error.field) == ("SCHEMA_INVALID", "csv.header")
    assert message in parsed.error.message


def test_header_names_ignore_case_accents_and_order() -> None:
    [line] = _lines("Date_Acte;ÉTAPE; Référence \n02/03/2026;signalement caf;TH-9\n")
    document = _document(line)
    assert (document["act_date"], document["stage"], document["external_ref"]) == (
        "2026-03-02",
        "SIGNALEMENT_CAF",
        "TH-9",
    )


def test_a_line_becomes_a_bailleur_notice_of_the_authenticated_emitter() -> None:
    header = f"{HEADER};loyer_hc;charges;dette_montant;dette_date;premier_impaye;mois_impayes;tiers_payant;telephone"
    line_text = f"{VALID};420,00;80;1 200,50;28/02/2026;1/2026;2;Oui;06 12 34 56 78"
    [line] = _lines(f"{header}\r\n{line_text}\r\n")
    document = _document(line)
    assert document["format"] == "prevex.bailleur-notice/1"
    assert document["emitter"] == {"siret": TH}
    assert document["tenants"] == [{"last_name": "Lefèvre", "first_name": "Zoé"}]
    assert document["dwelling"] == {
        "address": {"line1": "4 rue de Belfort", "postal_code": "90000", "commune_insee": "90010"}
    }
    assert document["lease"] == {"rent_excl_charges": 420, "charges": 80}
    assert document["debt"] == {
        "amount": Decimal("1200.5"),
        "as_of": "2026-02-28",
        "first_unpaid_month": "2026-01",
        "months_unpaid": 2,
    }
    assert document["household"] == {"caf": {"tiers_payant": True}, "contact": {"mobile": "+33612345678"}}
    assert line.warnings == ("AMOUNT_COERCED",)
    assert line.raw == f"{header}\n{line_text}\n".encode()
    assert (line.line, line.external_ref) == (2, "TH-1")


@pytest.mark.parametrize(
    ("cell", "amount", "coerced"),
    [
        ("1 200,50", Decimal("1200.5"), True),
        ("1\u00a0200,50 €", Decimal("1200.5"), True),
        ("1.200,50", Decimal("1200.5"), True),
        ("600,00", 600, True),
        ("-350,00", -350, True),
        ("600", 600, False),
        ("1200.50", Decimal("1200.5"), False),  # a lone dot is a decimal point
        ("12,345", Decimal("12.345"), True),  # too many decimals: the domain says AMOUNT_INVALID
        ("abc", "abc", False),  # not a number: passed on for AMOUNT_INVALID
        ("1 200,50,00", "1 200,50,00", False),
    ],
)
def test_french_amounts(cell: str, amount: object, coerced: bool) -> None:
    [line] = _lines(f"{HEADER};dette_montant\n{VALID};{cell}\n")
    assert _document(line)["debt"]["amount"] == amount
    assert (line.warnings == ("AMOUNT_COERCED",)) is coerced


@pytest.mark.parametrize(
    ("cell", "iso"),
    [
        ("02/03/2026", "2026-03-02"),
        ("2/3/2026", "2026-03-02"),
        ("2026-03-02", "2026-03-02"),
        ("31/02/2026", "2026-02-31"),
    ],
)
def test_dates_are_read_as_day_month_year(cell: str, iso: str) -> None:
    [line] = _lines(f"reference;etape;date_acte\nTH-1;SIGNALEMENT_CAF;{cell}\n")
    assert _document(line)["act_date"] == iso  # 31/02 is passed on: the domain says DATE_INVALID


def test_every_non_blank_line_is_its_own_record_numbered_as_in_the_file() -> None:
    text = f"{HEADER}\n{VALID}\n\n;;;\n{VALID.replace('TH-1', 'TH-2')}\n   \n"
    assert [(line.line, line.external_ref) for line in _lines(text)] == [(2, "TH-1"), (5, "TH-2")]


def test_quoted_values_may_hold_separators_and_a_broken_quote_spoils_only_its_line() -> None:
    text = f'{HEADER};complement_adresse\n{VALID};"Bât. A; apt 3"\nTH-2;SIGNALEMENT_CAF;"02/03/2026\n{VALID}\n'
    first, broken, third = _lines(text)
    assert _document(first)["dwelling"]["address"]["line2"] == "Bât. A; apt 3"
    assert broken.line == 3
    assert third.line == 4
    assert _document(third)["external_ref"] == "TH-1"


def test_short_lines_are_padded_and_long_ones_rejected() -> None:
    short, long_empty, long = _lines(f"{HEADER}\nTH-1;SIGNALEMENT_CAF;02/03/2026\n{VALID};;\n{VALID};surplus\n")
    assert _document(short)["act_date"] == "2026-03-02"
    assert "tenants" not in _document(short)
    assert long_empty.error is None
    assert long.document is None
    assert long.error is not None
    assert (long.error.code, long.error.field, long.external_ref) == ("SCHEMA_INVALID", "csv.line", "TH-1")


def test_every_documented_column_maps_into_a_valid_notice(run: Callable[..., Accepted | Rejected]) -> None:
    """A line with every column filled normalises without schema errors: the column table matches the format."""
    values = {
        "reference": "TH-ALL-1",
        "dossier": "TH-DOS-1",
        "etape": "CLOTURE",
        "date_acte": "02/03/2026",
        "locataire_nom": "Lefèvre",
        "locataire_prenom": "Zoé",
        "locataire_date_naissance": "01/02/1990",
        "cotitulaire_nom": "Lefèvre",
        "cotitulaire_prenom": "Hugo",
        "adresse": "4 rue de Belfort",
        "complement_adresse": "Bât. A",
        "code_postal": "90000",
        "code_insee": "90010",
        "commune": "Belfort",
        "parc": "social",
        "bailleur_type": "bailleur_social",
        "bailleur_nom": "Territoire habitat",
        "bailleur_siren": "999900001",
        "bail_date_debut": "01/09/2019",
        "loyer_hc": "420",
        "charges": "80",
        "dette_montant": "0",
        "dette_date": "28/02/2026",
        "premier_impaye": "01/2026",
        "mois_impayes": "0",
        "composition": "COUPLE_AVEC_ENFANTS",
        "nb_enfants": "2",
        "allocataire": "oui",
        "organisme_payeur": "caf",
        "tiers_payant": "non",
        "ressources_mensuelles": "1 850,00",
        "telephone": "+33612345678",
        "email": "zoe@example.test",
        "motif_cloture": "DETTE_SOLDEE",
    }
    assert set(values) == {column.name for column in COLUMNS}
    [line] = _lines(";".join(values) + "\n" + ";".join(values.values()) + "\n")
    assert line.document is not None
    emitter = Emitter(TH, EmitterType.BAILLEUR_SOCIAL, "Territoire habitat")
    outcome = run(line.document, emitter=emitter)
    assert isinstance(outcome, Accepted), outcome
    assert len(outcome.notification.household.tenants) == 2


cells = st.text(max_size=12) | st.sampled_from(["", '"', '";"', "02/03/2026", "1 200,50", "\x00", "\u2028", "€"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(cells, max_size=12), max_size=5), encoding=st.sampled_from(["utf-8", "cp1252", "latin-1"])
)
def test_any_line_ends_as_a_record_or_a_coded_refusal(
    rows: list[list[str]], encoding: str, run: Callable[..., Accepted | Rejected]
) -> None:
    text = "\n".join([HEADER, *(";".join(row) for row in rows)])
    parsed = parse_csv(text.encode(encoding, "replace"), emitter_siret=TH)
    assert parsed.error is None
    emitter = Emitter(TH, EmitterType.BAILLEUR_SOCIAL, "Territoire habitat")
    for line in parsed.lines:
        assert line.raw.startswith(HEADER.encode())
        assert (line.document is None) != (line.error is None)
        if line.document is not None:
            outcome = run(line.document, emitter=emitter)
            assert isinstance(outcome, Accepted | Rejected)


def test_the_documented_example_export_is_accepted_line_by_line(run: Callable[..., Accepted | Rejected]) -> None:
    """``schemas/sources/examples/bailleur-export.csv``, the file docs/ingest.md walks through."""
    data = (EXAMPLES_DIR / "bailleur-export.csv").read_bytes()
    parsed = parse_csv(data, emitter_siret=TH)
    assert (parsed.encoding, parsed.error) == ("utf-8", None)
    emitter = Emitter(TH, EmitterType.BAILLEUR_SOCIAL, "Territoire habitat")
    outcomes = [run(line.document, emitter=emitter, clock=date(2026, 3, 31)) for line in parsed.lines]
    assert all(isinstance(outcome, Accepted) for outcome in outcomes), outcomes
    valdoie = outcomes[1]
    assert isinstance(valdoie, Accepted)
    assert valdoie.notification.dwelling.address.commune_insee == "90099"  # found by postal code + name
    assert [line.warnings for line in parsed.lines] == [("AMOUNT_COERCED",), ("AMOUNT_COERCED",), ()]


def test_every_column_is_documented_for_emitters() -> None:
    documentation = (Path(__file__).resolve().parents[3] / "docs" / "ingest.md").read_text("utf-8")
    assert [column.name for column in COLUMNS if f"`{column.name}`" not in documentation] == []
