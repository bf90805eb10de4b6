"""Orientation's application service: a procedure notice in, assignments and a decision out.

Runs in the caller's transaction: the inbox row, the assignments, the decision and its outbox events
commit together, so a redelivered notice changes nothing and a crash leaves nothing half-done.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.orientation import AssignmentKind, OrientationDecidedEvent, OrientationUnmatchedEvent
from schemas.procedure import ProcedureNotificationEvent
from schemas.referential import ReferentialChangedEvent
from services.orientation import repository as repo
from services.orientation.domain.events import decided_payload, structure_records, unmatched_payload
from services.orientation.domain.facts import facts_from_notice, should_orient
from services.orientation.domain.matching import decide
from services.orientation.domain.referential import Referential
from services.orientation.domain.referential_yaml import content_hash
from services.platform.db import Conn
from services.platform.inbox import claim_event
from services.platform.logging import get_logger, log_context
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["SCHEMA", "ActiveReferential", "Orientation", "activate_referential"]

SCHEMA = "orientation"
PRODUCER = "orientation"

log = get_logger(__name__)


@dataclass(frozen=True)
class ActiveReferential:
    version: int
    referential: Referential


async def activate_referential(conn: Conn, referential: Referential, *, source: str) -> ActiveReferential:
    """Store ``referential`` as a new version if its content changed, and publish every structure on the
    compacted référentiel topic (again at each start: it heals a topic the broker lost)."""
    async with conn.transaction():
        version = await repo.store_referential(
            conn,
            content_hash=content_hash(referential),
            document=json.loads(referential.model_dump_json()),
            source=source,
        )
        messages = [
            OutboxMessage.of(
                topics.REFERENTIAL_CHANGED,
                record.structure_id,
                ReferentialChangedEvent(**new_envelope_fields(PRODUCER), payload=record),
            )
            for record in structure_records(referential, version)
        ]
        await enqueue(conn, SCHEMA, messages)
    log.info("referential_loaded", version=version, structures=len(referential.structures))
    return ActiveReferential(version, referential)


class Orientation:
    """Matches notices against the active référentiel and records the outcome."""

    def __init__(self, active: ActiveReferential, *, max_structures: int) -> None:
        self._active = active
        self._k = max_structures

    async def handle(self, conn: Conn, event: ProcedureNotificationEvent, *, today: date) -> None:
        """Orient one notice (no-op when already seen, late, or a clôture)."""
        with log_context(event_id=str(event.event_id), correlation_id=str(event.correlation_id)):
            if not await claim_event(conn, event.event_id, topics.PROCEDURE_NOTIFICATION):
                log.info("notice_already_oriented")
                return
            notice = event.payload
            if not should_orient(notice):
                log.info("notice_not_oriented", is_late=notice.is_late, stage=notice.notification.act.stage.value)
                return
            open_ids = await repo.open_assignments(conn, notice.procedure_id)
            referential = self._active.referential
            result = decide(
                facts_from_notice(notice),
                referential,
                open_structures=frozenset(open_ids),
                remaining_capacity=_remaining_capacity(referential, await repo.weekly_assignment_counts(conn)),
                k=self._k,
                on=today,
            )
            ids = {a.structure_id: open_ids.get(a.structure_id) or uuid.uuid4() for a in result.assignments}
            await repo.insert_assignments(
                conn,
                [
                    (
                        ids[a.structure_id],
                        notice.procedure_id,
                        a.structure_id,
                        list(a.offer_ids),
                        a.mandatory,
                        a.priority,
                        a.over_capacity,
                        a.explanation,
                        self._active.version,
                        notice.notification.notification_id,
                    )
                    for a in result.assignments
                    if a.kind is AssignmentKind.NEW
                ],
            )
            payload = decided_payload(notice, result, referentiel_version=self._active.version, assignment_ids=ids)
            decided = OrientationDecidedEvent.caused_by(event, producer=PRODUCER, payload=payload)
            messages = [OutboxMessage.of(topics.ORIENTATION_DECIDED, str(notice.procedure_id), decided)]
            unmatched = unmatched_payload(notice, result)
            if unmatched is not None:
                unmatched_event = OrientationUnmatchedEvent.caused_by(event, producer=PRODUCER, payload=unmatched)
                messages.append(
                    OutboxMessage.of(topics.ORIENTATION_UNMATCHED, str(notice.procedure_id), unmatched_event)
                )
            await repo.insert_decision(
                conn,
                decision_id=decided.event_id,
                procedure_id=notice.procedure_id,
                notification_id=notice.notification.notification_id,
                stage=payload.stage.value,
                referentiel_version=self._active.version,
                rules_version=payload.rules_version,
                fallback_used=result.fallback_used,
                result=payload.model_dump(mode="json"),
            )
            await enqueue(conn, SCHEMA, messages)
            log.info(
                "notice_oriented",
                procedure_ref=notice.procedure_short_ref,
                structures=[a.structure_id for a in result.assignments],
                fallback_used=result.fallback_used,
            )


def _remaining_capacity(referential: Referential, used: dict[str, int]) -> dict[str, int | None]:
    """Offer id → new assignments still possible this week (``None`` = no weekly cap)."""
    return {
        offer.id: None
        if offer.max_new_assignments_per_week is None
        else offer.max_new_assignments_per_week - used.get(offer.id, 0)
        for offer in referential.offers
    }
