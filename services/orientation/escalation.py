"""Escalation of assignments left unanswered: a reminder to the structure, then an alert to the CCAPEX
secretariat (docs/orientation.md, "Escalation"; working days: ``domain.working_days``).

An assignment still OUVERTE ``reminder_days`` working days (French public holidays counted) after the day it
opened gets a ``STRUCTURE_REMINDER``; still OUVERTE ``secretariat_days`` working days after the reminder's
day, a ``SECRETARIAT_ALERT``. Each is an ``assignment.escalation`` event the notifier turns into an email.

Like the trêve reminders (``truce.py``), a sweep runs in the caller's transaction: the candidates' procedure
locks taken (the same the status handler takes, so an acceptance is applied either before — no escalation —
or after), the due ones read again under the locks, then the ``assignment_escalation`` rows and their
outbox rows written together. Each step is therefore published once per assignment whatever the replicas,
restarts and overlapping sweeps (the rows' primary key has the last word).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo

from schemas import topics
from schemas.assignment import AssignmentEscalation, AssignmentEscalationEvent, EscalationStep
from schemas.envelope import new_envelope_fields
from services.orientation import repository as repo
from services.orientation.domain.working_days import latest_start_due
from services.orientation.referential_store import PRODUCER, SCHEMA
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["escalate_assignments"]

log = get_logger(__name__)

_ZONE = ZoneInfo(repo.ESCALATION_ZONE)


async def escalate_assignments(
    conn: Conn, *, now: datetime, reminder_days: int, secretariat_days: int, limit: int = 500
) -> int:
    """Publish the escalation steps due at ``now`` (the service's clock), up to ``limit`` assignments per
    step; return how many due assignments the fuller step found (call again while it returns ``limit``)."""
    today = now.astimezone(_ZONE).date()
    found = 0
    steps = (
        (EscalationStep.STRUCTURE_REMINDER, None, reminder_days),
        (EscalationStep.SECRETARIAT_ALERT, EscalationStep.STRUCTURE_REMINDER, secretariat_days),
    )
    for step, after, days in steps:
        query = partial(
            repo.escalation_due,
            conn,
            step=step.value,
            after=after.value if after else None,
            cutoff=latest_start_due(today, days),
            limit=limit,
        )
        candidates = await query()
        if not candidates:
            continue
        found = max(found, len(candidates))
        await repo.lock_procedures(conn, (c.procedure_id for c in candidates))
        # Read again under the locks: a partner's answer applied meanwhile ends the escalation.
        due = await query(among={c.procedure_id for c in candidates})
        events = {item.assignment_id: _event(item, step, days) for item in due}
        recorded = await repo.insert_escalations(
            conn, step.value, today, {assignment: event.event_id for assignment, event in events.items()}
        )
        await enqueue(
            conn,
            SCHEMA,
            [
                OutboxMessage.of(topics.ASSIGNMENT_ESCALATION, str(event.payload.procedure_id), event)
                for assignment, event in events.items()
                if assignment in recorded
            ],
        )
        log.info("assignments_escalated", step=step.value, working_days=days, count=len(recorded))
    return found


def _event(item: repo.EscalationDue, step: EscalationStep, days: int) -> AssignmentEscalationEvent:
    fields = new_envelope_fields(PRODUCER, correlation_id=item.correlation_id)
    payload = AssignmentEscalation(
        assignment_id=item.assignment_id,
        procedure_id=item.procedure_id,
        structure_id=item.structure_id,
        step=step,
        working_days=days,
    )
    return AssignmentEscalationEvent(**fields, payload=payload)
