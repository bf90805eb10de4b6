"""A new link for an expired one: the request's checks, its row, its event and its audit line, in the
caller's transaction.

``request_new_link`` is called with an assignment whose expired token was verified (genuine, for that
assignment and structure). Under a lock on the assignment's row (two clicks at once make one request), it
reads the assignment's status and its latest request, lets ``domain.link_requests.judge_link_request``
decide, and when a link is to be sent stores the request and puts ``workspace.link_requested`` in the
outbox (same transaction: the event leaves if and only if the request is stored). Every request, sent or
not, is written to the audit log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import topics
from schemas.assignment import AssignmentStatus
from schemas.envelope import new_envelope_fields
from schemas.workspace import LinkRequested, LinkRequestedEvent
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage, enqueue
from services.workspace import repository as repo
from services.workspace.domain.link_requests import LinkRequestVerdict, judge_link_request

__all__ = ["AUDIT_ACTION", "LinkRequestResult", "request_new_link"]

AUDIT_ACTION = "REQUEST_LINK"
"""The audit log's action for a request, its outcome being the verdict's value."""

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LinkRequestResult:
    """The verdict; ``request_id`` is set when a link was asked for, ``last_requested_at`` when it was
    refused as too soon after that request."""

    verdict: LinkRequestVerdict
    request_id: uuid.UUID | None = None
    last_requested_at: datetime | None = None


async def request_new_link(
    conn: Conn, assignment: repo.AssignmentRow, *, producer: str, schema: str, now: datetime, interval: timedelta
) -> LinkRequestResult:
    """Ask the notifier for a new link to ``assignment`` for its structure, unless the structure no longer
    holds it or a link was asked for it less than ``interval`` ago (see the module's docstring)."""
    # Lock first, read after, in two statements: under READ COMMITTED a statement that waited for the lock
    # still reads with the snapshot it started with, and would miss the request that made it wait.
    await conn.execute("SELECT 1 FROM assignment WHERE assignment_id = $1 FOR UPDATE", assignment.assignment_id)
    row = await conn.fetchrow(
        "SELECT a.status, p.closed_at IS NOT NULL AS closed, p.correlation_id,"
        " (SELECT max(r.requested_at) FROM link_request r WHERE r.assignment_id = a.assignment_id) AS last"
        " FROM assignment a JOIN procedure p USING (procedure_id) WHERE a.assignment_id = $1",
        assignment.assignment_id,
    )
    if row is None:  # the caller just read it in this transaction; purged rows keep their assignment
        raise LookupError(f"assignment {assignment.assignment_id} is not in the read model")
    verdict = judge_link_request(
        status=AssignmentStatus(row["status"]),
        procedure_closed=row["closed"],
        last_requested_at=row["last"],
        now=now,
        interval=interval,
    )
    result = LinkRequestResult(
        verdict, last_requested_at=row["last"] if verdict is LinkRequestVerdict.TOO_SOON else None
    )
    if verdict is LinkRequestVerdict.SENT:
        event = LinkRequestedEvent(
            **new_envelope_fields(producer, correlation_id=row["correlation_id"], now=now),
            payload=LinkRequested(
                request_id=uuid.uuid4(),
                assignment_id=assignment.assignment_id,
                procedure_id=assignment.procedure_id,
                procedure_short_ref=assignment.short_ref,
                structure_id=assignment.structure_id,
            ),
        )
        await conn.execute(
            "INSERT INTO link_request (request_id, event_id, assignment_id, structure_id, requested_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            event.payload.request_id,
            event.event_id,
            assignment.assignment_id,
            assignment.structure_id,
            now,
        )
        await enqueue(
            conn,
            schema,
            [OutboxMessage.of(topics.WORKSPACE_LINK_REQUESTED, str(assignment.procedure_id), event)],
        )
        result = LinkRequestResult(verdict, request_id=event.payload.request_id)
    await repo.audit(
        conn,
        at=now,
        action=AUDIT_ACTION,
        outcome=verdict.value,
        structure_id=assignment.structure_id,
        procedure_id=assignment.procedure_id,
    )
    log.info(
        "link_request",
        outcome=verdict.value,
        structure_id=assignment.structure_id,
        request_id=str(result.request_id) if result.request_id else None,
    )
    return result
