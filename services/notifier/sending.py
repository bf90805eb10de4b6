"""The sender's job: claim due deliveries, hand them to their channels, record each outcome (group commit).

See ``services.notifier.dispatch`` for the exactly-once argument this module carries out: a claim in its
own committed transaction before any send, a send only started if it can end before the lease does, and
outcomes recorded under the lease token, several per transaction when they arrive together. A round is a
pipeline: it claims the next deliveries while the earlier ones are being sent, within one window of leases.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import asyncpg
import jinja2

from schemas.notification import Channel as ChannelCode
from schemas.notification import NotificationSentEvent
from services.notifier import repository as repo
from services.notifier.channels import Channel, SendOutcome
from services.notifier.config import SCHEMA, DispatchConfig
from services.notifier.domain.alerts import SmsTooLongError
from services.notifier.failures import FailureHandler
from services.notifier.jobs import AlertJob, DeliveryJob, correlation, urgent
from services.notifier.latency import first_acceptances
from services.notifier.messages import MessageComposer
from services.notifier.receipts import delivery_receipts
from services.platform import tracing
from services.platform.db import Conn
from services.platform.logging import get_logger, log_context
from services.platform.metrics import code_label
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["SendReport", "Sender"]

log = get_logger(__name__)


@dataclass(frozen=True)
class SendReport:
    """What one ``send_due`` round did, and whether to run the next one at once (``more``)."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    more: bool = False


