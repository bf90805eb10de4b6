"""Retry backoff within its window, SMS quiet hours (Europe/Paris, Sundays, DST) and digest cut-offs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.domain.schedule import (
    QuietRule,
    RetryPolicy,
    digest_cutoff,
    in_quiet_window,
    next_allowed,
)

PARIS = ZoneInfo("Europe/Paris")
NIGHT = (time(20, 0), time(8, 0))
DEFAULT = QuietRule(NIGHT, sundays=True, zone=PARIS)


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def test_default_policy_is_eight_tries_within_thirty_minutes() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 8
    assert [policy.can_retry(n) for n in range(1, 9)] == [True] * 7 + [False]
    caps = [policy.base_delay_s * 2 ** (n - 1) for n in range(1, 8)]
    assert sum(caps) == pytest.approx(1800.0)
    rng = random.Random(7)
    delays = [policy.delay_after(n, rng) for n in range(1, 8)]
    assert all(cap / 2 <= delay <= cap for delay, cap in zip(delays, caps, strict=True))
    assert delays == sorted(delays), "each wait is at least the previous cap, so waits grow"


@settings(max_examples=200)
@given(
    max_attempts=st.integers(1, 15),
    window_s=st.floats(0.5, 86_400, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_all_retries_fit_in_the_window_whatever_the_jitter(max_attempts: int, window_s: float, seed: int) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, window_s=window_s)
    rng = random.Random(seed)
    waits = [policy.delay_after(n, rng) for n in range(1, max_attempts) if policy.can_retry(n)]
    assert len(waits) == max_attempts - 1
    assert sum(waits) <= window_s * (1 + 1e-9)
    assert all(wait > 0 for wait in waits)


def test_jitter_spreads_retries_of_deliveries_that_failed_together() -> None:
    policy, rng = RetryPolicy(), random.Random(1)
    assert len({round(policy.delay_after(1, rng), 3) for _ in range(50)}) > 40


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (paris(2026, 3, 3, 12, 0), paris(2026, 3, 3, 12, 0)),  # Tuesday noon: send now
        (paris(2026, 3, 3, 19, 59), paris(2026, 3, 3, 19, 59)),
        (paris(2026, 3, 3, 20, 0), paris(2026, 3, 4, 8, 0)),  # start of the window is quiet
        (paris(2026, 3, 3, 23, 30), paris(2026, 3, 4, 8, 0)),
        (paris(2026, 3, 4, 7, 59), paris(2026, 3, 4, 8, 0)),
        (paris(2026, 3, 4, 8, 0), paris(2026, 3, 4, 8, 0)),  # end of the window is not
        (paris(2026, 3, 7, 21, 0), paris(2026, 3, 9, 8, 0)),  # Saturday night → Monday 08:00
        (paris(2026, 3, 8, 12, 0), paris(2026, 3, 9, 8, 0)),  # Sunday noon → Monday 08:00
        (paris(2026, 3, 28, 22, 0), paris(2026, 3, 30, 8, 0)),  # over the spring DST change (29 March)
        (paris(2026, 10, 24, 22, 0), paris(2026, 10, 26, 8, 0)),  # over the autumn DST change (25 October)
    ],
)
def test_sms_wait_for_the_end_of_quiet_hours_and_sundays(at: datetime, expected: datetime) -> None:
    assert next_allowed(at, DEFAULT) == expected.astimezone(UTC)


def test_a_contact_window_that_does_not_span_midnight_and_no_sunday_rule() -> None:
    lunch = QuietRule((time(12, 0), time(14, 0)), sundays=False, zone=PARIS)
    assert next_allowed(paris(2026, 3, 8, 12, 30), lunch) == paris(2026, 3, 8, 14, 0).astimezone(UTC)
    assert next_allowed(paris(2026, 3, 8, 20, 30), lunch) == paris(2026, 3, 8, 20, 30).astimezone(UTC)
    no_rule = QuietRule(None, sundays=False, zone=PARIS)
    assert next_allowed(paris(2026, 3, 8, 3, 0), no_rule) == paris(2026, 3, 8, 3, 0).astimezone(UTC)


def test_a_window_ending_in_the_spring_forward_gap_ends_at_the_change() -> None:
    # 29 March 2026 in Paris: 02:00 becomes 03:00, no instant reads 02:30. The first one past it is 03:00,
    # not 03:30 (the gap's wall time taken at face value) — and a settings time's fold changes nothing.
    night = QuietRule((time(1, 0), time(2, 30)), sundays=False, zone=PARIS)
    change = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert next_allowed(paris(2026, 3, 29, 1, 30), night) == change
    folded = QuietRule((time(1, 0), time(2, 30, fold=1)), sundays=False, zone=PARIS)
    assert next_allowed(paris(2026, 3, 29, 1, 30), folded) == change


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_allowed(datetime(2026, 3, 3, 12, 0), DEFAULT)  # noqa: DTZ001


windows = st.tuples(st.times(), st.times()).filter(lambda w: w[0] != w[1])


@settings(max_examples=300)
@given(
    # Hypothesis wants naive bounds; the generated instants are UTC.
    at=st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),  # noqa: DTZ001
    window=st.none() | windows,
    sundays=st.booleans(),
)
def test_next_allowed_is_the_first_allowed_minute(
    at: datetime, window: tuple[time, time] | None, sundays: bool
) -> None:
    rule = QuietRule(window, sundays, PARIS)

    def quiet(moment: datetime) -> bool:
        local = moment.astimezone(PARIS)
        return (sundays and local.weekday() == 6) or (window is not None and in_quiet_window(local.time(), window))

    allowed = next_allowed(at, rule)
    assert allowed >= at
    assert not quiet(allowed)
    # Every minute before it (sampled) is quiet: no earlier sending slot was skipped.
    step = max(timedelta(minutes=1), (allowed - at) / 200)
    moment = at
    while moment + step < allowed:
        assert quiet(moment), f"{moment} was allowed but {allowed} was chosen"
        moment += step


def test_digest_is_due_once_the_local_digest_time_passed() -> None:
    at = time(8, 30)
    assert digest_cutoff(paris(2026, 3, 3, 8, 29), at, PARIS) is None
    assert digest_cutoff(paris(2026, 3, 3, 8, 30), at, PARIS) == paris(2026, 3, 3, 8, 30).astimezone(UTC)
    assert digest_cutoff(paris(2026, 3, 3, 23, 0), at, PARIS) == paris(2026, 3, 3, 8, 30).astimezone(UTC)
    # Just after midnight local time (still the previous day in UTC) nothing is due yet.
    assert digest_cutoff(datetime(2026, 3, 3, 23, 30, tzinfo=UTC), at, PARIS) is None
