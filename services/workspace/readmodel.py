"""The workspace's read model, folded from the four topics it consumes (never from another service's tables).

One consumer reads them all; a batch is applied in one transaction, référentiel records first, then
notices, decisions and statuses, so that within a batch a decision finds its procedure and a status its
assignment. Every fold is idempotent: the inbox skips an event seen before (notices, decisions,
statuses), référentiel records keep the highest version, notices the highest revision.

- ``referentiel.changed``: the structure's last record (names, offers, contacts) for the pages;
- ``procedure.notification`` (restricted): the case file of the latest revision, each act's stage, dates
  and emitter kind; a ``CLOTURE`` act closes the procedure (the retention clock starts), a later
  non-late act reopens it;
- ``orientation.decided``: each assignment (OUVERTE when new; a stage update keeps its status) with its
  explanation; whether matching found no offer for the last notice (fallback F1, the desk's list);
- ``assignment.status``: the status change folded with orientation's own rules (``domain.actions``),
  including the workspace's own events once they came back through the topic: the page then shows
  the status orientation applied, and the partner's action its outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from aiokafka import ConsumerRecord

from schemas import topics
from schemas.assignment import AssignmentStatus, AssignmentStatusEvent
from schemas.envelope import Envelope
from schemas.orientation import DecisionTrigger, OrientationDecidedEvent
from schemas.procedure import ProcedureNotificationEvent
from schemas.referential import ReferentialChangedEvent
from schemas.stages import Stage
from services.platform.consume import decode_or_park
from services.platform.db import Conn
from services.platform.inbox import claim_events
from services.platform.links import assignment_prefix
from services.platform.logging import get_logger
from services.workspace.domain.actions import fold_status

__all__ = ["TOPICS", "apply_batch"]

TOPICS = (
    topics.REFERENTIAL_CHANGED,
    topics.PROCEDURE_NOTIFICATION,
    topics.ORIENTATION_DECIDED,
    topics.ASSIGNMENT_STATUS,
)
"""What the workspace consumes, in the order a batch is applied."""

EventT = TypeVar("EventT", bound=Envelope)

log = get_logger(__name__)


async def apply_batch(conn: Conn, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
    """Fold one consumed batch into the read model, in the caller's transaction."""
    by_topic: dict[str, list[ConsumerRecord[bytes, bytes]]] = {topic: [] for topic in TOPICS}
    for record in records:
        by_topic[record.topic].append(record)
    for event in await decode_or_park(conn, by_topic[topics.REFERENTIAL_CHANGED], ReferentialChangedEvent):
        await _structure(conn, event)
    for notice in await _new(conn, by_topic, topics.PROCEDURE_NOTIFICATION, ProcedureNotificationEvent):
        await _notice(conn, notice)
    for decided in await _new(conn, by_topic, topics.ORIENTATION_DECIDED, OrientationDecidedEvent):
        await _decided(conn, decided)
    for status in await _new(conn, by_topic, topics.ASSIGNMENT_STATUS, AssignmentStatusEvent):
        await _status(conn, status)


async def _new(
    conn: Conn, by_topic: dict[str, list[ConsumerRecord[bytes, bytes]]], topic: str, event_type: type[EventT]
) -> list[EventT]:
    events = await decode_or_park(conn, by_topic[topic], event_type)
    fresh = await claim_events(conn, [e.event_id for e in events], topic) if events else set()
    return [e for e in events if e.event_id in fresh]


async def _structure(conn: Conn, event: ReferentialChangedEvent) -> None:
    record = event.payload
    await conn.execute(
        "INSERT INTO structure (structure_id, referentiel_version, record) VALUES ($1, $2, $3)"
        " ON CONFLICT (structure_id) DO UPDATE SET referentiel_version = EXCLUDED.referentiel_version,"
        " record = EXCLUDED.record, updated_at = now()"
        " WHERE structure.referentiel_version <= EXCLUDED.referentiel_version",
        record.structure_id,
        record.referentiel_version,
        record.model_dump(mode="json"),
    )


