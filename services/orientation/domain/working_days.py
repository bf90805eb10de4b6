"""Working days in France, for the escalation of unanswered assignments (pure).

A working day is Monday to Friday and not a French public holiday (1 January, Easter Monday, 1 and 8 May,
Ascension, Whit Monday, 14 July, 15 August, 1 and 11 November, 25 December), taken from the ``holidays``
package rather than a hand-kept list, so the movable feasts of every year are right.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import holidays

__all__ = ["add_working_days", "is_working_day", "latest_start_due"]

_DAY = timedelta(days=1)


@cache
def _french_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", years=year))


def is_working_day(day: date) -> bool:
    """Monday to Friday, and not a French public holiday."""
    return day.weekday() < 5 and day not in _french_holidays(day.year)


def add_working_days(start: date, count: int) -> date:
    """The ``count``-th working day after ``start`` (``start`` itself never counts); ``start`` for 0."""
    if count < 0:
        raise ValueError("count must not be negative")
    day = start
    while count:
        day += _DAY
        count -= is_working_day(day)
    return day


def latest_start_due(today: date, count: int) -> date:
    """The latest day ``start`` such that ``add_working_days(start, count) <= today``: anything that began
    on or before it has waited ``count`` working days by ``today``. ``count`` must be at least 1."""
    if count < 1:
        raise ValueError("count must be at least 1")
    day = today
    while True:
        if is_working_day(day):
            count -= 1
            if not count:
                return day - _DAY
        day -= _DAY
