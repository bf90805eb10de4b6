"""What a partner may do with its assignment, and the ``assignment.status`` change each action is (pure).

The transition rules are orientation's (``services.orientation.domain.lifecycle``), imported rather than
restated: the workspace offers exactly the actions orientation will apply, and folds the events it reads
back with the same rules, so both agree on every assignment's status.

Reasons are codes in the event (the contract forbids free text there: a comment on a household is a
social assessment); the partner's free-text comment stays in the workspace's own table.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from schemas.assignment import REFUSAL_REASONS, AssignmentStatus, AssignmentStatusChange, StatusActor
from services.orientation.domain.lifecycle import ALLOWED_TRANSITIONS, Verdict, check_change

__all__ = [
    "CLOSURE_REASONS",
    "COMMENT_MAX_LENGTH",
    "REFUSAL_REASONS",
    "Action",
    "ActionError",
    "Fold",
    "allowed_actions",
    "fold_status",
    "status_change",
]

COMMENT_MAX_LENGTH = 1000


class Action(StrEnum):
    ACCEPT = "ACCEPT"
    REFUSE = "REFUSE"
    CLOSE = "CLOSE"


_TARGET: Final[Mapping[Action, AssignmentStatus]] = {
    Action.ACCEPT: AssignmentStatus.ACCEPTEE,
    Action.REFUSE: AssignmentStatus.REFUSEE,
    Action.CLOSE: AssignmentStatus.CLOTUREE,
}

CLOSURE_REASONS: Final[Mapping[str, str]] = {
    "DETTE_SOLDEE": "Dette soldée",
    "PLAN_APUREMENT_SIGNE": "Plan d'apurement signé",
    "RELOGE": "Ménage relogé",
    "ACCOMPAGNEMENT_TERMINE": "Accompagnement terminé",
    "MENAGE_INJOIGNABLE": "Ménage injoignable",
    "AUTRE": "Autre motif (préciser en commentaire)",
}
"""Closure codes and their labels."""

_REASONS: Final[Mapping[Action, Mapping[str, str]]] = {
    Action.ACCEPT: {},
    Action.REFUSE: REFUSAL_REASONS,
    Action.CLOSE: CLOSURE_REASONS,
}


class ActionError(ValueError):
    """The action cannot be taken: ``code`` says why (shown to the partner, logged)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def allowed_actions(status: AssignmentStatus) -> list[Action]:
    """The actions a partner may take on an assignment in ``status``, in the order the page offers them."""
    return [action for action in Action if _TARGET[action] in ALLOWED_TRANSITIONS[status]]


def status_change(
    action: Action,
    *,
    assignment_id: uuid.UUID,
    procedure_id: uuid.UUID,
    structure_id: str,
    current: AssignmentStatus,
    reason: str | None,
) -> AssignmentStatusChange:
    """The change ``action`` publishes, or ``ActionError``: ``NOT_ALLOWED`` (the status forbids it),
    ``REASON_REQUIRED`` / ``REASON_UNKNOWN`` (refuse and close need a code from their list)."""
    if action not in allowed_actions(current):
        raise ActionError("NOT_ALLOWED", f"{action} is not allowed from {current}")
    reasons = _REASONS[action]
    if reasons and not reason:
        raise ActionError("REASON_REQUIRED", "choose a reason")
    if reason and reason not in reasons:
        raise ActionError("REASON_UNKNOWN", "unknown reason")
    return AssignmentStatusChange(
        assignment_id=assignment_id,
        procedure_id=procedure_id,
        structure_id=structure_id,
        status=_TARGET[action],
        reason=reason or None,
        by=StatusActor.PARTNER,
    )


@dataclass(frozen=True, slots=True)
class Fold:
    """An ``assignment.status`` event folded into an assignment: its status afterwards and the verdict."""

    status: AssignmentStatus
    verdict: Verdict
    detail: str


def fold_status(current: AssignmentStatus, change: AssignmentStatusChange) -> Fold:
    """Apply ``change`` to an assignment in ``current`` with orientation's rules (a REMOVE closes it)."""
    check = check_change(current, change)
    if check.verdict is not Verdict.APPLIED:
        return Fold(current, check.verdict, check.detail)
    return Fold(change.status, check.verdict, check.detail)
