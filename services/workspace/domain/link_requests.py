"""Whether an expired link may bring a new one (pure).

Only a genuine token reaches this question (``services/platform/links.py`` checks its MAC before its day):
a guessed or altered one is refused before anything is asked. Then a new link is sent when the structure
still holds the assignment (``OUVERTE`` or ``ACCEPTEE``, on a procedure not closed) and no link was asked
for that assignment during the last ``interval``: a partner clicking twice, or two colleagues on the same
expired alert, cause one message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from schemas.assignment import AssignmentStatus

__all__ = ["HELD_STATUSES", "LinkRequestVerdict", "judge_link_request"]

HELD_STATUSES = frozenset({AssignmentStatus.OUVERTE, AssignmentStatus.ACCEPTEE})
"""An assignment in one of these statuses is still its structure's to work on."""


class LinkRequestVerdict(StrEnum):
    """What becomes of a request; the value is the audit log's outcome."""

    SENT = "LINK_REQUESTED"
    TOO_SOON = "RATE_LIMITED"
    NOT_HELD = "NOT_HELD"


def judge_link_request(
    *,
    status: AssignmentStatus,
    procedure_closed: bool,
    last_requested_at: datetime | None,
    now: datetime,
    interval: timedelta,
) -> LinkRequestVerdict:
    """The verdict on a request made at ``now`` for an assignment in ``status``, whose last request (for
    any of its structure's links) was made at ``last_requested_at``.

    ``NOT_HELD`` wins over ``TOO_SOON``: a structure that no longer holds the file is told so, not asked
    to wait. A request exactly ``interval`` after the last one is allowed.
    """
    if status not in HELD_STATUSES or procedure_closed:
        return LinkRequestVerdict.NOT_HELD
    if last_requested_at is not None and now - last_requested_at < interval:
        return LinkRequestVerdict.TOO_SOON
    return LinkRequestVerdict.SENT
