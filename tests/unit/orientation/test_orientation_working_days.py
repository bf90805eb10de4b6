"""French working days: weekends and public holidays (fixed and movable) are skipped."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.orientation.domain.working_days import add_working_days, is_working_day, latest_start_due


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 5, 1), False),  # fête du Travail, a Friday
        (date(2026, 5, 8), False),  # Victoire 1945, a Friday
        (date(2026, 5, 14), False),  # Ascension 2026 (movable)
        (date(2026, 5, 25), False),  # lundi de Pentecôte 2026 (movable)
        (date(2026, 4, 6), False),  # lundi de Pâques 2026
        (date(2026, 7, 14), False),  # fête nationale, a Tuesday
        (date(2026, 7, 13), True),  # the Monday before: no "pont" in the law
        (date(2026, 5, 16), False),  # a Saturday
        (date(2026, 5, 17), False),  # a Sunday
        (date(2026, 5, 15), True),  # the Friday after Ascension
        (date(2027, 5, 6), False),  # Ascension 2027: the package knows every year
    ],
)
def test_working_days(day: date, working: bool) -> None:
    assert is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        (date(2026, 5, 4), 5, date(2026, 5, 12)),  # 5, 6, 7, (8 May), 11, 12
        (date(2026, 5, 11), 5, date(2026, 5, 19)),  # 12, 13, (14 Ascension), 15, 18, 19
        (date(2026, 7, 10), 1, date(2026, 7, 13)),  # Friday → Monday
        (date(2026, 7, 13), 1, date(2026, 7, 15)),  # over 14 July
        (date(2026, 4, 30), 2, date(2026, 5, 5)),  # over 1 May and the weekend: 4, 5
        (date(2026, 12, 24), 1, date(2026, 12, 28)),  # over Christmas and the weekend
        (date(2026, 5, 16), 1, date(2026, 5, 18)),  # from a Saturday
        (date(2026, 5, 4), 0, date(2026, 5, 4)),
    ],
)
def test_add_working_days(start: date, count: int, expected: date) -> None:
    assert add_working_days(start, count) == expected


def test_latest_start_due_over_a_holiday_week() -> None:
    # 19 May 2026 is the 5th working day after 11 May (Ascension on the 14th): due that day, not the day before.
    assert latest_start_due(date(2026, 5, 19), 5) == date(2026, 5, 11)
    # On the 18th, five working days back are 18, 15, 13, 12, 11: whatever began by Sunday 10 May is due.
    assert latest_start_due(date(2026, 5, 18), 5) == date(2026, 5, 10)


@pytest.mark.parametrize("bad", [-1])
def test_a_negative_count_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        add_working_days(date(2026, 5, 4), bad)
    with pytest.raises(ValueError, match="at least 1"):
        latest_start_due(date(2026, 5, 4), 0)


@given(
    start=st.dates(min_value=date(2025, 1, 1), max_value=date(2030, 12, 31)),
    count=st.integers(min_value=1, max_value=30),
    later=st.integers(min_value=0, max_value=20),
)
def test_latest_start_due_is_the_inverse_of_add_working_days(start: date, count: int, later: int) -> None:
    today = start + timedelta(days=later)
    cutoff = latest_start_due(today, count)
    assert add_working_days(cutoff, count) <= today
    assert add_working_days(cutoff + timedelta(days=1), count) > today
    assert (add_working_days(start, count) <= today) is (start <= cutoff)
