"""Notifier's application service: alerts → deliveries → channels, with retries and receipts.

Exactly-once towards partners rests on the ``delivery`` table: one row per (alert, channel,
recipient) under a unique key, moved to ``sending`` under a lease in its own committed transaction
before the provider is called, and to ``sent`` right after. The only window where a message can go
twice is a crash between the provider's acceptance and that second commit; the lease then expires
and the row is claimed again (the email keeps its ``Message-ID``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.notification import (
    Channel as ChannelCode,
)
from schemas.notification import (
    NotificationFailed,
    NotificationFailedEvent,
    NotificationSent,
    NotificationSentEvent,
    NotificationUndeliverable,
    NotificationUndeliverableEvent,
)
from schemas.procedure import Urgency
from schemas.stages import Stage
from services.notifier import repository as repo
from services.notifier.channels import Channel, OutgoingMessage, SendOutcome
from services.notifier.domain.alerts import AlertContent, AlertTemplates, render_email, render_sms
from services.platform.db import Conn
from services.platform.logging import get_logger, log_context
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["SCHEMA", "Dispatcher", "RetryPolicy", "deliveries_for"]

SCHEMA = "notifier"
PRODUCER = "notifier"

log = get_logger(__name__)


class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a number of attempts."""

    def __init__(self, *, max_attempts: int, base_delay_s: float, rng: random.Random | None = None) -> None:
        self.max_attempts = max_attempts
        self._base = base_delay_s
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        return self._rng.uniform(self._base / 2, self._base * 2 ** (attempts - 1))


def deliveries_for(contacts: list[repo.ContactRow]) -> list[tuple[str, str, str, str]]:
    """One delivery per enabled channel of each contact: ``(structure, contact, channel, recipient)``."""
    rows = []
    for contact in contacts:
        if contact.email_enabled and contact.email:
            rows.append((contact.structure_id, contact.contact_id, ChannelCode.EMAIL.value, contact.email))
        if contact.sms_enabled and contact.mobile:
            rows.append((contact.structure_id, contact.contact_id, ChannelCode.SMS.value, contact.mobile))
    return rows