@dataclass(frozen=True)
class _Result:
    """A claimed delivery after its turn: an outcome, or given back unattempted (until ``defer_to``)."""

    job: DeliveryJob
    outcome: SendOutcome | None
    defer_to: datetime | None = None
    accepted_at: datetime | None = None  # when the provider accepted it (the end-to-end latency's end)


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
        on_accepted: Callable[[datetime, datetime], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channels = channels
        self._composer = composer
        self._failures = failures
        self._config = config
        self._clock = clock
        self._monotonic = monotonic
        self._next_orphan_check = float("-inf")  # the first claim looks: a restart takes its deliveries back
        # Told (act received at, accepted at) once per alert: the end-to-end latency (services.notifier.latency).
        self._on_accepted = on_accepted

    async def send_due(self, pool: asyncpg.Pool) -> SendReport:
        """Claim due deliveries, send them (each structure's deliveries about one procedure in order, all
        others concurrently), record each outcome as soon as possible, and claim more while sending until
        nothing is due; return what happened.

        A continuous pipeline rather than claim → send all → record all → claim: once half the claim window
        (``claim_size`` leased and not yet recorded) is free, the next due deliveries are claimed while the
        others are still being sent, so the senders never wait for a round's slowest procedure. At most
        ``claim_size`` deliveries are leased at any time: what a crash may send twice stays that window.

        Cancelled (the service stops), it starts no new send, lets the ones under way finish (each bounded
        by ``send_timeout_s``), records them and gives the unstarted ones back: a clean stop sends nothing twice.

        Every claim runs on one connection, held until every outcome is recorded: the claimed rows are owned
        by its database session, and another dispatcher takes them back as soon as that session is gone (this
        process died) rather than when their lease expires. Should the session drop while this process
        lives, no further send starts (its rows are up for grabs).

        A claim that returns fewer than it asked for took everything claimable then: the round claims again
        only once it recorded the last delivery it was sending of a group that claim found held back (the
        next of that procedure for that structure). ``more`` is true only when the round stopped after a full
        claim. Whatever else becomes claimable announces itself (``NOTIFY`` on new deliveries and on a
        delivery given back due at once) or comes due with time (the loop's idle poll), as does a group held
        back by another dispatcher's send.
        """
        async with pool.acquire() as session:
            claim = await self._claim(session, self._config.claim_size)
            if not claim.jobs:
                return SendReport()
            return await _Round(
                claim=partial(self._claim, session),
                attempt=self._attempt,
                record=self._record,
                pool=pool,
                session=session,
                window=self._config.claim_size,
                concurrency=self._config.concurrency,
            ).run(claim)

    async def _claim(self, session: Conn, limit: int) -> repo.Claim:
        # Its own committed transaction, before any send: the lease is visible to every other dispatcher.
        async with session.transaction():
            return await repo.claim_deliveries(
                session,
                limit=limit,
                lease_s=self._config.lease_s,
                now=self._clock(),
                take_back_orphans=self._orphans_due(),
            )

    def _orphans_due(self) -> bool:
        """Whether this claim also looks for a dead notifier's deliveries: at most every ``orphan_check_s``
        (real time, not the business clock, which may stand still)."""
        now = self._monotonic()
        if now < self._next_orphan_check:
            return False
        self._next_orphan_check = now + self._config.orphan_check_s
        return True

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
                with tracing.send_span(
                    _trace_context(job),
                    channel=job.channel.value,
                    provider=channel.provider,
                    delivery_id=job.delivery_id,
                    attempt=job.attempts,
                ) as span:
                    async with asyncio.timeout(self._config.send_timeout_s):
                        outcome = await channel.send(message)
                    if span is not None:
                        span.set_attribute(
                            "prevex.outcome", "accepted" if outcome.ok else code_label(outcome.error_code)
                        )
            except TimeoutError:
                return _Result(job, SendOutcome.failure(channel.provider, "TIMEOUT", transient=True))
            return _Result(job, outcome, accepted_at=self._clock() if outcome.ok else None)

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
        accepted = [
            (r.job.alert.alert_id, r.accepted_at)
            for r in batch
            if isinstance(r.job, AlertJob) and r.accepted_at is not None and r.job.delivery_id in recorded
        ]
        latencies = await first_acceptances(conn, accepted)
        for result in batch:
            if result.outcome is None:
                await repo.release(conn, result.job, next_attempt_at=result.defer_to)
                counts["released"] += 1
            elif not result.outcome.ok:
                key, receipts = await self._failures.record(conn, result.job, result.outcome, now)
                counts[key] += 1
                messages += receipts
        await enqueue(conn, SCHEMA, messages)
        if self._on_accepted is not None:
            # Every statement of the recording succeeded; only its commit is left (should it fail, the
            # deliveries are sent and observed again: the at-least-once of the whole window).
            for act_received_at, accepted_at in latencies:
                self._on_accepted(act_received_at, accepted_at)
        return counts


class _Round:
    """One ``send_due``: the claims of one database session, their sends, and the recording of the outcomes.

    Three kinds of task share it: the feeder (``_feed``: claims while there is room in the window and
    something can be claimable), one task per procedure group (its deliveries one after the other, each under
    a sending slot), and the recorder (commits whatever outcomes arrived meanwhile in one transaction: group
    commit).
    """

    def __init__(
        self,
        *,
        claim: Callable[[int], Awaitable[repo.Claim]],
        attempt: Callable[[DeliveryJob], Awaitable[_Result]],
        record: Callable[[Conn, Sequence[_Result]], Awaitable[dict[str, int]]],
        pool: asyncpg.Pool,
        session: Conn,
        window: int,
        concurrency: int,
    ) -> None:
        self._claim, self._attempt, self._record = claim, attempt, record
        self._pool = pool
        self._session = session
        self._window = window
        self._slots = asyncio.Semaphore(concurrency)
        self._results: asyncio.Queue[_Result | None] = asyncio.Queue()
        self._progress = asyncio.Event()  # set whenever outcomes were recorded, or recording stopped
        self._leased = 0  # claimed and not recorded yet
        self._in_flight: Counter[repo.OrderGroup] = Counter()  # claimed and not recorded yet, per order group
        self._exhausted = False  # the last claim was short: it took everything claimable at that instant
        self._blocked: frozenset[repo.OrderGroup] = frozenset()  # what that short claim found held back
        self._unblocked = False  # since then, the last in-flight delivery of one of those groups was recorded
        self._freed: set[repo.OrderGroup] = set()  # groups whose last in-flight delivery was recorded during a claim
        self._groups: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []
        self._stopping = False
        self._recorder: asyncio.Task[dict[str, int]] | None = None

    async def run(self, claim: repo.Claim) -> SendReport:
        self._recorder = asyncio.create_task(self._record_results())
        self._start(claim, self._window)
        try:
            await self._feed()
            await self._drain()
        except asyncio.CancelledError:
            self._stopping = True
            await self._drain()
            raise
        finally:
            await self._results.put(None)
            counts = await self._recorder
        if self._errors:
            raise self._errors[0]
        return SendReport(**counts, more=not self._exhausted)

    def _start(self, claim: repo.Claim, asked: int) -> None:
        jobs = claim.jobs
        self._leased += len(jobs)
        self._in_flight.update(key for key in map(_order_key, jobs) if key is not None)
        self._exhausted = len(jobs) < asked
        self._blocked = claim.blocked if self._exhausted else frozenset()
        # A group the claim found held back may have been freed while the claim was under way (its delivery
        # recorded after the claim read it as being sent): claimable now, and no later record will say so.
        self._unblocked = not self._blocked.isdisjoint(self._freed)
        for group in _in_order_groups(jobs):
            task = asyncio.create_task(self._send_group(group))
            self._groups.add(task)
            task.add_done_callback(self._group_done)

    def _group_done(self, task: asyncio.Task[None]) -> None:
        self._groups.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._errors.append(error)
        self._progress.set()

    def _recording_lost(self) -> bool:
        # Outcomes can no longer be recorded (the database went away), or the rows are no longer ours:
        # sending more would only widen what a retry sends twice.
        return self._recorder is None or self._recorder.done() or self._session.is_closed()

    async def _feed(self) -> None:
        """Claim more each time half the window is free, while something can be claimable: after a full
        claim, or once a group a short claim found held back by this round's sends is free again."""
        while not self._recording_lost() and not self._errors:
            if self._exhausted and not self._unblocked:
                if not any(self._in_flight[group] for group in self._blocked):
                    # What is left waits for time, or for another dispatcher: a NOTIFY or the idle poll.
                    return
                await self._wait_progress()
                continue
            if self._leased > self._window // 2:
                await self._wait_progress()
                continue
            limit = self._window - self._leased
            self._freed.clear()
            self._start(await self._claim(limit), limit)

    async def _wait_progress(self) -> None:
        self._progress.clear()
        await self._progress.wait()

    async def _drain(self) -> None:
        while self._groups:
            await asyncio.wait(set(self._groups))

    async def _send_group(self, group: Sequence[DeliveryJob]) -> None:
        for job in group:
            async with self._slots:
                if self._recording_lost():
                    return
                result = _Result(job, None) if self._stopping else await self._attempt(job)
                await self._results.put(result)

    async def _record_results(self) -> dict[str, int]:
        """Record outcomes as they come; whatever arrived meanwhile is committed in one transaction."""
        counts = {"claimed": 0, "sent": 0, "retrying": 0, "failed": 0, "released": 0}
        try:
            done = False
            while not done:
                batch: list[_Result] = []
                item = await self._results.get()
                while True:
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                    try:
                        item = self._results.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                if batch:
                    async with self._pool.acquire() as conn, conn.transaction():
                        for key, count in (await self._record(conn, batch)).items():
                            counts[key] += count
                    self._leased -= len(batch)
                    self._recorded(batch)
                    self._progress.set()
        finally:
            self._progress.set()  # a feeder waiting for progress must see that recording stopped
        return counts

    def _recorded(self, batch: Iterable[_Result]) -> None:
        for key in (_order_key(result.job) for result in batch):
            if key is None:
                continue
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                self._freed.add(key)
                if key in self._blocked:
                    self._unblocked = True  # its held-back delivery is claimable now


def _trace_context(job: DeliveryJob) -> tracing.TraceContext:
    """The trace a delivery attempt joins: its alert's decision; a digest (many acts) starts its own."""
    return (job.alert.traceparent, job.alert.tracestate) if isinstance(job, AlertJob) else (None, None)


def _in_order_groups(jobs: Iterable[DeliveryJob]) -> list[list[DeliveryJob]]:
    """Jobs grouped per (procedure, receiving structure) in creation order; digests (no procedure) each alone.

    Order is what one structure sees of one procedure (its alert before a notice that refers to it); the
    other structures of the same decision owe it nothing, so their alerts leave side by side.
    """
    groups: dict[object, list[DeliveryJob]] = {}
    for job in sorted(jobs, key=lambda j: j.seq):
        groups.setdefault(_order_key(job) or job.delivery_id, []).append(job)
    return list(groups.values())


def _order_key(job: DeliveryJob) -> repo.OrderGroup | None:
    """The order group of ``job``; ``None`` for a digest, which owes no order to anything."""
    return (job.procedure_id, job.structure_id) if job.procedure_id is not None else None
