"""The "sortie de trêve" reminders, sent in March (docs/domain.md §7; the rules: ``domain.truce``).

Runs in the caller's transaction, a batch of procedures at a time: their locks taken (the same as the
notice and status handlers take), the due ones read again under the locks, then for each one the
reminder decision, the assignments it adds, its ``truce_reminder`` row and its outbox row are written
together. A procedure is therefore reminded once per trêve whatever the replicas, restarts and
redeliveries, and a notice of the same procedure is decided either before (a new stage with another
earliest date: no reminder) or after the reminder.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.orientation import AssignmentKind, OrientationDecided, OrientationDecidedEvent
from services.orientation import repository as repo
from services.orientation.domain.truce import structures_to_add, truce_end_ahead, truce_end_payload
from services.orientation.referential_store import PRODUCER, SCHEMA, ReferentialHolder
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["remind_truce_end"]

log = get_logger(__name__)


async def remind_truce_end(conn: Conn, holder: ReferentialHolder, *, now: datetime, limit: int = 500) -> int:
    """Remind up to ``limit`` procedures whose earliest expulsion is the end of the trêve (or record that
    one has nobody left to remind); return how many due procedures were found, of which a replica sweeping
    at the same time may have handled some. 0 outside March (of ``now``, the service's clock) or when none
    is due; call again while it returns ``limit``."""
    truce_end = truce_end_ahead(now.date())
    if truce_end is None:
        return 0
    candidates = await repo.truce_end_due(conn, truce_end, limit=limit)
    if not candidates:
        return 0
    await repo.lock_procedures(conn, (due.procedure_id for due in candidates))
    # Read again under the locks: a notice decided meanwhile may have moved the procedure on.
    due = await repo.truce_end_due(conn, truce_end, limit=limit, among=[c.procedure_id for c in candidates])
    states = await repo.procedure_states(conn, (item.procedure_id for item in due))
    active = await holder.refresh(conn)
    structures = active.referential.structures_by_id()
    handled: dict[uuid.UUID, uuid.UUID | None] = {}
    decisions: list[OrientationDecidedEvent] = []
    additions: list[repo.NewAssignment] = []
    for item in due:
        state = states[item.procedure_id]
        previous = OrientationDecided.model_validate_json(json.dumps(item.last_decision))
        added = structures_to_add(
            previous, structures=structures, holding=state.open_assignments, removed=state.removed_structures
        )
        payload = truce_end_payload(
            previous,
            truce_end=truce_end,
            holding=state.open_assignments,
            added=added,
            new_id=uuid.uuid4,
            referentiel_version=active.version,
        )
        if payload is None:
            handled[item.procedure_id] = None
            log.info("truce_end_nobody_to_remind", procedure_ref=previous.procedure_short_ref)
            continue
        fields = new_envelope_fields(
            PRODUCER, correlation_id=item.correlation_id, schema_version=OrientationDecidedEvent.SCHEMA_VERSION
        )
        decided = OrientationDecidedEvent(**fields, payload=payload)
        handled[item.procedure_id] = decided.event_id
        decisions.append(decided)
        additions += _new_assignments(decided, item.correlation_id or decided.correlation_id)
    await repo.insert_assignments(conn, additions, now=now)
    await repo.insert_decisions(conn, [repo.DecisionRow.of(decided) for decided in decisions])
    await repo.insert_truce_reminders(conn, truce_end, handled)
    await enqueue(
        conn,
        SCHEMA,
        [OutboxMessage.of(topics.ORIENTATION_DECIDED, str(d.payload.procedure_id), d) for d in decisions],
    )
    log.info("truce_end_reminders", truce_end=truce_end.isoformat(), procedures=len(handled), sent=len(decisions))
    return len(candidates)


def _new_assignments(decided: OrientationDecidedEvent, correlation_id: uuid.UUID) -> list[repo.NewAssignment]:
    """The assignments the reminder adds (its NEW ones), opened by it."""
    payload = decided.payload
    return [
        repo.NewAssignment(
            assignment_id=assignment.assignment_id,
            procedure_id=payload.procedure_id,
            structure_id=assignment.structure_id,
            offer_ids=assignment.offer_ids,
            mandatory=assignment.mandatory,
            priority=assignment.priority,
            over_capacity=assignment.over_capacity,
            explanation=assignment.explanation,
            referentiel_version=payload.referentiel_version,
            notification_id=payload.notification_id,
            correlation_id=correlation_id,
            event_id=decided.event_id,
        )
        for assignment in payload.assignments
        if assignment.kind is AssignmentKind.NEW
    ]
