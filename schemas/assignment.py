"""Lifecycle of an assignment of a procedure to a partner structure (docs/domain.md §5.7).

The partner workspace emits ``assignment.status`` when a partner accepts, refuses or closes an
assignment, and when the CCAPEX secretariat overrides orientation by adding or removing a structure;
orientation emits it when an open assignment expires (``by=SYSTEM``, after the configured number of
days without an answer). Orientation keeps each assignment's status and history from these events,
counts capacity from them, and never lets a re-run undo an override: a removed structure is not
assigned again on that procedure until the CCAPEX adds it back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Final, Literal, Self

from pydantic import Field, model_validator

from schemas.common import Contract
from schemas.envelope import Envelope
from schemas.referential import RefId

__all__ = [
    "REFUSAL_REASONS",
    "AssignmentEscalation",
    "AssignmentEscalationEvent",
    "AssignmentOverride",
    "AssignmentStatus",
    "AssignmentStatusChange",
    "AssignmentStatusEvent",
    "EscalationStep",
    "StatusActor",
    "refusal_label",
]

REFUSAL_REASONS: Final[Mapping[str, str]] = {
    "HORS_COMPETENCE": "Hors de nos compétences",
    "HORS_TERRITOIRE": "Hors de notre territoire",
    "DEJA_SUIVI": "Ménage déjà suivi par une autre structure",
    "CAPACITE_ATTEINTE": "Capacité d'accompagnement atteinte",
    "AUTRE": "Autre motif (préciser en commentaire)",
}
"""The refusal codes the workspace offers (the event's ``reason``) and their French labels, in the order
its form lists them; the notifier tells the CCAPEX secretariat the same label."""


def refusal_label(code: str) -> str:
    """The French label of a refusal code; a code outside ``REFUSAL_REASONS`` (a partner system's own)
    reads « Autre motif (code XYZ) », so the secretariat still sees which one."""
    return REFUSAL_REASONS.get(code) or f"Autre motif (code {code})"


class AssignmentStatus(StrEnum):
    """An assignment opens OUVERTE, then is ACCEPTEE, REFUSEE or EXPIREE; it ends CLOTUREE when the partner
    closes it or the CCAPEX removes it. This contract describes one change; orientation applies only the
    allowed transitions (``services/orientation/domain/lifecycle.py``) and records the others, refused."""

    OUVERTE = "OUVERTE"
    ACCEPTEE = "ACCEPTEE"
    REFUSEE = "REFUSEE"
    EXPIREE = "EXPIREE"
    CLOTUREE = "CLOTUREE"


class StatusActor(StrEnum):
    """Who changed the status: the assigned partner, the CCAPEX secretariat, or a timer (expiry)."""

    PARTNER = "PARTNER"
    CCAPEX = "CCAPEX"
    SYSTEM = "SYSTEM"


class AssignmentOverride(StrEnum):
    """A human override of orientation by the CCAPEX secretariat (Art. 22 GDPR: a human stays in the loop)."""

    ADD = "ADD"
    REMOVE = "REMOVE"


class AssignmentStatusChange(Contract):
    """Payload of ``assignment.status``.

    ``reason`` is a code (``HORS_COMPETENCE``, ``DEJA_SUIVI``, ``CAPACITE_ATTEINTE``…), required for a
    refusal. It is deliberately not free text: a partner's comment on a household is a social assessment,
    and those stay out of the event stream (docs/domain.md §8.4).

    Overrides are the CCAPEX's: ``override`` implies ``by=CCAPEX``. ``ADD`` opens an assignment
    (``OUVERTE``) and may come before orientation has given it an id, so ``assignment_id`` is optional
    only for ``ADD``; ``REMOVE`` ends one (``CLOTUREE``).
    """

    assignment_id: uuid.UUID | None = None
    procedure_id: uuid.UUID
    structure_id: RefId
    status: AssignmentStatus
    reason: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$", max_length=64)
    by: StatusActor
    override: AssignmentOverride | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.status is AssignmentStatus.REFUSEE and self.reason is None:
            raise ValueError("a refusal needs a reason code")
        if self.override is not None and self.by is not StatusActor.CCAPEX:
            raise ValueError("only the CCAPEX overrides an orientation (by=CCAPEX)")
        if self.assignment_id is None and self.override is not AssignmentOverride.ADD:
            raise ValueError("assignment_id may only be omitted for an override ADD")
        if self.override is not None and self.status is not _OVERRIDE_STATUS[self.override]:
            raise ValueError(f"override {self.override} sets status {_OVERRIDE_STATUS[self.override]}")
        return self


_OVERRIDE_STATUS: dict[AssignmentOverride, AssignmentStatus] = {
    AssignmentOverride.ADD: AssignmentStatus.OUVERTE,
    AssignmentOverride.REMOVE: AssignmentStatus.CLOTUREE,
}


class AssignmentStatusEvent(Envelope):
    """A status change of one assignment, keyed by ``procedure_id``."""

    event_type: Literal["assignment.status"] = "assignment.status"
    payload: AssignmentStatusChange


class EscalationStep(StrEnum):
    """An assignment still OUVERTE after N working days: first a reminder to its structure, then, M working
    days after the reminder, an alert to the CCAPEX secretariat."""

    STRUCTURE_REMINDER = "STRUCTURE_REMINDER"
    SECRETARIAT_ALERT = "SECRETARIAT_ALERT"


class AssignmentEscalation(Contract):
    """Payload of ``assignment.escalation``: orientation's sweep found ``assignment_id`` still unanswered
    ``working_days`` working days (French public holidays counted) after it opened (``STRUCTURE_REMINDER``)
    or after its reminder (``SECRETARIAT_ALERT``). Each step is published once per assignment; the notifier
    tells the structure, or the secretariat."""

    assignment_id: uuid.UUID
    procedure_id: uuid.UUID
    structure_id: RefId
    step: EscalationStep
    working_days: int = Field(ge=1, le=365)


class AssignmentEscalationEvent(Envelope):
    """An escalation step of one unanswered assignment, keyed by ``procedure_id``."""

    event_type: Literal["assignment.escalation"] = "assignment.escalation"
    payload: AssignmentEscalation
