"""A failed attempt: retried later (transient, budget left) or abandoned with fallback F3 (docs/domain.md §5.5).

Every write is guarded by the delivery's lease token: a dispatcher that lost its lease changes nothing
and publishes nothing (the outcome counts as ``released``).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Literal

from schemas.notification import NotificationFailedEvent, NotificationUndeliverableEvent
from services.notifier import repository as repo
from services.notifier.channels import SendOutcome
from services.notifier.config import DispatchConfig
from services.notifier.domain.routing import FallbackChoice, fallback_for
from services.notifier.jobs import AlertJob, DeliveryJob, correlation, urgent
from services.notifier.receipts import delivery_receipts
from services.platform.db import Conn
from services.platform.logging import get_logger, log_context
from services.platform.outbox import OutboxMessage

__all__ = ["FailureHandler", "FailureResult"]

log = get_logger(__name__)

FailureResult = tuple[Literal["retrying", "failed", "released"], list[OutboxMessage]]
"""What became of the delivery, and the receipts to publish with it."""


class FailureHandler:
    """Records failed attempts: the next attempt's time, or the final failure and its fallback deliveries."""

    def __init__(self, config: DispatchConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng

    async def record(self, conn: Conn, job: DeliveryJob, outcome: SendOutcome, now: datetime) -> FailureResult:
        """Record ``outcome`` (not ok) of ``job``, in ``conn``'s transaction; return the receipts to enqueue."""
        error = {"code": outcome.error_code or "UNKNOWN", "message": outcome.error_message or outcome.error_code or "?"}
        retry = self._config.retry
        logged = {"error": error["code"], "attempts": job.attempts, "structure": job.structure_id}
        with log_context(delivery_id=str(job.delivery_id), **correlation(job)):
            if outcome.transient and retry.can_retry(job.attempts):
                delay = max(retry.delay_after(job.attempts, self._rng), outcome.retry_after_s or 0.0)
                next_at = self._config.not_before(
                    now + timedelta(seconds=delay), job.channel, job.quiet_hours, urgent=urgent(job)
                )
                if not await repo.mark_retrying(
                    conn, job, provider=outcome.provider, error=error["code"], next_attempt_at=next_at
                ):
                    return "released", []
                log.warning("alert_retry_scheduled", **logged, delay_s=round((next_at - now).total_seconds(), 1))
                failed = {"error": error, "will_retry": True, "next_attempt_at": next_at}
                return "retrying", delivery_receipts(job, outcome, NotificationFailedEvent, failed)
            if not await repo.mark_failed(conn, job, provider=outcome.provider, error=error["code"]):
                return "released", []
            choice = await self._fall_back(conn, job, now)
            log.error("alert_undeliverable", **logged, fallback=choice.kind.value)
            failed = {"error": error, "will_retry": False}
            fallback = {"kind": choice.kind, "structure_id": choice.structure_id}
            undeliverable = {"error": error, "fallback": fallback}
            return "failed", [
                *delivery_receipts(job, outcome, NotificationFailedEvent, failed),
                *delivery_receipts(job, outcome, NotificationUndeliverableEvent, undeliverable),
            ]

    async def _fall_back(self, conn: Conn, job: DeliveryJob, now: datetime) -> FallbackChoice:
        """Fallback F3 for a delivery that failed for good: create the fallback deliveries, if any."""
        subject = job.subject_structure_id
        choice = fallback_for(
            failed_level=job.fallback_kind,
            failed_contact_id=job.contact_id,
            structure=(await repo.structures(conn, [subject])).get(subject),
            default_referent=await repo.default_referent(conn),
        )
        await repo.insert_deliveries(
            conn,
            [
                repo.NewDelivery(
                    # One fallback message per alert and address, however many of its deliveries failed.
                    idempotency_key=f"{job.fallback_key}|fallback|{r.channel.value}|{r.address}",
                    structure_id=choice.structure_id or subject,
                    contact_id=r.contact_id,
                    channel=r.channel,
                    recipient=r.address,
                    next_attempt_at=self._config.not_before(now, r.channel, r.quiet_hours, urgent=urgent(job)),
                    alert_id=job.alert.alert_id if isinstance(job, AlertJob) else None,
                    digest_id=None if isinstance(job, AlertJob) else job.digest.digest_id,
                    procedure_id=job.procedure_id,
                    fallback_kind=choice.kind,
                    fallback_of=job.delivery_id,
                    quiet_hours=r.quiet_hours,
                )
                for r in choice.recipients
            ],
        )
        return choice
