"""Notifier's application service: alerts → deliveries → channels, with retries, fallbacks and receipts.

One module per job, composed here: ``planning`` (alerts → deliveries, daily digests), ``sending`` (claim,
send, group commit), ``failures`` (retry or fail, fallback F3), ``receipts`` (the ``notification.*``
events), ``messages`` (a delivery's rendered email or SMS), ``jobs`` (a claimed delivery: ``AlertJob |
DigestJob``), ``config`` (``DispatchConfig``, quiet hours).

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
step 3 — the row stays ``sending`` until a claim sees its session gone (within a second; its lease
expiring is the backstop) and is then sent again; at most the deliveries leased at the time,
``claim_size`` — or if a provider's answer is lost (connection cut after the data, a
timeout after the provider took the message), which is retried. An email keeps its ``Message-ID``, derived
from the delivery id. docs/notifier.md details both windows.

**Order.** What one structure receives about one procedure leaves in creation order, one at a time (its
alert before a notice that refers to it); other structures, and other procedures, are sent concurrently: the
three partners of one decision are alerted side by side. A retried delivery does not hold the others back.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime

import asyncpg

from schemas.notification import Channel as ChannelCode
from services.notifier.channels import Channel
from services.notifier.config import SCHEMA, DispatchConfig
from services.notifier.domain.alerts import AlertTemplates
from services.notifier.failures import FailureHandler
from services.notifier.messages import MessageComposer
from services.notifier.planning import Planner
from services.notifier.sending import Sender, SendReport
from services.platform.clock import SYSTEM_CLOCK
from services.platform.db import Conn

__all__ = ["SCHEMA", "DispatchConfig", "Dispatcher", "SendReport"]


class Dispatcher:
    """Expands alerts into deliveries and digests (the planner loop), and sends the due deliveries (the
    sender loop). ``clock`` rules every scheduling decision; ``rng`` jitters retries."""

    def __init__(
        self,
        *,
        channels: Mapping[ChannelCode, Channel],
        templates: AlertTemplates,
        config: DispatchConfig,
        clock: Callable[[], datetime] = SYSTEM_CLOCK.now,
        rng: random.Random | None = None,
        on_accepted: Callable[[datetime, datetime], None] | None = None,
    ) -> None:
        self._planner = Planner(config, clock)
        self._sender = Sender(
            channels=channels,
            composer=MessageComposer(templates, config, clock),
            failures=FailureHandler(config, rng or random.Random()),  # noqa: S311 (jitter, not cryptography)
            config=config,
            clock=clock,
            on_accepted=on_accepted,
        )

    async def plan(self, conn: Conn) -> bool:
        """See ``Planner.step``."""
        return await self._planner.step(conn)

    async def expand_alerts(self, conn: Conn) -> int:
        """See ``Planner.expand_alerts``."""
        return await self._planner.expand_alerts(conn)

    async def plan_digests(self, conn: Conn) -> int:
        """See ``Planner.plan_digests``."""
        return await self._planner.plan_digests(conn)

    async def send_due(self, pool: asyncpg.Pool) -> SendReport:
        """See ``Sender.send_due``."""
        return await self._sender.send_due(pool)
