"""The services' one source of "now": the system clock, or a clock set for replays, acceptance runs and demos.

Every business reading of the time — the reception day that urgency and ``DATE_IN_FUTURE`` are computed
against, the March trêve sweep, assignment expiry, SMS quiet hours, digests and retry due times — goes
through a :class:`Clock` that the composition root (``bootstrap.py``) builds from the settings and hands
down. Nothing else in ``services/`` reads ``datetime.now`` (a test greps for it).

``PREVEX_CLOCK`` (one variable for the three services, so that they agree on the day) sets it:

- unset or empty: the system clock;
- an ISO 8601 instant with its offset (``2026-03-25T10:00:00+01:00``): the clock starts at that instant
  when the service starts and runs from there (:class:`ShiftedClock`), which is what a replay or a demo
  wants — retries, leases and sweeps keep moving;
- with ``PREVEX_CLOCK_FROZEN=true`` as well: the clock stays at that instant (:class:`FrozenClock`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from services.platform.logging import get_logger

if TYPE_CHECKING:
    from services.platform.runtime import Runtime

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "FrozenClock",
    "ShiftedClock",
    "SystemClock",
    "announce_clock",
    "build_clock",
    "parse_instant",
]

log = get_logger(__name__)


class Clock(Protocol):
    """Where a service reads the current time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """The machine's current instant, in UTC."""
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()
"""The machine's clock: the default wherever no clock was injected."""


@dataclass(frozen=True, slots=True)
class FrozenClock:
    """A clock that always reads ``instant`` (UTC once built)."""

    instant: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "instant", _utc(self.instant))

    def now(self) -> datetime:
        """``instant``, every time."""
        return self.instant


class ShiftedClock:
    """A clock that reads ``start`` when it is built and then runs at the pace of ``base``."""

    def __init__(self, start: datetime, base: Clock = SYSTEM_CLOCK) -> None:
        self._base = base
        self._offset = _utc(start) - base.now()

    def now(self) -> datetime:
        """``start`` plus the time ``base`` has run since this clock was built."""
        return self._base.now() + self._offset


def parse_instant(text: str) -> datetime:
    """The instant ``text`` names: ISO 8601 with its UTC offset (``2026-03-25T10:00:00+01:00``, ``…Z``).

    Raises ``ValueError`` with a message naming ``PREVEX_CLOCK`` and the expected form when ``text`` is not
    a date-time or carries no offset (a local time would be read differently on every machine).
    """
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"PREVEX_CLOCK must be an ISO 8601 date-time with its offset, e.g. 2026-03-25T10:00:00+01:00; got {text!r}"
        ) from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"PREVEX_CLOCK needs a UTC offset (e.g. +01:00 or Z) to name one instant; got {text!r}")
    return _utc(instant)


def build_clock(start: datetime | None, *, frozen: bool) -> Clock:
    """The clock the settings ask for: the system clock when ``start`` is ``None``, otherwise one that
    starts at ``start`` and runs (``frozen=False``) or stays there (``frozen=True``)."""
    if start is None:
        return SYSTEM_CLOCK
    return FrozenClock(start) if frozen else ShiftedClock(start)


async def announce_clock(runtime: Runtime) -> None:
    """A start-up step: one WARNING line when the service runs on a set clock, nothing otherwise.

    Loud on purpose: a set clock changes urgencies, reminders and expiries, and must never go unnoticed
    in production logs.
    """
    settings = runtime.settings
    if settings.clock is None:
        return
    log.warning(
        "clock_set",
        service=runtime.name,
        clock_start=settings.clock.isoformat(),
        frozen=settings.clock_frozen,
        detail="PREVEX_CLOCK is set: this service does not run on the system clock",
    )


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("a clock instant must be timezone-aware")
    return instant.astimezone(UTC)
