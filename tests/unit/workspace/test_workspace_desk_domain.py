"""The desk's pure rules: working days with French public holidays, roles, the audit log's pages."""

from __future__ import annotations

from datetime import date

import pytest

from services.workspace.domain.desk import AUDIT_PAGE_SIZE, AuditPage, Role, may_override, working_days_between


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 3, 2), date(2026, 3, 2), 0),  # the same day counts nothing
        (date(2026, 3, 2), date(2026, 2, 27), 0),  # an end before the start too
        (date(2026, 3, 2), date(2026, 3, 6), 4),  # Monday → Friday
        (date(2026, 3, 6), date(2026, 3, 9), 1),  # Friday → Monday: the weekend is skipped
        (date(2026, 4, 30), date(2026, 5, 8), 4),  # 1 May and 8 May (Fridays) are holidays
        (date(2026, 4, 3), date(2026, 4, 7), 1),  # Easter Monday 6 April 2026
        (date(2026, 5, 13), date(2026, 5, 15), 1),  # Ascension Thursday 14 May 2026
        (date(2026, 12, 24), date(2026, 12, 28), 1),  # Christmas, then a weekend
        (date(2026, 12, 31), date(2027, 1, 4), 1),  # across the year: 1 January 2027 is a Friday holiday
        (date(2026, 7, 13), date(2026, 7, 15), 1),  # 14 July
    ],
)
def test_working_days_skip_weekends_and_french_public_holidays(start: date, end: date, expected: int) -> None:
    assert working_days_between(start, end) == expected


def test_only_the_administrator_overrides() -> None:
    assert may_override(Role.ADMIN)
    assert not may_override(Role.VIEWER)


@pytest.mark.parametrize(
    ("requested", "total", "number", "offset", "pages"),
    [
        ("1", 0, 1, 0, 1),
        ("2", AUDIT_PAGE_SIZE + 1, 2, AUDIT_PAGE_SIZE, 2),
        ("9", AUDIT_PAGE_SIZE + 1, 2, AUDIT_PAGE_SIZE, 2),  # past the end: the last page
        ("0", 10, 1, 0, 1),
        ("-3", 10, 1, 0, 1),
        ("abc", 10, 1, 0, 1),
        ("", 10, 1, 0, 1),
        ("9" * 50, 10, 1, 0, 1),  # oversized: page 1, not a huge integer
        ("٣", 500, 1, 0, 10),  # a non-ASCII digit is not a page number
    ],
)
def test_the_audit_page_is_clamped_to_the_pages_that_exist(
    requested: str, total: int, number: int, offset: int, pages: int
) -> None:
    page = AuditPage.of(requested, total)
    assert (page.number, page.offset, page.pages) == (number, offset, pages)