class Dispatcher:
    """Expands alerts into deliveries and sends the due ones."""

    def __init__(
        self,
        *,
        channels: Mapping[str, Channel],
        templates: AlertTemplates,
        link_base_url: str,
        retry: RetryPolicy,
        contact_wait_s: float,
        lease_s: float,
        batch_size: int = 50,
    ) -> None:
        self._channels = channels
        self._templates = templates
        self._link_base_url = link_base_url.rstrip("/")
        self._retry = retry
        self._contact_wait_s = contact_wait_s
        self._lease_s = lease_s
        self._batch_size = batch_size

    async def expand_alerts(self, conn: Conn) -> int:
        """Turn alerts whose contacts are known into deliveries; return how many were expanded.

        A structure the référentiel topic has not told us about yet is waited for during
        ``contact_wait_s``; after that the default referent gets the alert (fallback F3).
        """
        expanded = 0
        async with conn.transaction():
            for alert, age_s in await repo.awaiting_alerts(conn, self._batch_size):
                contacts = await repo.contacts_of(conn, alert.structure_id)
                rows = deliveries_for(contacts or [])
                if not rows and (contacts is not None or age_s >= self._contact_wait_s):
                    rows = deliveries_for(await repo.default_referent_contacts(conn))
                    log.warning("alert_without_contact", alert_id=str(alert.alert_id), structure=alert.structure_id)
                if not rows:
                    continue
                await repo.insert_deliveries(conn, alert.alert_id, rows)
                await repo.mark_alert_expanded(conn, alert.alert_id)
                expanded += 1
        return expanded

    async def send_due(self, conn: Conn, *, now: datetime | None = None) -> int:
        """Claim due deliveries, send them, record each outcome; return how many were attempted."""
        async with conn.transaction():
            jobs = await repo.claim_due_deliveries(conn, limit=self._batch_size, lease_s=self._lease_s)
        for job in jobs:
            with log_context(correlation_id=str(job.alert.correlation_id), delivery_id=str(job.delivery_id)):
                outcome = await self._send(job)
                async with conn.transaction():
                    await self._record(conn, job, outcome, now or datetime.now(UTC))
        return len(jobs)

    async def _send(self, job: repo.DeliveryJob) -> SendOutcome:
        content = AlertContent(
            procedure_short_ref=job.alert.procedure_short_ref,
            stage=Stage(job.alert.stage),
            commune=job.alert.commune,
            urgency=Urgency(job.alert.urgency),
            earliest_expulsion_date=job.alert.earliest_expulsion_date,
            link=f"{self._link_base_url}/{job.alert.procedure_short_ref}",
            manual_orientation=job.alert.manual_orientation,
        )
        if job.channel == ChannelCode.EMAIL.value:
            message = OutgoingMessage(job.delivery_id, job.recipient, email=render_email(content, self._templates))
        else:
            message = OutgoingMessage(job.delivery_id, job.recipient, sms=render_sms(content, self._templates))
        return await self._channels[job.channel].send(message)

    async def _record(self, conn: Conn, job: repo.DeliveryJob, outcome: SendOutcome, now: datetime) -> None:
        common = {
            "delivery_id": job.delivery_id,
            "assignment_id": job.alert.assignment_id,
            "procedure_id": job.alert.procedure_id,
            "procedure_short_ref": job.alert.procedure_short_ref,
            "structure_id": job.alert.structure_id,
            "contact_id": job.contact_id,
            "channel": ChannelCode(job.channel),
            "provider": outcome.provider,
            "attempt_count": job.attempts,
            "provider_message_id": outcome.provider_message_id,
        }
        envelope = new_envelope_fields(PRODUCER, correlation_id=job.alert.correlation_id)
        event: NotificationSentEvent | NotificationFailedEvent | NotificationUndeliverableEvent
        if outcome.ok:
            await repo.mark_delivery(
                conn,
                job.delivery_id,
                state="sent",
                provider=outcome.provider,
                provider_message_id=outcome.provider_message_id,
            )
            event = NotificationSentEvent(**envelope, payload=NotificationSent.model_validate(common))
            topic = topics.NOTIFICATION_SENT
            log.info("alert_sent", channel=job.channel, attempts=job.attempts, structure=job.alert.structure_id)
        elif outcome.transient and job.attempts < self._retry.max_attempts:
            delay = self._retry.delay_after(job.attempts)
            error = _error(outcome)
            await repo.mark_delivery(
                conn,
                job.delivery_id,
                state="retrying",
                provider=outcome.provider,
                error=error["code"],
                retry_in_s=delay,
            )
            next_at = now + timedelta(seconds=delay)
            failed = {**common, "error": error, "will_retry": True, "next_attempt_at": next_at}
            event = NotificationFailedEvent(**envelope, payload=NotificationFailed.model_validate(failed))
            topic = topics.NOTIFICATION_FAILED
            log.warning("alert_retry_scheduled", error=error["code"], attempts=job.attempts, delay_s=round(delay, 1))
        else:
            error = _error(outcome)
            await repo.mark_delivery(
                conn, job.delivery_id, state="failed", provider=outcome.provider, error=error["code"]
            )
            undeliverable = {**common, "error": error, "fallback": {"kind": "NONE"}}
            event = NotificationUndeliverableEvent(
                **envelope, payload=NotificationUndeliverable.model_validate(undeliverable)
            )
            topic = topics.NOTIFICATION_UNDELIVERABLE
            log.error(
                "alert_undeliverable", error=error["code"], attempts=job.attempts, structure=job.alert.structure_id
            )
        await enqueue(conn, SCHEMA, [OutboxMessage.of(topic, str(job.alert.procedure_id), event)])


def _error(outcome: SendOutcome) -> dict[str, str]:
    return {
        "code": outcome.error_code or "UNKNOWN",
        "message": outcome.error_message or outcome.error_code or "unknown",
    }
