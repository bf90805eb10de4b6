"""The "sortie de trêve" reminder (docs/domain.md §7, scenario S-06). Pure.

No expulsion may be carried out during the trêve hivernale, 1 November – 31 March (L.412-6 CPCE), so a
procedure served during it gets 1 April as its earliest expulsion date and a NORMAL urgency: its
partners were alerted months before the date that matters. From 1 March, each such procedure is alerted
again, as one ``orientation.decided`` (``trigger`` WINTER_TRUCE_END) that repeats its last decision:

- every structure holding an open or accepted assignment on it gets a STAGE_UPDATE reminder;
- each SIAO or Département structure that its last decision found eligible but did not keep (the cap K
  had been reached) is added as a NEW assignment, unless the CCAPEX removed it from the procedure: when
  the household can be put out in a month, emergency accommodation and the Département's social
  services must be in the loop (S-06: "reminder to assigned structures + SIAO90").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from schemas.orientation import AssignmentKind, DecidedAssignment, DecisionTrigger, OrientationDecided
from schemas.referential import RecordStatus, StructureTypology
from services.orientation.domain.referential import Structure

__all__ = [
    "REMINDER_FROM_MONTH",
    "TRUCE_END_TYPOLOGIES",
    "AddedStructure",
    "structures_to_add",
    "truce_end_ahead",
    "truce_end_payload",
]

REMINDER_FROM_MONTH = 3
"""Reminders go out from 1 March: a month before the first day an expulsion becomes possible again."""
TRUCE_END_TYPOLOGIES = frozenset({StructureTypology.SIAO, StructureTypology.DEPARTEMENT_SERVICE_SOCIAL})
"""Who is added at the end of the trêve when eligible (docs/domain.md §7: SIAO and Département)."""


@dataclass(frozen=True)
class AddedStructure:
    """A structure added to the procedure by the reminder, with the offers it was eligible through."""

    structure_id: str
    offer_ids: tuple[str, ...]
    over_capacity: bool


def truce_end_ahead(today: date) -> date | None:
    """The first day after the trêve (1 April) while reminders are due for it (in March), else ``None``."""
    if today.month != REMINDER_FROM_MONTH:
        return None
    return date(today.year, 4, 1)


def structures_to_add(
    previous: OrientationDecided,
    *,
    structures: Mapping[str, Structure],
    holding: Mapping[str, uuid.UUID],
    removed: frozenset[str],
) -> list[AddedStructure]:
    """SIAO and Département structures of ``previous.also_eligible`` to add, in the decision's order.

    Left out: a structure already ``holding`` an assignment (it gets the reminder as a stage update),
    one the CCAPEX ``removed`` from the procedure (an override stands, docs/domain.md §5.7), and one
    no longer active in the current référentiel (``structures``).
    """
    offers: dict[str, list[str]] = {}
    over_capacity: dict[str, bool] = {}
    for offer in previous.also_eligible:
        structure = structures.get(offer.structure_id)
        if (
            structure is None
            or structure.status is not RecordStatus.ACTIVE
            or structure.typologie not in TRUCE_END_TYPOLOGIES
            or offer.structure_id in holding
            or offer.structure_id in removed
        ):
            continue
        offers.setdefault(offer.structure_id, []).append(offer.offer_id)
        over_capacity[offer.structure_id] = over_capacity.get(offer.structure_id, False) or offer.over_capacity
    return [AddedStructure(sid, tuple(ids), over_capacity[sid]) for sid, ids in offers.items()]


def truce_end_payload(
    previous: OrientationDecided,
    *,
    truce_end: date,
    holding: Mapping[str, uuid.UUID],
    added: Sequence[AddedStructure],
    new_id: Callable[[], uuid.UUID],
    referentiel_version: int,
) -> OrientationDecided | None:
    """The reminder decision for a procedure whose last decision is ``previous``; ``None`` when there is
    nobody to remind (no structure holds it and none is added: its last alerts went to the CCAPEX).

    ``holding`` maps structure id → open assignment id; ``new_id`` gives the ids of the added ones. The
    previous decision's offers and rules are kept for the structures it assigned.
    """
    before = {assignment.structure_id: assignment for assignment in previous.assignments}
    order = {structure_id: position for position, structure_id in enumerate(before)}
    reminders = [
        _reminder(before.get(structure_id), structure_id, holding[structure_id], truce_end)
        # The previous decision's order, then structures added since (by a CCAPEX override) by id.
        for structure_id in sorted(holding, key=lambda sid: (order.get(sid, len(order)), sid))
    ]
    additions = [_addition(structure, new_id(), previous, truce_end) for structure in added]
    if not reminders and not additions:
        return None
    return previous.model_copy(
        update={
            "earliest_expulsion_date": truce_end,
            "is_correction": False,
            "referentiel_version": referentiel_version,
            "assignments": [*reminders, *additions],
            "also_eligible": [],
            "fallback_used": False,
            "trigger": DecisionTrigger.WINTER_TRUCE_END,
        }
    )


def _reminder(
    before: DecidedAssignment | None, structure_id: str, assignment_id: uuid.UUID, truce_end: date
) -> DecidedAssignment:
    explanation = (
        f"end of the winter truce: expulsion possible from {truce_end.isoformat()}; reminder to the"
        " structures holding the procedure (docs/domain.md §7)"
    )
    # What the last decision matched the structure on stays visible; one added since has nothing to show.
    base = before or DecidedAssignment(
        assignment_id=assignment_id,
        structure_id=structure_id,
        offer_ids=[],
        kind=AssignmentKind.STAGE_UPDATE,
        mandatory=False,
        priority=0,
        over_capacity=False,
        matched_rules=[],
        explanation=explanation,
    )
    update = {
        "assignment_id": assignment_id,
        "kind": AssignmentKind.STAGE_UPDATE,
        "over_capacity": False,
        "explanation": explanation,
    }
    return base.model_copy(update=update)


def _addition(
    structure: AddedStructure, assignment_id: uuid.UUID, previous: OrientationDecided, truce_end: date
) -> DecidedAssignment:
    return DecidedAssignment(
        assignment_id=assignment_id,
        structure_id=structure.structure_id,
        offer_ids=list(structure.offer_ids),
        kind=AssignmentKind.NEW,
        mandatory=False,
        priority=0,
        over_capacity=structure.over_capacity,
        matched_rules=[],
        explanation=f"eligible at {previous.stage.value} but not kept then; added at the end of the winter truce"
        f" (expulsion possible from {truce_end.isoformat()}, docs/domain.md §7)",
    )
