"""How the notifier's dispatcher plans and sends (``DispatchConfig``), and when a message may leave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from schemas.notification import Channel
from services.notifier.domain.schedule import QuietRule, RetryPolicy, next_allowed
from services.platform.links import LinkKeys

__all__ = ["SCHEMA", "DispatchConfig"]

SCHEMA = "notifier"
"""The notifier's PostgreSQL schema (its tables, inbox and outbox)."""


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
    # How often a sender looks for the deliveries of a dead notifier (owner session gone, lease expired): each
    # look reads every 'sending' row since the last vacuum, so not at every claim (50 a second at 50 acts/s).
    orphan_check_s: float = 1.0

    @property
    def claim_size(self) -> int:
        """Deliveries leased per claim: enough to keep every sender busy, few enough to keep the in-flight
        window (what a crash may send twice) small."""
        return self.concurrency * 4

    def not_before(
        self, at: datetime, channel: Channel, contact_window: tuple[time, time] | None, *, urgent: bool
    ) -> datetime:
        """When a message on ``channel`` may go, from ``at`` on: SMS wait for the end of quiet hours (the
        contact's own window, else the default one) unless urgent; emails have none."""
        if channel is not Channel.SMS or urgent:
            return at
        return next_allowed(at, QuietRule(contact_window or self.quiet_hours, self.quiet_sundays, self.zone))
