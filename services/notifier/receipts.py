"""Receipts of the notifier: ``notification.sent | failed | undeliverable`` events, as outbox messages.

One receipt per delivery outcome and per alert the delivery carried (a digest carries several), keyed by
procedure (the partition's order), with the correlation id of the alert's decision. Receipts name contacts
by id: never an address, a phone number or a message body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.notification import (
    NotificationFailedEvent,
    NotificationSentEvent,
    NotificationUndeliverableEvent,
    UndeliverableCause,
)
from services.notifier.channels import SendOutcome
from services.notifier.domain.routing import FallbackChoice
from services.notifier.jobs import DeliveryJob
from services.notifier.repository import AlertRow, AlertToPlan
from services.platform.outbox import OutboxMessage

__all__ = ["PRODUCER", "Receipt", "delivery_receipts", "no_contact_receipt"]

PRODUCER = "notifier"

Receipt = NotificationSentEvent | NotificationFailedEvent | NotificationUndeliverableEvent

_TOPICS: Mapping[type[Receipt], str] = {
    NotificationSentEvent: topics.NOTIFICATION_SENT,
    NotificationFailedEvent: topics.NOTIFICATION_FAILED,
    NotificationUndeliverableEvent: topics.NOTIFICATION_UNDELIVERABLE,
}


def delivery_receipts(
    job: DeliveryJob, outcome: SendOutcome, event_type: type[Receipt], extra: Mapping[str, Any]
) -> list[OutboxMessage]:
    """The receipts of one outcome of ``job``: one per alert it carried; ``extra`` are the event's own fields."""
    fields = {
        "delivery_id": job.delivery_id,
        "structure_id": job.structure_id,
        "contact_id": job.contact_id,
        "channel": job.channel,
        "provider": outcome.provider,
        "attempt_count": job.attempts,
        "provider_message_id": outcome.provider_message_id if outcome.ok else None,
    }
    return [_receipt(event_type, alert, {**fields, **extra}) for alert in job.alerts]


def no_contact_receipt(alert: AlertToPlan, choice: FallbackChoice) -> OutboxMessage:
    """``notification.undeliverable`` for an alert whose structure had no deliverable contact: no delivery."""
    fields = {
        "cause": UndeliverableCause.NO_DELIVERABLE_CONTACT,
        "delivery_id": None,
        "structure_id": alert.structure_id,
        "contact_id": None,
        "channel": None,
        "provider": None,
        "attempt_count": 0,
        "error": {"code": "NO_DELIVERABLE_CONTACT", "message": "no contact with an enabled channel"},
        "fallback": {"kind": choice.kind, "structure_id": choice.structure_id},
    }
    return _receipt(NotificationUndeliverableEvent, alert, fields)


def _receipt(event_type: type[Receipt], alert: AlertRow | AlertToPlan, fields: Mapping[str, Any]) -> OutboxMessage:
    """A receipt about ``alert``: same correlation as its decision, keyed by procedure (partition order)."""
    payload = {
        "assignment_id": alert.assignment_id,
        "procedure_id": alert.procedure_id,
        "procedure_short_ref": alert.procedure_short_ref,
        **fields,
    }
    envelope = new_envelope_fields(PRODUCER, correlation_id=alert.correlation_id)
    event = event_type.model_validate({**envelope, "payload": payload})
    return OutboxMessage.of(_TOPICS[event_type], str(alert.procedure_id), event)
