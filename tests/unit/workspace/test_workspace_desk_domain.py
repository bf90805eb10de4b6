"""The desk's pure rules: roles, the audit log's pages."""

from __future__ import annotations

import pytest

from services.workspace.domain.desk import AUDIT_PAGE_SIZE, AuditPage, Role, may_override


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
