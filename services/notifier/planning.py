"""The planner's jobs: alerts → deliveries (or digest items), and each day's digests → deliveries.

Idempotent: a delivery's idempotency key (alert key, channel, address) and a digest's key (day, structure,
contact, channel, address) make a second expansion or planning create nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from schemas.procedure import Urgency
from services.notifier import repository as repo
from services.notifier.config import SCHEMA, DispatchConfig
from services.notifier.domain.routing import (
    AlertMode,
    FallbackChoice,
    Recipient,
    no_contact_fallback,
    recipients,
)
from services.notifier.domain.schedule import digest_cutoff
from services.notifier.link_requests import link_recipients
from services.notifier.receipts import no_contact_receipt
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["Planner"]

log = get_logger(__name__)


class Planner:
    """Expands alerts into deliveries and plans the daily digests; ``clock`` is the dispatcher's."""

    def __init__(self, config: DispatchConfig, clock: Callable[[], datetime]) -> None:
        self._config = config
        self._clock = clock

    async def step(self, conn: Conn) -> bool:
        """One round of the planner loop: expand a batch of alerts, then plan the digests due. ``True`` when
        alerts may be left to expand at once: a full batch that expanded some.

        A shorter batch read every alert ready when it ran (alerts recorded later announce themselves with a
        NOTIFY); what it left is waiting — for its structure (``contact_wait_s``) or for the default
        referent — and is looked at again by the loop's idle poll, not in a loop of empty rounds.
        """
        _, more = await self._expand(conn)
        await self.plan_digests(conn)
        return more

    async def expand_alerts(self, conn: Conn) -> int:
        """Turn alerts whose contacts are known into deliveries (or digest items); return how many.

        A structure the référentiel topic has not named yet is waited for during ``contact_wait_s``.
        A structure without any deliverable contact (or still unknown after the wait) falls back to the
        default referent (F3) and a ``notification.undeliverable`` receipt says so; while the default
        referent itself is unknown, the alert waits.
        """
        expanded, _ = await self._expand(conn)
        return expanded

    async def _expand(self, conn: Conn) -> tuple[int, bool]:
        """``expand_alerts``, and whether the batch was full and expanded some (alerts may be left)."""
        now = self._clock()
        limit = self._config.expand_batch
        async with conn.transaction():
            batch = await repo.awaiting_alerts(conn, limit, contact_wait_s=self._config.contact_wait_s)
            if not batch:
                return 0, False
            known, referent = await repo.routing_directory(conn, {alert.structure_id for alert in batch})
            deliveries: list[repo.NewDelivery] = []
            items: list[repo.DigestItemRow] = []
            receipts: list[OutboxMessage] = []
            expanded: list[uuid.UUID] = []
            for alert in batch:
                structure = known.get(alert.structure_id)  # None: still unknown after the wait
                found = recipients(structure.contacts) if structure else ()
                if alert.link_request_id is not None:
                    found = link_recipients(found)  # one channel: email, or SMS for an SMS-only structure
                choice: FallbackChoice | None = None
                if not found:
                    if referent is None:
                        continue
                    choice = no_contact_fallback(alert.structure_id, referent)
                    found = choice.recipients
                    receipts.append(no_contact_receipt(alert, choice))
                    log.warning(
                        "alert_without_contact",
                        alert_id=str(alert.alert_id),
                        structure=alert.structure_id,
                        fallback=choice.kind.value,
                    )
                for recipient in found:
                    if alert.mode is AlertMode.DIGEST:
                        items.append(_digest_item(alert, recipient, choice, now))
                    else:
                        deliveries.append(self._alert_delivery(alert, recipient, choice, now))
                expanded.append(alert.alert_id)
            if expanded:
                await repo.record_expansion(conn, deliveries=deliveries, items=items, expanded=expanded)
                await enqueue(conn, SCHEMA, receipts)
        # A full batch of alerts that all wait for the default referent would be read again unchanged.
        return len(expanded), len(batch) >= limit and bool(expanded)

    async def plan_digests(self, conn: Conn) -> int:
        """Once today's digest time has passed, bundle each recipient's earlier stage updates into one
        digest delivery; return how many digests were planned. Idempotent per recipient and day."""
        now = self._clock()
        cutoff = digest_cutoff(now, self._config.digest_time, self._config.zone)
        if cutoff is None:
            return 0
        if not await repo.digest_due(conn, cutoff):
            return 0  # the day's digests are planned: no locking transaction for each round of the day
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
                planned.append(
                    repo.NewDelivery(
                        idempotency_key=key,
                        structure_id=group.structure_id,
                        contact_id=group.contact_id,
                        channel=group.channel,
                        recipient=group.recipient,
                        next_attempt_at=self._config.not_before(now, group.channel, group.quiet_hours, urgent=False),
                        digest_id=digest_id,
                        quiet_hours=group.quiet_hours,
                    )
                )
            await repo.insert_deliveries(conn, planned)
        return len(planned)

    def _alert_delivery(
        self, alert: repo.AlertToPlan, recipient: Recipient, choice: FallbackChoice | None, now: datetime
    ) -> repo.NewDelivery:
        marker = "|fallback" if choice is not None else ""
        urgent = alert.urgency is Urgency.CRITICAL
        return repo.NewDelivery(
            idempotency_key=f"{alert.alert_key}{marker}|{recipient.channel.value}|{recipient.address}",
            structure_id=_recipient_structure(alert, choice),
            contact_id=recipient.contact_id,
            channel=recipient.channel,
            recipient=recipient.address,
            next_attempt_at=self._config.not_before(now, recipient.channel, recipient.quiet_hours, urgent=urgent),
            alert_id=alert.alert_id,
            procedure_id=alert.procedure_id,
            fallback_kind=choice.kind if choice else None,
            quiet_hours=recipient.quiet_hours,
        )


def _recipient_structure(alert: repo.AlertToPlan, choice: FallbackChoice | None) -> str:
    """The structure a recipient belongs to: the alert's own, or the fallback's."""
    if choice is not None and choice.structure_id is not None:
        return choice.structure_id
    return alert.structure_id


def _digest_item(
    alert: repo.AlertToPlan, recipient: Recipient, choice: FallbackChoice | None, now: datetime
) -> repo.DigestItemRow:
    return repo.DigestItemRow(
        alert_id=alert.alert_id,
        structure_id=_recipient_structure(alert, choice),
        contact_id=recipient.contact_id,
        channel=recipient.channel,
        recipient=recipient.address,
        quiet_hours=recipient.quiet_hours,
        fallback_kind=choice.kind if choice else None,
        created_at=now,
    )
