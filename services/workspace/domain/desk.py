"""The CCAPEX secretariat's desk (pure): roles, the audit log's pages.

**Roles** are orientation's admin roles (``services/orientation/auth.py``): ``ccapex-admin`` may add or
remove a structure on a procedure and edit the référentiel, ``ccapex-viewer`` only looks. Working days
(the « non acceptées » list) are orientation's rule, ``services/orientation/domain/working_days.py``,
imported where used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from services.orientation.auth import Role

__all__ = [
    "AUDIT_PAGE_SIZE",
    "DESK_STRUCTURE",
    "AuditPage",
    "Role",
    "may_edit_referential",
    "may_override",
]

DESK_STRUCTURE: Final = "CCAPEX"
"""The ``structure_id`` of a desk session and of its audit lines: the secretariat, not a référentiel id."""

AUDIT_PAGE_SIZE: Final = 50


def may_override(role: Role) -> bool:
    """Whether ``role`` may add or remove a structure on a procedure (the viewer only reads)."""
    return role is Role.ADMIN


def may_edit_referential(role: Role) -> bool:
    """Whether ``role`` may edit the référentiel's structures, contacts and offers from the desk: the
    role orientation's admin API asks for a change (the viewer sees the list, not the forms)."""
    return role is Role.ADMIN


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
