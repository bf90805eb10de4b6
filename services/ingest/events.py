"""The events ingest publishes, built from its decisions: ``procedure.notification`` for a recorded act,
``ingest.duplicate`` for a re-sent one, ``ingest.rejected`` for a rejected input.

Each comes in its envelope (a fresh event id, the procedure's correlation id); the intake enqueues it in
its outbox with the rows. References, codes and counts only for duplicates and rejections: no personal data.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from schemas.envelope import new_envelope_fields
from schemas.ingest import IngestDuplicate, IngestDuplicateEvent, IngestRejected, IngestRejectedEvent
from schemas.procedure import EmitterType, ProcedureNotice, ProcedureNotificationEvent, SourceSystem
from services.ingest.domain.procedures import Duplicate, Recorded
from services.ingest.domain.rejections import Rejected

__all__ = ["PRODUCER", "duplicate_event", "notification_event", "rejected_event", "rejection_errors"]

PRODUCER = "ingest"


def rejection_errors(rejected: Rejected) -> list[dict[str, str | None]]:
    """The coded errors of a rejection as the event and the ``rejection`` row carry them."""
    return [{"code": e.code, "field": e.field, "message": e.message} for e in rejected.codes]


def rejected_event(
    rejected: Rejected,
    *,
    rejection_id: uuid.UUID,
    emitter_type: EmitterType | None,
    source_system: SourceSystem,
    received_at: datetime,
) -> IngestRejectedEvent:
    """``ingest.rejected`` for a rejected input; ``emitter_type`` is the authenticated emitter's (``None``
    when the input named no known emitter)."""
    return IngestRejectedEvent(
        **new_envelope_fields(PRODUCER),
        payload=IngestRejected.model_validate(
            {
                "rejection_id": rejection_id,
                "emitter_id": rejected.emitter_id,
                "emitter_type": emitter_type,
                "source_system": source_system,
                "external_ref": rejected.external_ref,
                "received_at": received_at,
                "payload_sha256": rejected.payload_sha256,
                "errors": rejection_errors(rejected),
            }
        ),
    )


def duplicate_event(duplicate: Duplicate, count: int) -> IngestDuplicateEvent:
    """``ingest.duplicate`` for a re-sent act; ``count`` is how many copies of it came so far."""
    source = duplicate.accepted.notification.source
    return IngestDuplicateEvent(
        **new_envelope_fields(PRODUCER, correlation_id=duplicate.procedure.correlation_id),
        payload=IngestDuplicate.model_validate(
            {
                "idempotency_key": duplicate.accepted.idempotency_key,
                "emitter_id": source.emitter_id,
                "external_ref": source.external_ref,
                "procedure_id": duplicate.procedure.procedure_id,
                "duplicate_count": count,
            }
        ),
    )


def notification_event(recorded: Recorded) -> ProcedureNotificationEvent:
    """``procedure.notification`` for a recorded act, once its procedure has its short reference."""
    procedure, placement = recorded.procedure, recorded.placement
    notice = ProcedureNotice(
        procedure_id=procedure.procedure_id,
        procedure_short_ref=procedure.short_ref,
        revision=recorded.revision,
        is_late=placement.is_late,
        is_correction=recorded.is_correction,
        stage_advanced=placement.advanced,
        reopened=placement.reopened,
        link_low_confidence=recorded.link_candidate is not None,
        notification=recorded.record,
    )
    return ProcedureNotificationEvent(
        **new_envelope_fields(PRODUCER, correlation_id=procedure.correlation_id), payload=notice
    )
