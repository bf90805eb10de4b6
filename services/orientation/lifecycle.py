"""Assignment lifecycle: ``assignment.status`` events applied, CCAPEX overrides, expiry of silent assignments.

Runs in the caller's transaction with the inbox row, like the notice handler. The transition rules are
the pure ``domain.lifecycle``; here they meet the tables:

- a partner's or the CCAPEX's change moves the assignment and appends to its history; a change that is
  not allowed (unknown assignment, wrong procedure or structure, final status, wrong actor) is recorded
  in ``assignment_status_refused`` with its reason and logged, never raised: one bad event must not
  block the partition behind it;
- ``REMOVE`` closes the structure's assignment and keeps the structure out of every later matching of
  the procedure; ``ADD`` lifts that, opens an assignment (counted as open by later matchings: they give
  it stage updates) and publishes an ``orientation.decided`` with it (``CCAPEX_OVERRIDE``), so the
  notifier alerts the structure like any other. The alert shows the procedure's last decision or, without
  one, its latest notice that was not oriented (``notice_header``); when orientation has not seen the
  procedure at all (the override overtook the notice, which comes on another topic), the assignment is
  recorded and the decision of the procedure's first notice announces it (``orient.py``): either way the
  structure is alerted once;
- an OUVERTE assignment without an answer after ``assignment_expiry_days`` becomes EXPIREE, and
  orientation publishes that change on ``assignment.status`` (``by=SYSTEM``) for ops and the workspace.
  Orientation's consumer skips its own events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from schemas import topics
from schemas.assignment import (
    AssignmentOverride,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    StatusActor,
)
from schemas.envelope import new_envelope_fields
from schemas.orientation import OrientationDecidedEvent
from services.orientation import repository as repo
from services.orientation.domain.events import OVERRIDE_EXPLANATION, override_payload
from services.orientation.domain.lifecycle import Refusal, Verdict, check_change
from services.orientation.orient import respond_by
from services.orientation.referential_store import PRODUCER, SCHEMA, ReferentialHolder
from services.platform.clock import SYSTEM_CLOCK, Clock
from services.platform.db import Conn
from services.platform.inbox import claim_event
from services.platform.logging import get_logger, log_context
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["StatusHandler", "expire_assignments"]

log = get_logger(__name__)


class StatusHandler:
    """Applies ``assignment.status`` events to orientation's assignments; ``clock`` dates the assignments
    a CCAPEX ``ADD`` opens, and ``response_working_days`` (as ``Orientation``'s) sets the day their structure
    is asked to answer by."""

    def __init__(
        self, holder: ReferentialHolder, *, clock: Clock = SYSTEM_CLOCK, response_working_days: int | None = None
    ) -> None:
        self._holder = holder
        self._clock = clock
        self._response_days = response_working_days

    async def handle_batch(self, conn: Conn, events: Sequence[AssignmentStatusEvent]) -> None:
        """Apply a batch in the caller's transaction, the procedures it touches locked."""
        await repo.lock_procedures(conn, (event.payload.procedure_id for event in events))
        for event in events:
            await self.handle(conn, event)

    async def handle(self, conn: Conn, event: AssignmentStatusEvent) -> None:
        """Apply one event (no-op when already seen or published by orientation itself)."""
        with log_context(event_id=str(event.event_id), correlation_id=str(event.correlation_id)):
            if not await claim_event(conn, event.event_id, topics.ASSIGNMENT_STATUS):
                log.info("status_already_applied")
                return
            if event.producer == PRODUCER:
                return  # an expiry orientation published: already applied when it was decided
            if event.payload.override is AssignmentOverride.ADD:
                await self._add(conn, event)
            else:
                await self._change(conn, event)

    async def _change(self, conn: Conn, event: AssignmentStatusEvent) -> None:
        change = event.payload
        # The contract requires an id for everything but ADD.
        row = await repo.assignment_for_update(conn, change.assignment_id) if change.assignment_id else None
        if row is None:
            await _refuse(conn, event, None, Refusal.UNKNOWN_ASSIGNMENT, "no assignment with this id")
            return
        if (row.procedure_id, row.structure_id) != (change.procedure_id, change.structure_id):
            detail = "the assignment belongs to another procedure or structure"
            await _refuse(conn, event, row.status, Refusal.ASSIGNMENT_MISMATCH, detail)
            return
        removal = change.override is AssignmentOverride.REMOVE
        if removal:
            # The removal stands even if the assignment had already ended: the structure stays out.
            await repo.set_override(conn, change.procedure_id, change.structure_id, "REMOVE", event.event_id)
        check = check_change(AssignmentStatus(row.status), change)
        if check.refusal is not None:
            await _refuse(conn, event, row.status, check.refusal, check.detail)
            return
        if check.verdict is Verdict.APPLIED:
            await repo.set_status(
                conn,
                repo.StatusChange(
                    assignment_id=row.assignment_id,
                    from_status=row.status,
                    to_status=change.status.value,
                    actor=change.by.value,
                    reason=change.reason,
                    override=change.override.value if change.override else None,
                    event_id=event.event_id,
                ),
                removed_by_ccapex=removal,
            )
        log.info(
            "assignment_status_applied" if check.verdict is Verdict.APPLIED else "assignment_status_unchanged",
            assignment_id=str(row.assignment_id),
            structure_id=row.structure_id,
            from_status=row.status,
            to_status=change.status.value,
            by=change.by.value,
            override=change.override.value if change.override else None,
        )

    async def _add(self, conn: Conn, event: AssignmentStatusEvent) -> None:
        change = event.payload
        active = await self._holder.refresh(conn)
        if change.structure_id not in {s.id for s in active.referential.structures}:
            detail = f"structure {change.structure_id} is not in référentiel v{active.version}"
            await _refuse(conn, event, None, Refusal.UNKNOWN_STRUCTURE, detail)
            return
        await repo.set_override(conn, change.procedure_id, change.structure_id, "ADD", event.event_id)
        state = await repo.procedure_state(conn, change.procedure_id)
        if change.structure_id in state.open_assignments:
            log.info("assignment_add_already_open", structure_id=change.structure_id)
            return
        requested = change.assignment_id
        taken = requested is not None and await repo.assignment_for_update(conn, requested) is not None
        assignment_id = requested if requested is not None and not taken else uuid.uuid4()
        header = await repo.procedure_header(conn, change.procedure_id)
        decided = None
        if header is not None:
            payload = override_payload(
                header,
                added={change.structure_id: assignment_id},
                referentiel_version=active.version,
                respond_by=respond_by(self._clock.now(), self._response_days),
            )
            decided = OrientationDecidedEvent.caused_by(event, producer=PRODUCER, payload=payload)
        await repo.insert_assignments(
            conn,
            [
                repo.NewAssignment(
                    assignment_id=assignment_id,
                    procedure_id=change.procedure_id,
                    structure_id=change.structure_id,
                    offer_ids=[],
                    mandatory=False,
                    priority=0,
                    over_capacity=False,
                    explanation=OVERRIDE_EXPLANATION,
                    referentiel_version=active.version,
                    notification_id=None,
                    correlation_id=event.correlation_id,
                    event_id=event.event_id,
                    origin="OVERRIDE",
                )
            ],
            now=self._clock.now(),
        )
        if decided is not None:
            await repo.insert_decisions(conn, [repo.DecisionRow.of(decided)])
            await enqueue(
                conn, SCHEMA, [OutboxMessage.of(topics.ORIENTATION_DECIDED, str(change.procedure_id), decided)]
            )
        else:
            # Announced by the decision of the procedure's first notice (orient.py reads it back as unannounced).
            log.info("override_added_before_the_procedure_is_known", structure_id=change.structure_id)
        log.info("assignment_added_by_ccapex", assignment_id=str(assignment_id), structure_id=change.structure_id)


async def expire_assignments(conn: Conn, *, days: int, now: datetime, limit: int = 500) -> int:
    """Expire up to ``limit`` OUVERTE assignments created more than ``days`` before ``now`` (the service's
    clock), in the caller's transaction.

    Each gets a history line and an ``assignment.status`` event (``EXPIREE``, ``by=SYSTEM``). Returns
    how many expired; call again while it returns ``limit``.
    """
    expired = await repo.expire_due(conn, days=days, limit=limit, now=now)
    if not expired:
        return 0
    await repo.insert_history(
        conn,
        [
            repo.StatusChange(
                row.assignment_id, "OUVERTE", row.status, StatusActor.SYSTEM.value, reason=row.status_reason
            )
            for row in expired
        ],
    )
    messages = []
    for row in expired:
        payload = AssignmentStatusChange(
            assignment_id=row.assignment_id,
            procedure_id=row.procedure_id,
            structure_id=row.structure_id,
            status=AssignmentStatus.EXPIREE,
            reason=row.status_reason,
            by=StatusActor.SYSTEM,
        )
        fields = new_envelope_fields(PRODUCER, correlation_id=row.correlation_id)
        messages.append(
            OutboxMessage.of(
                topics.ASSIGNMENT_STATUS, str(row.procedure_id), AssignmentStatusEvent(**fields, payload=payload)
            )
        )
    await enqueue(conn, SCHEMA, messages)
    log.info("assignments_expired", count=len(expired), after_days=days)
    return len(expired)


async def _refuse(conn: Conn, event: AssignmentStatusEvent, current: str | None, refusal: Refusal, detail: str) -> None:
    change = event.payload
    await repo.record_refused(
        conn,
        repo.RefusedStatus(
            event_id=event.event_id,
            procedure_id=change.procedure_id,
            assignment_id=change.assignment_id,
            structure_id=change.structure_id,
            requested_status=change.status.value,
            actor=change.by.value,
            override=change.override.value if change.override else None,
            current_status=current,
            refusal=refusal.value,
            detail=detail,
        ),
    )
    log.warning(
        "assignment_status_refused",
        refusal=refusal.value,
        detail=detail,
        assignment_id=str(change.assignment_id) if change.assignment_id else None,
        structure_id=change.structure_id,
        requested_status=change.status.value,
        current_status=current,
    )
