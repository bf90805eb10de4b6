"""The CCAPEX secretariat's desk (pure): roles, working days, the audit log's pages.

- **Roles** are orientation's admin roles (``services/orientation/auth.py``): ``ccapex-admin`` may add or
  remove a structure on a procedure, ``ccapex-viewer`` only looks.
- **Working days** skip Saturdays, Sundays and French public holidays (the ``holidays`` package): an
  assignment still OUVERTE ``n`` working days after it was decided is listed as not accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Final

import holidays

from services.orientation.auth import Role

__all__ = [
    "AUDIT_PAGE_SIZE",
    "DESK_STRUCTURE",
    "AuditPage",
    "Role",
    "may_override",
    "working_days_between",
]

DESK_STRUCTURE: Final = "CCAPEX"
"""The ``structure_id`` of a desk session and of its audit lines: the secretariat, not a référentiel id."""

AUDIT_PAGE_SIZE: Final = 50


def may_override(role: Role) -> bool:
    """Whether ``role`` may add or remove a structure on a procedure (the viewer only reads)."""
    return role is Role.ADMIN


@cache
def _french_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", years=year))


def _working(day: date) -> bool:
    return day.weekday() < 5 and day not in _french_holidays(day.year)


def working_days_between(start: date, end: date) -> int:
    """How many working days (Monday–Friday, French public holidays excluded) lie after ``start`` up to
    ``end`` included; 0 when ``end`` is not after ``start``."""
    count = 0
    day = start + timedelta(days=1)
    while day <= end:
        count += _working(day)
        day += timedelta(days=1)
    return count


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Page ``number`` (from 1) of an audit log of ``total`` lines, ``AUDIT_PAGE_SIZE`` a page."""

    number: int
    total: int

    @classmethod
    def of(cls, requested: str, total: int) -> AuditPage:
        """The page a query parameter asks for, clamped to the pages that exist (anything unreadable: 1)."""
        wanted = int(requested) if requested.isascii() and requested.isdigit() and len(requested) <= 6 else 1
        return cls(min(max(wanted, 1), max(cls.count_for(total), 1)), total)

    @staticmethod
    def count_for(total: int) -> int:
        return -(-total // AUDIT_PAGE_SIZE)

    @property
    def offset(self) -> int:
        return (self.number - 1) * AUDIT_PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(self.count_for(self.total), 1)
