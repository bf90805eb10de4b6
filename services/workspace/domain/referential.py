"""The référentiel as partners browse it: structures and offers in plain French, filtered (pure).

The référentiel topic carries each structure's offers by name, stages and zone (since its schema 1.1),
and its contacts; who is eligible beyond that stays inside orientation. The search is by name, stage,
kind of structure and **commune**: a commune's name or INSEE code, found in the COG ingest ships
(``services/ingest/domain/cog.py``), keeps the offers whose zone covers it by the référentiel's own rule
(``Zone.covering_entry``, the one orientation's matching applies). An offer published without its zone
(a 1.0 record) is not listed for a commune: whether it covers it is unknown.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from schemas.referential import OfferSummary, RecordStatus, StructureRecord, StructureTypology, Zone, ZoneKind
from schemas.stages import Stage, stage_label
from services.ingest.domain.cog import Commune, load_packaged_document, name_key, parse_communes
from services.workspace.domain.labels import label

__all__ = ["CommuneFinder", "OfferLine", "StructureCard", "covers", "search_structures", "zone_text"]

_INSEE = re.compile(r"^[0-9][0-9AB][0-9]{3}$")


class CommuneFinder:
    """Communes by INSEE code or by name (case, accents, hyphens and « St » ignored: ``name_key``)."""

    def __init__(self, communes: Iterable[Commune]) -> None:
        self._by_insee: dict[str, Commune] = {}
        self._by_name: dict[str, list[Commune]] = {}
        for commune in communes:
            self._by_insee[commune.insee] = commune
            self._by_name.setdefault(name_key(commune.name), []).append(commune)

    @staticmethod
    def packaged() -> CommuneFinder:
        """Over the COG shipped with the package (read once per process, at the first search)."""
        return _packaged_finder()

    def find(self, text: str) -> tuple[Commune, ...]:
        """The commune with this INSEE code, or every commune with this name (several share one)."""
        wanted = text.strip().upper()
        if _INSEE.match(wanted):
            found = self._by_insee.get(wanted)
            return (found,) if found else ()
        return tuple(sorted(self._by_name.get(name_key(text), ()), key=lambda c: c.insee))

    def name(self, insee: str) -> str | None:
        found = self._by_insee.get(insee)
        return found.name if found else None


@functools.cache
def _packaged_finder() -> CommuneFinder:
    return CommuneFinder(parse_communes(load_packaged_document()))


@dataclass(frozen=True, slots=True)
class OfferLine:
    name: str
    stages: str
    mandatory: str
    where: str
    description: str
    conditions: str


@dataclass(frozen=True, slots=True)
class StructureCard:
    """One structure as the référentiel page shows it."""

    structure_id: str
    name: str
    kind: str
    contacts: list[str]
    offers: list[OfferLine]


def _fold(text: str) -> str:
    # Accent- and case-insensitive: « ccas », « Défense » and « defense » all match.
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def _stages(stages: Iterable[Stage]) -> str:
    listed = [stage_label(stage) for stage in stages]
    return ", ".join(listed) if listed else "toutes les étapes"


def covers(zone: Zone | None, communes: Sequence[Commune]) -> bool:
    """Whether ``zone`` covers one of ``communes`` (the référentiel's rule); an unknown zone covers none."""
    return zone is not None and any(
        zone.covering_entry(c.insee, c.departement, c.epci_siren) is not None for c in communes
    )


_KIND_WORDS = {ZoneKind.DEPARTEMENT: "département", ZoneKind.EPCI: "intercommunalité (SIREN)"}


def zone_text(zone: Zone | None, commune_name: Callable[[str], str | None] = lambda _: None) -> str:
    """Where an offer applies, in French: « département 90 ; Belfort (90010) ; sauf Danjoutin (90033) »."""
    if zone is None:
        return "territoire non publié"

    def commune(code: str) -> str:
        name = commune_name(code)
        return f"{name} ({code})" if name else f"commune {code}"

    parts = [commune(e.code) if e.kind is ZoneKind.COMMUNE else f"{_KIND_WORDS[e.kind]} {e.code}" for e in zone.include]
    if zone.exclude_communes:
        parts.append("sauf " + ", ".join(commune(code) for code in sorted(zone.exclude_communes)))
    return " ; ".join(parts)


def _offers(
    record: StructureRecord, stage: Stage | None, communes: Sequence[Commune] | None
) -> list[OfferSummary] | None:
    """The record's active offers left by the stage and commune filters; ``None`` when a filter leaves none."""
    offers = [o for o in record.offers if o.status is RecordStatus.ACTIVE]
    if stage is not None:
        offers = [o for o in offers if not o.stages or stage in o.stages]
    if communes is not None:
        offers = [o for o in offers if covers(o.zone, communes)]
    return None if (stage is not None or communes is not None) and not offers else offers


def search_structures(
    records: Iterable[StructureRecord],
    *,
    text: str = "",
    stage: Stage | None = None,
    kind: StructureTypology | None = None,
    communes: Sequence[Commune] | None = None,
    commune_name: Callable[[str], str | None] = lambda _: None,
) -> list[StructureCard]:
    """The active structures matching every filter given, by name: ``text`` in the structure's or an
    offer's name, an active offer applying at ``stage``, the structure of ``kind``, an active offer whose
    zone covers one of ``communes`` (``None``: no commune filter; empty: nothing matches). ``commune_name``
    names the communes of the zones shown."""
    wanted = _fold(text.strip())
    cards = []
    for record in records:
        if record.status is not RecordStatus.ACTIVE or (kind is not None and record.typologie is not kind):
            continue
        offers = _offers(record, stage, communes)
        if offers is None:
            continue
        if wanted and wanted not in _fold(record.nom) and not any(wanted in _fold(o.nom) for o in offers):
            continue
        cards.append(
            StructureCard(
                structure_id=record.structure_id,
                name=record.nom,
                kind=label(record.typologie),
                contacts=[
                    " – ".join(p for p in (c.label, c.email) if p) for c in record.contacts if c.is_generic_mailbox
                ],
                offers=[
                    OfferLine(
                        o.nom,
                        _stages(o.stages),
                        _stages(o.mandatory_stages) if o.mandatory_stages else "",
                        zone_text(o.zone, commune_name),
                        o.description or "",
                        o.conditions_acces or "",
                    )
                    for o in offers
                ],
            )
        )
    return sorted(cards, key=lambda card: _fold(card.name))
