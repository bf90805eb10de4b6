"""Notifier's application service: alerts → deliveries → channels, with retries, fallbacks and receipts.

**Exactly once towards partners** rests on the ``delivery`` table:

1. one row per (alert or digest, channel, recipient) under a unique idempotency key, so a replayed
   decision or a second expansion creates nothing new;
2. ``pending`` → ``sending``: claimed under a lease (a token, an expiry and the claiming database session)
   in its own committed transaction *before* the provider is called; a send is only started if it can end
   (``send_timeout_s``) before the lease does and while the session lives, so no other dispatcher can
   claim a row whose message may still be in flight;
3. ``sending`` → ``sent`` | ``retrying`` | ``failed``: recorded as soon as the provider answered, guarded
   by the lease token, outcomes committed together when several arrive at once (group commit).

A partner gets a message twice only if the process dies between a provider's acceptance and the commit of
step 3 — the row stays ``sending`` until a claim sees its session gone (at once after a restart; its lease
expiring is the backstop) and is then sent again; at most the deliveries leased at the time,
``claim_size`` — or if a provider's answer is lost (connection cut after the data, a
timeout after the provider took the message), which is retried. An email keeps its ``Message-ID``, derived
from the delivery id. docs/notifier.md details both windows.

**Order.** Deliveries of one procedure (one Kafka partition key) leave in creation order, one at a time;
different procedures are sent concurrently. A retried delivery does not hold the others back.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from functools import partial
from typing import Any
from urllib.parse import urljoin

import asyncpg
import jinja2

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.notification import (
    Channel as ChannelCode,
)
from schemas.notification import (
    FallbackKind,
    NotificationFailedEvent,
    NotificationSentEvent,
    NotificationUndeliverableEvent,
    UndeliverableCause,
)
from schemas.procedure import Urgency
from schemas.stages import Stage
from services.notifier import repository as repo
from services.notifier.channels import Channel, OutgoingMessage, SendOutcome
from services.notifier.domain.alerts import (
    AlertContent,
    AlertTemplates,
    DigestContent,
    EscalationNotice,
    FallbackNotice,
    RefusalNotice,
    SmsTooLongError,
    render_digest_email,
    render_digest_sms,
    render_email,
    render_sms,
)
from services.notifier.domain.routing import (
    AlertMode,
    FallbackChoice,
    Recipient,
    fallback_for,
    no_contact_fallback,
    recipients,
)
from services.notifier.domain.schedule import QuietRule, RetryPolicy, digest_cutoff, next_allowed
from services.platform.clock import SYSTEM_CLOCK
from services.platform.db import Conn
from services.platform.links import LinkKeys, mint_link
from services.platform.logging import get_logger, log_context
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["SCHEMA", "DispatchConfig", "Dispatcher", "SendReport"]

SCHEMA = "notifier"
PRODUCER = "notifier"

log = get_logger(__name__)

Clock = Callable[[], datetime]
Receipt = NotificationSentEvent | NotificationFailedEvent | NotificationUndeliverableEvent


@dataclass(frozen=True)
class DispatchConfig:
    """How the dispatcher schedules and sends; built from ``NotifierSettings`` by the bootstrap."""

    link_base_url: str
    link_keys: LinkKeys
    link_lifetime: timedelta
    retry: RetryPolicy
    contact_wait_s: float
    lease_s: float
    send_timeout_s: float
    concurrency: int
    quiet_hours: tuple[time, time] | None
    quiet_sundays: bool
    zone: tzinfo
    digest_time: time
    expand_batch: int = 500

    @property
    def claim_size(self) -> int:
        """Deliveries leased per claim: enough to keep every sender busy, few enough to keep the in-flight
        window (what a crash may send twice) small."""
        return self.concurrency * 4


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

    job: repo.DeliveryJob
    outcome: SendOutcome | None
    defer_to: datetime | None = None


class Dispatcher:
    """Expands alerts into deliveries and digests, and sends the due deliveries."""

    def __init__(
        self,
        *,
        channels: Mapping[str, Channel],
        templates: AlertTemplates,
        config: DispatchConfig,
        clock: Clock = SYSTEM_CLOCK.now,
        rng: random.Random | None = None,
    ) -> None:
        self._channels = channels
        self._templates = templates
        self._config = config
        self._link_base_url = config.link_base_url.rstrip("/")
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)

    # --- alerts → deliveries ------------------------------------------------------------------------

    async def expand_alerts(self, conn: Conn) -> int:
        """Turn alerts whose contacts are known into deliveries (or digest items); return how many.

        A structure the référentiel topic has not named yet is waited for during ``contact_wait_s``.
        A structure without any deliverable contact (or still unknown after the wait) falls back to the
        default referent (F3) and a ``notification.undeliverable`` receipt says so; while the default
        referent itself is unknown, the alert waits.
        """
        now = self._clock()
        async with conn.transaction():
            batch = await repo.awaiting_alerts(
                conn, self._config.expand_batch, contact_wait_s=self._config.contact_wait_s
            )
            if not batch:
                return 0
            known = await repo.structures(conn, {alert.structure_id for alert in batch})
            referent = await repo.default_referent(conn)
            deliveries: list[repo.NewDelivery] = []
            items: list[repo.DigestItemRow] = []
            receipts: list[OutboxMessage] = []
            expanded: list[uuid.UUID] = []
            for alert in batch:
                structure = known.get(alert.structure_id)  # None: still unknown after the wait
                found = recipients(structure.contacts) if structure else ()
                choice: FallbackChoice | None = None
                if not found:
                    if referent is None:
                        continue
                    choice = no_contact_fallback(alert.structure_id, referent)
                    found = choice.recipients
                    receipts.append(_no_contact_receipt(alert, choice))
                    log.warning(
                        "alert_without_contact",
                        alert_id=str(alert.alert_id),
                        structure=alert.structure_id,
                        fallback=choice.kind.value,
                    )
                for recipient in found:
                    if alert.mode == AlertMode.DIGEST:
                        items.append(_digest_item(alert, recipient, choice, now))
                    else:
                        deliveries.append(self._alert_delivery(alert, recipient, choice, now))
                expanded.append(alert.alert_id)
            await repo.insert_deliveries(conn, deliveries)
            await repo.insert_digest_items(conn, items)
            await repo.mark_alerts_expanded(conn, expanded)
            await enqueue(conn, SCHEMA, receipts)
        return len(expanded)

    async def plan_digests(self, conn: Conn) -> int:
        """Once today's digest time has passed, bundle each recipient's earlier stage updates into one
        digest delivery; return how many digests were planned. Idempotent per recipient and day."""
        now = self._clock()
        cutoff = digest_cutoff(now, self._config.digest_time, self._config.zone)
        if cutoff is None:
            return 0
        day = cutoff.astimezone(self._config.zone).date()
        planned: list[repo.NewDelivery] = []
        async with conn.transaction():
            for group in await repo.digest_groups(conn, cutoff):
                key = ":".join(
                    ("digest", day.isoformat(), group.structure_id, group.contact_id, group.channel, group.recipient)
                )
                digest_id = await repo.insert_digest(
                    conn, digest_key=key, structure_id=group.structure_id, day=day, group=group
                )
                if digest_id is None:
                    continue
                recipient = Recipient(group.contact_id, ChannelCode(group.channel), group.recipient, group.quiet_hours)
                planned.append(
                    repo.NewDelivery(
                        idempotency_key=key,
                        structure_id=group.structure_id,
                        contact_id=group.contact_id,
                        channel=group.channel,
                        recipient=group.recipient,
                        next_attempt_at=self._not_before(now, recipient, urgent=False),
                        digest_id=digest_id,
                        quiet_hours=group.quiet_hours,
                    )
                )
            await repo.insert_deliveries(conn, planned)
        return len(planned)

    # --- sending ------------------------------------------------------------------------------------

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

    async def _send_claimed(self, pool: asyncpg.Pool, session: Conn, jobs: Sequence[repo.DeliveryJob]) -> SendReport:
        results: asyncio.Queue[_Result | None] = asyncio.Queue()
        recorder = asyncio.create_task(self._record_results(pool, results))
        slots = asyncio.Semaphore(self._config.concurrency)
        stopping = False

        async def run(group: Sequence[repo.DeliveryJob]) -> None:
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

    async def _attempt(self, job: repo.DeliveryJob) -> _Result:
        with log_context(delivery_id=str(job.delivery_id), **_correlation(job)):
            now = self._clock()
            if now + timedelta(seconds=self._config.send_timeout_s) >= job.lease_until:
                # Too late to start: the lease could expire mid-send and another dispatcher send it too.
                return _Result(job, None)
            if job.channel == ChannelCode.SMS.value and not _urgent(job):
                allowed = next_allowed(now, self._quiet_rule(job.quiet_hours))
                if allowed > now:
                    return _Result(job, None, defer_to=allowed)
            channel = self._channels[job.channel]
            try:
                message = self._message(job)
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
        sent = [r for r in batch if r.outcome is not None and r.outcome.ok]
        recorded = await repo.mark_sent(
            conn,
            [
                repo.SentRow(r.job.delivery_id, r.job.lease_token, r.outcome.provider, r.outcome.provider_message_id)
                for r in sent
                if r.outcome is not None
            ],
            now,
        )
        for result in sent:
            if result.job.delivery_id in recorded and result.outcome is not None:
                counts["sent"] += 1
                messages += _receipts(result.job, result.outcome, NotificationSentEvent, {})
        for result in batch:
            job, outcome = result.job, result.outcome
            if outcome is None:
                await repo.release(conn, job, next_attempt_at=result.defer_to)
                counts["released"] += 1
            elif not outcome.ok:
                key, receipts = await self._record_failure(conn, job, outcome, now)
                counts[key] += 1
                messages += receipts
        await enqueue(conn, SCHEMA, messages)
        return counts

    async def _record_failure(
        self, conn: Conn, job: repo.DeliveryJob, outcome: SendOutcome, now: datetime
    ) -> tuple[str, list[OutboxMessage]]:
        error = {"code": outcome.error_code or "UNKNOWN", "message": outcome.error_message or outcome.error_code or "?"}
        retry = self._config.retry
        logged = {"error": error["code"], "attempts": job.attempts, "structure": job.structure_id}
        with log_context(delivery_id=str(job.delivery_id), **_correlation(job)):
            if outcome.transient and retry.can_retry(job.attempts):
                delay = max(retry.delay_after(job.attempts, self._rng), outcome.retry_after_s or 0.0)
                recipient = Recipient(job.contact_id, ChannelCode(job.channel), job.recipient, job.quiet_hours)
                next_at = self._not_before(now + timedelta(seconds=delay), recipient, urgent=_urgent(job))
                if not await repo.mark_retrying(
                    conn, job, provider=outcome.provider, error=error["code"], next_attempt_at=next_at
                ):
                    return "released", []
                log.warning("alert_retry_scheduled", **logged, delay_s=round((next_at - now).total_seconds(), 1))
                failed = {"error": error, "will_retry": True, "next_attempt_at": next_at}
                return "retrying", _receipts(job, outcome, NotificationFailedEvent, failed)
            if not await repo.mark_failed(conn, job, provider=outcome.provider, error=error["code"]):
                return "released", []
            choice = await self._fall_back(conn, job, now)
            log.error("alert_undeliverable", **logged, fallback=choice.kind.value)
            failed = {"error": error, "will_retry": False}
            fallback = {"kind": choice.kind, "structure_id": choice.structure_id}
            undeliverable = {"error": error, "fallback": fallback}
            return "failed", [
                *_receipts(job, outcome, NotificationFailedEvent, failed),
                *_receipts(job, outcome, NotificationUndeliverableEvent, undeliverable),
            ]

    async def _fall_back(self, conn: Conn, job: repo.DeliveryJob, now: datetime) -> FallbackChoice:
        """Fallback F3 for a delivery that failed for good: create the fallback deliveries, if any."""
        subject = job.subject_structure_id
        choice = fallback_for(
            failed_level=job.fallback_kind,
            failed_contact_id=job.contact_id,
            structure=(await repo.structures(conn, [subject])).get(subject),
            default_referent=await repo.default_referent(conn),
        )
        key = job.alert.alert_key if job.alert is not None else f"digest:{job.digest_id}"
        await repo.insert_deliveries(
            conn,
            [
                repo.NewDelivery(
                    # One fallback message per alert and address, however many of its deliveries failed.
                    idempotency_key=f"{key}|fallback|{r.channel.value}|{r.address}",
                    structure_id=choice.structure_id or subject,
                    contact_id=r.contact_id,
                    channel=r.channel.value,
                    recipient=r.address,
                    next_attempt_at=self._not_before(now, r, urgent=_urgent(job)),
                    alert_id=job.alert.alert_id if job.alert is not None else None,
                    digest_id=job.digest_id,
                    procedure_id=job.procedure_id,
                    fallback_kind=choice.kind,
                    fallback_of=job.delivery_id,
                    quiet_hours=r.quiet_hours,
                )
                for r in choice.recipients
            ],
        )
        return choice

    # --- rendering and scheduling -------------------------------------------------------------------

    def _message(self, job: repo.DeliveryJob) -> OutgoingMessage:
        notice = _notice(job.fallback_kind, job.names.get(job.subject_structure_id, job.subject_structure_id))
        sms = job.channel == ChannelCode.SMS.value
        message = partial(OutgoingMessage, job.delivery_id, job.recipient, attempt=job.attempts)
        if job.alert is not None:
            content = self._content(job.alert, notice, job.names)
            if sms:
                return message(sms=render_sms(content, self._templates))
            return message(email=render_email(content, self._templates))
        if job.digest_day is None:
            raise ValueError(f"delivery {job.delivery_id} has neither an alert nor a digest")
        items = tuple(
            self._content(line.alert, _notice(line.fallback_kind, job.names.get(line.alert.structure_id)), job.names)
            for line in job.digest_lines
        )
        digest = DigestContent(job.digest_day, items, self._link_base_url, notice)
        if sms:
            return message(sms=render_digest_sms(digest, self._templates))
        return message(email=render_digest_email(digest, self._templates))

    def _content(self, alert: repo.AlertRow, notice: FallbackNotice | None, names: Mapping[str, str]) -> AlertContent:
        return AlertContent(
            procedure_short_ref=alert.procedure_short_ref,
            stage=Stage(alert.stage),
            commune=alert.commune,
            urgency=Urgency(alert.urgency),
            earliest_expulsion_date=alert.earliest_expulsion_date,
            link=self._link(alert, notice),
            today=self._clock().astimezone(self._config.zone).date(),
            warnings=alert.warnings,
            reasons=alert.reasons,
            # A structure the référentiel topic has not named yet shows by its id (a code, never personal data).
            others=tuple(names.get(structure_id, structure_id) for structure_id in alert.others),
            manual_orientation=alert.manual_orientation,
            stage_update=alert.stage_update,
            truce_end=alert.truce_end,
            fallback=notice,
            refusal=RefusalNotice(alert.refused_by, alert.refusal_reason)
            if alert.refused_by is not None and alert.refusal_reason is not None
            else None,
            escalation=EscalationNotice(alert.escalation_days, alert.silent_structure)
            if alert.escalation_days is not None
            else None,
        )

    def _link(self, alert: repo.AlertRow, notice: FallbackNotice | None) -> str:
        """``<base>/<token>``: a signed, expiring token opening this assignment for its structure.

        The bare base (the workspace's welcome page) when there is no assignment to open, or when the alert
        goes to the default referent instead: a token would sign that other structure in as the unreachable one.
        A refusal or a silent structure told to the CCAPEX secretariat links to the case page of its desk, by
        reference (``<base>/../secretariat/dossiers/<ref>``; the base is the workspace's ``/d``), opened in
        the secretariat's own session: a token would be bound to the other structure.
        """
        if alert.refused_by is not None or alert.silent_structure is not None:
            return urljoin(f"{self._link_base_url}/", f"../secretariat/dossiers/{alert.procedure_short_ref}")
        if alert.assignment_id is None or (notice is not None and notice.kind is FallbackKind.DEFAULT_REFERENT):
            return self._link_base_url
        token = mint_link(
            self._config.link_keys,
            assignment_id=alert.assignment_id,
            structure_id=alert.structure_id,
            expires_on=(self._clock() + self._config.link_lifetime).date(),
        )
        return f"{self._link_base_url}/{token}"

    def _alert_delivery(
        self, alert: repo.AlertRow, recipient: Recipient, choice: FallbackChoice | None, now: datetime
    ) -> repo.NewDelivery:
        marker = "|fallback" if choice is not None else ""
        return repo.NewDelivery(
            idempotency_key=f"{alert.alert_key}{marker}|{recipient.channel.value}|{recipient.address}",
            structure_id=_recipient_structure(alert, choice),
            contact_id=recipient.contact_id,
            channel=recipient.channel.value,
            recipient=recipient.address,
            next_attempt_at=self._not_before(now, recipient, urgent=alert.urgency == Urgency.CRITICAL.value),
            alert_id=alert.alert_id,
            procedure_id=alert.procedure_id,
            fallback_kind=choice.kind if choice else None,
            quiet_hours=recipient.quiet_hours,
        )

    def _not_before(self, at: datetime, recipient: Recipient, *, urgent: bool) -> datetime:
        """When a message to ``recipient`` may go: SMS wait for the end of quiet hours unless urgent."""
        if recipient.channel is not ChannelCode.SMS or urgent:
            return at
        return next_allowed(at, self._quiet_rule(recipient.quiet_hours))

    def _quiet_rule(self, contact_window: tuple[time, time] | None) -> QuietRule:
        return QuietRule(contact_window or self._config.quiet_hours, self._config.quiet_sundays, self._config.zone)


def _by_procedure(jobs: Iterable[repo.DeliveryJob]) -> list[list[repo.DeliveryJob]]:
    """Jobs grouped per procedure in creation order; digests (no procedure) each on their own."""
    groups: dict[object, list[repo.DeliveryJob]] = {}
    for job in sorted(jobs, key=lambda j: j.seq):
        groups.setdefault(job.procedure_id or job.delivery_id, []).append(job)
    return list(groups.values())


def _urgent(job: repo.DeliveryJob) -> bool:
    # Quiet hours give way only to CRITICAL alerts (an expulsion within days); digests are never urgent.
    return job.alert is not None and job.alert.urgency == Urgency.CRITICAL.value


def _notice(kind: FallbackKind | None, unreachable: str | None) -> FallbackNotice | None:
    if kind is None or kind is FallbackKind.NONE:
        return None
    return FallbackNotice(kind, unreachable if kind is FallbackKind.DEFAULT_REFERENT else None)


def _correlation(job: repo.DeliveryJob) -> dict[str, str]:
    return {"correlation_id": str(job.alert.correlation_id)} if job.alert is not None else {}


def _recipient_structure(alert: repo.AlertRow, choice: FallbackChoice | None) -> str:
    """The structure a recipient belongs to: the alert's own, or the fallback's."""
    if choice is not None and choice.structure_id is not None:
        return choice.structure_id
    return alert.structure_id


def _digest_item(
    alert: repo.AlertRow, recipient: Recipient, choice: FallbackChoice | None, now: datetime
) -> repo.DigestItemRow:
    return repo.DigestItemRow(
        alert_id=alert.alert_id,
        structure_id=_recipient_structure(alert, choice),
        contact_id=recipient.contact_id,
        channel=recipient.channel.value,
        recipient=recipient.address,
        quiet_hours=recipient.quiet_hours,
        fallback_kind=choice.kind if choice else None,
        created_at=now,
    )


def _receipts(
    job: repo.DeliveryJob, outcome: SendOutcome, event_type: type[Receipt], extra: Mapping[str, Any]
) -> list[OutboxMessage]:
    """One receipt per alert the delivery carried (a digest carries several)."""
    alerts = [job.alert] if job.alert is not None else [line.alert for line in job.digest_lines]
    fields = {
        "delivery_id": job.delivery_id,
        "structure_id": job.structure_id,
        "contact_id": job.contact_id,
        "channel": ChannelCode(job.channel),
        "provider": outcome.provider,
        "attempt_count": job.attempts,
        "provider_message_id": outcome.provider_message_id if outcome.ok else None,
    }
    return [_receipt(event_type, alert, {**fields, **extra}) for alert in alerts]


def _no_contact_receipt(alert: repo.AlertRow, choice: FallbackChoice) -> OutboxMessage:
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


_TOPICS: Mapping[type[Receipt], str] = {
    NotificationSentEvent: topics.NOTIFICATION_SENT,
    NotificationFailedEvent: topics.NOTIFICATION_FAILED,
    NotificationUndeliverableEvent: topics.NOTIFICATION_UNDELIVERABLE,
}


def _receipt(event_type: type[Receipt], alert: repo.AlertRow, fields: Mapping[str, Any]) -> OutboxMessage:
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