async def _notice(conn: Conn, event: ProcedureNotificationEvent) -> None:
    notice = event.payload
    record = notice.notification
    closes = record.act.stage is Stage.CLOTURE
    address = record.dwelling.address
    await conn.execute(
        "INSERT INTO procedure (procedure_id, short_ref, correlation_id, revision, case_file, stage, urgency,"
        " commune_insee, commune_name, earliest_expulsion_date, closed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN $12::timestamptz END)"
        " ON CONFLICT (procedure_id) DO UPDATE SET short_ref = EXCLUDED.short_ref,"
        " correlation_id = coalesce(procedure.correlation_id, EXCLUDED.correlation_id),"
        " revision = EXCLUDED.revision, case_file = EXCLUDED.case_file,"
        # A late act (an older stage arriving after a newer one) moves neither the stage nor the closure.
        " stage = CASE WHEN $13 THEN procedure.stage ELSE EXCLUDED.stage END,"
        " urgency = EXCLUDED.urgency, commune_insee = EXCLUDED.commune_insee,"
        " commune_name = EXCLUDED.commune_name, earliest_expulsion_date = EXCLUDED.earliest_expulsion_date,"
        " closed_at = CASE WHEN $13 THEN procedure.closed_at WHEN $11 THEN coalesce(procedure.closed_at, $12) END,"
        " purged_at = NULL, updated_at = now()"
        " WHERE procedure.revision < EXCLUDED.revision",
        notice.procedure_id,
        notice.procedure_short_ref,
        event.correlation_id,
        notice.revision,
        record.model_dump(mode="json"),
        record.act.stage.value,
        record.derived.urgency.value,
        address.commune_insee,
        address.commune_name,
        record.derived.earliest_expulsion_date,
        closes,
        event.occurred_at,
        notice.is_late and not closes,
    )
    await conn.execute(
        "INSERT INTO stage_received (notification_id, procedure_id, revision, stage, act_date, hearing_date,"
        " emitter_type, is_correction, is_late, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (notification_id) DO NOTHING",
        record.notification_id,
        notice.procedure_id,
        notice.revision,
        record.act.stage.value,
        record.act.date,
        record.act.hearing_date,
        record.source.emitter_type.value,
        notice.is_correction,
        notice.is_late,
        record.source.received_at,
    )


async def _decided(conn: Conn, event: OrientationDecidedEvent) -> None:
    decided = event.payload
    # The notice normally came first and owns these fields; a decision read before it fills them.
    await conn.execute(
        "INSERT INTO procedure (procedure_id, short_ref, correlation_id, stage, urgency, commune_insee,"
        " commune_name, earliest_expulsion_date, decided_at, fallback_used)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10 AND $11)"
        " ON CONFLICT (procedure_id) DO UPDATE SET decided_at = greatest(procedure.decided_at, EXCLUDED.decided_at),"
        # F1 is what matching found for the last notice; an override's or the trêve's repeat does not change it.
        " fallback_used = CASE WHEN $11 THEN EXCLUDED.fallback_used ELSE procedure.fallback_used END,"
        " correlation_id = coalesce(procedure.correlation_id, EXCLUDED.correlation_id),"
        " stage = coalesce(procedure.stage, EXCLUDED.stage), urgency = coalesce(procedure.urgency, EXCLUDED.urgency),"
        " commune_insee = coalesce(procedure.commune_insee, EXCLUDED.commune_insee),"
        " commune_name = coalesce(procedure.commune_name, EXCLUDED.commune_name), updated_at = now()",
        decided.procedure_id,
        decided.procedure_short_ref,
        event.correlation_id,
        decided.stage.value,
        decided.urgency.value,
        decided.commune_insee,
        decided.commune_name,
        decided.earliest_expulsion_date,
        event.occurred_at,
        decided.fallback_used,
        decided.trigger is DecisionTrigger.NOTIFICATION,
    )
    for a in decided.assignments:
        await conn.execute(
            "INSERT INTO assignment (assignment_id, link_prefix, procedure_id, structure_id, status_at, mandatory,"
            " over_capacity, offer_ids, explanation, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $5)"
            " ON CONFLICT (assignment_id) DO UPDATE SET mandatory = EXCLUDED.mandatory,"
            " over_capacity = EXCLUDED.over_capacity, offer_ids = EXCLUDED.offer_ids,"
            " explanation = EXCLUDED.explanation",
            a.assignment_id,
            assignment_prefix(a.assignment_id),
            decided.procedure_id,
            a.structure_id,
            event.occurred_at,
            a.mandatory,
            a.over_capacity,
            list(a.offer_ids),
            a.explanation,
        )


async def _status(conn: Conn, event: AssignmentStatusEvent) -> None:
    change = event.payload
    if change.assignment_id is None:
        return  # a CCAPEX ADD: orientation's decision that follows names the new assignment
    row = await conn.fetchrow(
        "SELECT procedure_id, structure_id, status FROM assignment WHERE assignment_id = $1 FOR UPDATE",
        change.assignment_id,
    )
    if row is None or (row["procedure_id"], row["structure_id"]) != (change.procedure_id, change.structure_id):
        # Orientation refuses it too (UNKNOWN_ASSIGNMENT / ASSIGNMENT_MISMATCH): nothing to show.
        log.warning("status_for_unknown_assignment", assignment_id=str(change.assignment_id))
        await _outcome(conn, event, "REFUSED", "unknown assignment")
        return
    fold = fold_status(AssignmentStatus(row["status"]), change)
    if fold.status.value != row["status"]:
        await conn.execute(
            "UPDATE assignment SET status = $2, status_reason = $3, status_at = $4 WHERE assignment_id = $1",
            change.assignment_id,
            fold.status.value,
            change.reason,
            event.occurred_at,
        )
    await _outcome(conn, event, fold.verdict.value, fold.detail)


async def _outcome(conn: Conn, event: AssignmentStatusEvent, outcome: str, detail: str) -> None:
    # Only the workspace's own events match a partner_action row; others update nothing.
    await conn.execute(
        "UPDATE partner_action SET outcome = $2, outcome_detail = $3 WHERE event_id = $1",
        event.event_id,
        outcome,
        detail or None,
    )
