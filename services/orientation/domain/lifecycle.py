"""The life of an assignment: which status changes are allowed, by whom (docs/domain.md §5.7).

    OUVERTE ──► ACCEPTEE ──► CLOTUREE
       │  ├───► REFUSEE (reason code)
       │  └───► EXPIREE (the timer, after N days without an answer; DORA: 30)
       └──────► CLOTUREE

REFUSEE, EXPIREE and CLOTUREE are final: a structure asked again later gets a new assignment. A partner
answers for its own assignment (accept, refuse, close); the CCAPEX secretariat may do the same on its
behalf and is the only one to override orientation (ADD opens a new assignment, REMOVE closes one);
only the system expires. A change to the status an assignment already has is ``UNCHANGED`` (a
partner's double click), not an error. Anything else is ``REFUSED`` with a code: the event is recorded
and the assignment left as it was, so a bad event never blocks the topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from schemas.assignment import AssignmentOverride, AssignmentStatus, AssignmentStatusChange, StatusActor

__all__ = [
    "ALLOWED_TRANSITIONS",
    "OPEN_STATUSES",
    "Refusal",
    "StatusCheck",
    "Verdict",
    "check_change",
]

S = AssignmentStatus

ALLOWED_TRANSITIONS: Final[Mapping[AssignmentStatus, frozenset[AssignmentStatus]]] = {
    S.OUVERTE: frozenset({S.ACCEPTEE, S.REFUSEE, S.EXPIREE, S.CLOTUREE}),
    S.ACCEPTEE: frozenset({S.CLOTUREE}),
    S.REFUSEE: frozenset(),
    S.EXPIREE: frozenset(),
    S.CLOTUREE: frozenset(),
}
"""From each status, the statuses a change may lead to."""

OPEN_STATUSES: Final = frozenset({S.OUVERTE, S.ACCEPTEE})
"""An assignment in these statuses is open: the structure gets stage updates, not new assignments."""

_ACTORS: Final[Mapping[AssignmentStatus, frozenset[StatusActor]]] = {
    S.ACCEPTEE: frozenset({StatusActor.PARTNER, StatusActor.CCAPEX}),
    S.REFUSEE: frozenset({StatusActor.PARTNER, StatusActor.CCAPEX}),
    S.CLOTUREE: frozenset({StatusActor.PARTNER, StatusActor.CCAPEX}),
    S.EXPIREE: frozenset({StatusActor.SYSTEM}),
    S.OUVERTE: frozenset(),  # only an override ADD opens an assignment
}


class Verdict(StrEnum):
    APPLIED = "APPLIED"
    UNCHANGED = "UNCHANGED"
    REFUSED = "REFUSED"


class Refusal(StrEnum):
    """Why a status event was not applied (recorded with the event, for ops)."""

    UNKNOWN_ASSIGNMENT = "UNKNOWN_ASSIGNMENT"
    ASSIGNMENT_MISMATCH = "ASSIGNMENT_MISMATCH"
    UNKNOWN_STRUCTURE = "UNKNOWN_STRUCTURE"
    TRANSITION_NOT_ALLOWED = "TRANSITION_NOT_ALLOWED"
    ACTOR_NOT_ALLOWED = "ACTOR_NOT_ALLOWED"


@dataclass(frozen=True, slots=True)
class StatusCheck:
    """The verdict on one status change of an existing assignment, with the refusal code if refused."""

    verdict: Verdict
    refusal: Refusal | None = None
    detail: str = ""


def check_change(current: AssignmentStatus, change: AssignmentStatusChange) -> StatusCheck:
    """Whether ``change`` may move an assignment from ``current``.

    For a REMOVE override only the actor matters here: removing the structure from the procedure
    stands even when its assignment is already final (the caller records the exclusion either way).
    ADD never reaches this function: it opens a new assignment instead of changing one.
    """
    target = change.status
    if change.override is AssignmentOverride.REMOVE:
        if current in OPEN_STATUSES:
            return StatusCheck(Verdict.APPLIED)
        return StatusCheck(Verdict.UNCHANGED, detail=f"assignment already {current}")
    if target is current:
        return StatusCheck(Verdict.UNCHANGED, detail=f"assignment already {current}")
    if target not in ALLOWED_TRANSITIONS[current]:
        return StatusCheck(Verdict.REFUSED, Refusal.TRANSITION_NOT_ALLOWED, f"{current} → {target} is not allowed")
    if change.by not in _ACTORS[target]:
        return StatusCheck(Verdict.REFUSED, Refusal.ACTOR_NOT_ALLOWED, f"{change.by} may not set {target}")
    return StatusCheck(Verdict.APPLIED)
