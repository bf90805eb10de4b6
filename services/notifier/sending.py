"""The sender's job: claim due deliveries, hand them to their channels, record each outcome (group commit).

See ``services.notifier.dispatch`` for the exactly-once argument this module carries out: a claim in its
own committed transaction before any send, a send only started if it can end before the lease does, and
outcomes recorded under the lease token, several per transaction when they arrive together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import jinja2

from schemas.notification import Channel as ChannelCode
from schemas.notification import NotificationSentEvent
from services.notifier import repository as repo
from services.notifier.channels import Channel, SendOutcome
from services.notifier.config import SCHEMA, DispatchConfig
from services.notifier.domain.alerts import SmsTooLongError
from services.notifier.failures import FailureHandler
from services.notifier.jobs import DeliveryJob, correlation, urgent
from services.notifier.messages import MessageComposer
from services.notifier.receipts import delivery_receipts
from services.platform.db import Conn
from services.platform.logging import get_logger, log_context
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["SendReport", "Sender"]

log = get_logger(__name__)


@dataclass(frozen=True)
class SendReport:
    """What one ``send_due`` round did."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0


@dataclass(frozen=True)
class _Result:
    """A claimed delivery after its turn: an outcome, or given back unattempted (until ``defer_to``)."""

    job: DeliveryJob
    outcome: SendOutcome | None
    defer_to: datetime | None = None


class Sender:
    """Sends the due deliveries through ``channels`` (keyed by channel code) and records the outcomes."""

    def __init__(
        self,
        *,
        channels: Mapping[ChannelCode, Channel],
        composer: MessageComposer,
        failures: FailureHandler,
        config: DispatchConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._channels = channels
        self._composer = composer
        self._failures = failures
        self._config = config
        self._clock = clock

    async def send_due(self, pool: asyncpg.Pool) -> SendReport:
        """Claim due deliveries, send them (procedures concurrently, each procedure's in order), record
        each outcome as soon as possible; return what happened.

        Cancelled (the service stops), it starts no new send, lets the ones under way finish (each bounded
        by ``send_timeout_s``), records them and gives the unstarted ones back: a clean stop sends nothing twice.

        The connection that claimed is held until every outcome is recorded: the claimed rows are owned by
        its database session, and another dispatcher takes them back as soon as that session is gone (this
        process died) rather than when their lease expires. Should the session drop while this process
        lives, no further send starts (its rows are up for grabs).
        """
        async with pool.acquire() as session:
            async with session.transaction():
                jobs = await repo.claim_deliveries(
                    session, limit=self._config.claim_size, lease_s=self._config.lease_s, now=self._clock()
                )
            if not jobs:
                return SendReport()
            return await self._send_claimed(pool, session, jobs)

    async def _send_claimed(self, pool: asyncpg.Pool, session: Conn, jobs: Sequence[DeliveryJob]) -> SendReport:
        results: asyncio.Queue[_Result | None] = asyncio.Queue()
        recorder = asyncio.create_task(self._record_results(pool, results))
        slots = asyncio.Semaphore(self._config.concurrency)
        stopping = False

        async def run(group: Sequence[DeliveryJob]) -> None:
            for job in group:
                async with slots:
                    if recorder.done() or session.is_closed():
                        # Outcomes can no longer be recorded (the database went away), or the rows are no
                        # longer ours: sending more would only widen what a retry sends twice.
                        return
                    await results.put(_Result(job, None) if stopping else await self._attempt(job))

        sending = asyncio.gather(*(run(group) for group in _by_procedure(jobs)))
        try:
            await asyncio.shield(sending)
        except asyncio.CancelledError:
            stopping = True
            await sending
            raise
        finally:
            await results.put(None)
            report = await recorder
        return report

    async def _attempt(self, job: DeliveryJob) -> _Result:
        with log_context(delivery_id=str(job.delivery_id), **correlation(job)):
            now = self._clock()
            if now + timedelta(seconds=self._config.send_timeout_s) >= job.lease_until:
                # Too late to start: the lease could expire mid-send and another dispatcher send it too.
                return _Result(job, None)
            allowed = self._config.not_before(now, job.channel, job.quiet_hours, urgent=urgent(job))
            if allowed > now:
                return _Result(job, None, defer_to=allowed)
            channel = self._channels[job.channel]
            try:
                message = self._composer.message(job)
            except (SmsTooLongError, jinja2.TemplateError) as error:
                # Permanent: the same content would fail again; the fallback (email) may still carry it.
                log.error("alert_render_failed", error=type(error).__name__)  # noqa: TRY400 (no traceback: values)
                failure = SendOutcome.failure(channel.provider, "RENDER_ERROR", transient=False, message=str(error))
                return _Result(job, failure)
            try:
                async with asyncio.timeout(self._config.send_timeout_s):
                    return _Result(job, await channel.send(message))
            except TimeoutError:
                return _Result(job, SendOutcome.failure(channel.provider, "TIMEOUT", transient=True))

    async def _record_results(self, pool: asyncpg.Pool, results: asyncio.Queue[_Result | None]) -> SendReport:
        """Record outcomes as they come; whatever arrived meanwhile is committed in one transaction."""
        counts = {"claimed": 0, "sent": 0, "retrying": 0, "failed": 0, "released": 0}
        done = False
        while not done:
            batch: list[_Result] = []
            item = await results.get()
            while True:
                if item is None:
                    done = True
                    break
                batch.append(item)
                try:
                    item = results.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if batch:
                async with pool.acquire() as conn, conn.transaction():
                    for key, count in (await self._record(conn, batch)).items():
                        counts[key] += count
        return SendReport(**counts)

    async def _record(self, conn: Conn, batch: Sequence[_Result]) -> dict[str, int]:
        now = self._clock()
        counts = {"claimed": len(batch), "sent": 0, "retrying": 0, "failed": 0, "released": 0}
        messages: list[OutboxMessage] = []
        sent = [(r.job, r.outcome) for r in batch if r.outcome is not None and r.outcome.ok]
        recorded = await repo.mark_sent(
            conn,
            [repo.SentRow(job.delivery_id, job.lease_token, o.provider, o.provider_message_id) for job, o in sent],
            now,
        )
        for job, outcome in sent:
            if job.delivery_id in recorded:
                counts["sent"] += 1
                messages += delivery_receipts(job, outcome, NotificationSentEvent, {})
        for result in batch:
            if result.outcome is None:
                await repo.release(conn, result.job, next_attempt_at=result.defer_to)
                counts["released"] += 1
            elif not result.outcome.ok:
                key, receipts = await self._failures.record(conn, result.job, result.outcome, now)
                counts[key] += 1
                messages += receipts
        await enqueue(conn, SCHEMA, messages)
        return counts


def _by_procedure(jobs: Iterable[DeliveryJob]) -> list[list[DeliveryJob]]:
    """Jobs grouped per procedure in creation order; digests (no procedure) each on their own."""
    groups: dict[object, list[DeliveryJob]] = {}
    for job in sorted(jobs, key=lambda j: j.seq):
        groups.setdefault(job.procedure_id or job.delivery_id, []).append(job)
    return list(groups.values())
