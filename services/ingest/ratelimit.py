"""Per-emitter rate limit of the HTTP intake: a token bucket per emitter, in memory.

Each request takes one token; a bucket holds at most ``burst`` tokens and refills at ``rate_per_s``. In
memory means per process: with N replicas behind a load balancer an emitter gets up to N times the
rate, which is acceptable for a limit meant to stop a runaway client, not to meter usage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TokenBuckets"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets keyed by emitter id. ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> int | None:
        """Take a token for ``key``: ``None`` when granted, else the whole seconds to wait (``Retry-After``)."""
        now = self._clock()
        bucket = self._buckets.setdefault(key, _Bucket(self._burst, now))
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / self._rate))
