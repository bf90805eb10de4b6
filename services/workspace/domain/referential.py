"""The référentiel as partners browse it: structures and offers in plain French, filtered (pure).

The référentiel topic carries each structure's offers by name and stages, and its contacts; which
communes an offer covers and who is eligible stay inside orientation (the topic does not carry them),
so the search here is by name, stage and kind of structure.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from schemas.referential import RecordStatus, StructureRecord, StructureTypology
from schemas.stages import Stage, stage_label
from services.workspace.domain.labels import label

__all__ = ["OfferLine", "StructureCard", "search_structures"]


@dataclass(frozen=True, slots=True)
class OfferLine:
    name: str
    stages: str
    mandatory: str


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


def search_structures(
    records: Iterable[StructureRecord],
    *,
    text: str = "",
    stage: Stage | None = None,
    kind: StructureTypology | None = None,
) -> list[StructureCard]:
    """The active structures matching every filter given, by name: ``text`` in the structure's or an
    offer's name, an active offer applying at ``stage``, the structure of ``kind``."""
    wanted = _fold(text.strip())
    cards = []
    for record in records:
        if record.status is not RecordStatus.ACTIVE or (kind is not None and record.typologie is not kind):
            continue
        offers = [o for o in record.offers if o.status is RecordStatus.ACTIVE]
        if stage is not None:
            offers = [o for o in offers if not o.stages or stage in o.stages]
            if not offers:
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
                    OfferLine(o.nom, _stages(o.stages), _stages(o.mandatory_stages) if o.mandatory_stages else "")
                    for o in offers
                ],
            )
        )
    return sorted(cards, key=lambda card: _fold(card.name))
