"""When a delivery may be attempted: retry backoff in a bounded window, SMS quiet hours, digest cut-offs.

Pure: instants are given (timezone-aware), randomness comes from the caller's ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

__all__ = ["QuietRule", "RetryPolicy", "digest_cutoff", "in_quiet_window", "next_allowed"]

_SUNDAY = 6
_RESOLUTION = timedelta(microseconds=1)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with equal jitter whose delays, all added up, stay within ``window_s``.

    Attempt ``n`` (1-based) that fails transiently is followed, if ``n < max_attempts``, by a wait drawn
    uniformly in ``[cap/2, cap]`` with ``cap = base · 2^(n-1)`` and ``base = window_s / (2^(max_attempts-1) - 1)``.
    The caps sum to exactly ``window_s``, so the last attempt is scheduled at most ``window_s`` after the
    first one (default: 8 attempts within 30 minutes, base ≈ 14 s: 7–14 s, 14–28 s, … 454–907 s). Jitter
    spreads the retries of many deliveries that failed together (a partner's server down) instead of
    hitting it again in lockstep; the lower half is kept so that a retry never comes back immediately.
    """

    max_attempts: int = 8
    window_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.window_s <= 0:
            raise ValueError("max_attempts must be ≥ 1 and window_s > 0")

    @property
    def base_delay_s(self) -> float:
        """The cap of the first wait."""
        return self.window_s / max(1.0, 2.0 ** (self.max_attempts - 1) - 1)

    def can_retry(self, attempts: int) -> bool:
        """Whether a delivery that failed transiently after ``attempts`` tries gets another one."""
        return attempts < self.max_attempts

    def delay_after(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed try (``attempts`` ≥ 1)."""
        cap = self.base_delay_s * 2.0 ** (attempts - 1)
        return rng.uniform(cap / 2, cap)


@dataclass(frozen=True)
class QuietRule:
    """When SMS must wait: a daily local window (``start > end`` spans midnight), and Sundays if set."""

    window: tuple[time, time] | None
    sundays: bool
    zone: tzinfo


def in_quiet_window(moment: time, window: tuple[time, time]) -> bool:
    """Whether the local time ``moment`` falls in ``[start, end)`` (spanning midnight when start > end)."""
    start, end = window
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


def next_allowed(at: datetime, rule: QuietRule) -> datetime:
    """The earliest instant at or after ``at`` outside the quiet periods of ``rule``, in UTC.

    Saturday 21:00 with 20:00–08:00 and Sundays → Monday 08:00 local time.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    local = at.astimezone(rule.zone)
    # Each step moves forward to the end of one quiet period; three steps cover any combination
    # (a window, then Sunday, then the window again on Monday morning).
    for _ in range(4):
        if rule.sundays and local.weekday() == _SUNDAY:
            local = _local(local.date() + timedelta(days=1), time(0), rule.zone)
        elif rule.window is not None and in_quiet_window(local.time(), rule.window):
            start, end = rule.window
            ends_tomorrow = start > end and local.time() >= start
            local = _local(local.date() + timedelta(days=int(ends_tomorrow)), end, rule.zone)
        else:
            return local.astimezone(UTC)
    return local.astimezone(UTC)


def digest_cutoff(now: datetime, at: time, zone: tzinfo) -> datetime | None:
    """Today's digest cut-off (local ``at``) once ``now`` has passed it, else ``None`` (not due yet).

    Stage updates recorded before the cut-off belong to that day's digest; later ones to the next day's.
    """
    local = now.astimezone(zone)
    cutoff = _local(local.date(), at, zone)
    return cutoff.astimezone(UTC) if local >= cutoff else None


def _local(day: date, moment: time, zone: tzinfo) -> datetime:
    """The instant the local clock first reads ``moment`` or later on ``day``.

    When ``moment`` falls in the gap of a spring-forward change (02:30 on the last Sunday of March in Paris),
    no instant reads it: the answer is the change itself (03:00), the first instant past it. Taking the
    gap's wall time at face value would land an hour late (03:30) and skip a sending slot.
    """
    naive = datetime.combine(day, moment.replace(fold=0))  # a settings time may carry fold=1: not ours to pick
    after = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0 in a gap: the offset before the change
    if after.astimezone(zone).replace(tzinfo=None) == naive:
        return after.astimezone(zone)
    before = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)  # the offset after the change: before the gap
    # The local clock is monotonic between the two; the change is the first instant reading past ``naive``.
    while after - before > _RESOLUTION:
        middle = before + (after - before) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            after = middle
        else:
            before = middle
    return after.astimezone(zone)
