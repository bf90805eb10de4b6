"""SQL of the CCAPEX secretariat's desk: its sessions, its lists, the audit log.

Every function runs on the caller's connection (and transaction); none opens one of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from schemas.assignment import AssignmentStatus
from schemas.procedure import Urgency
from schemas.stages import Stage
from services.platform.db import Conn
from services.workspace.domain.desk import AUDIT_PAGE_SIZE, AuditPage, Role

__all__ = [
    "AuditLine",
    "DeskLine",
    "DeskSession",
    "audit_lines",
    "desk_lists",
    "desk_session",
]


@dataclass(frozen=True, slots=True)
class DeskSession:
    """A signed-in member of the secretariat: the token's name (never the token) and its role."""

    session_id: uuid.UUID
    principal: str
    role: Role
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class DeskLine:
    """A procedure in one of the desk's lists, with the structure concerned when the list is about one."""

    short_ref: str
    stage: Stage | None
    urgency: Urgency | None
    commune: str | None
    structure_name: str | None
    status: AssignmentStatus | None
    status_reason: str | None
    since: datetime | None


@dataclass(frozen=True, slots=True)
class AuditLine:
    at: datetime
    who: str | None
    structure_id: str | None
    short_ref: str | None
    action: str
    outcome: str


async def desk_session(conn: Conn, session_id: uuid.UUID) -> DeskSession | None:
    """The desk session ``session_id`` (``None`` for a partner's session)."""
    row = await conn.fetchrow(
        "SELECT session_id, principal, role, csrf_token, created_at, last_seen_at FROM session"
        " WHERE session_id = $1 AND role IS NOT NULL",
        session_id,
    )
    return DeskSession(**{**dict(row), "role": Role(row["role"])}) if row else None


_LINE = """SELECT p.short_ref, p.stage, p.urgency, coalesce(p.commune_name, p.commune_insee) AS commune, {structure}
    FROM procedure p {join} WHERE p.closed_at IS NULL AND {where} ORDER BY {order} LIMIT 200"""
_WITH_ASSIGNMENT = {
    "structure": "coalesce(s.record->>'nom', a.structure_id) AS structure_name, a.status, a.status_reason,"
    " a.status_at AS since",
    "join": "JOIN assignment a USING (procedure_id) LEFT JOIN structure s USING (structure_id)",
}
_PROCEDURE_ONLY = {
    "structure": "NULL AS structure_name, NULL AS status, NULL AS status_reason, p.decided_at AS since",
    "join": "",
}
_QUERIES = {
    "f1": _LINE.format(**_PROCEDURE_ONLY, where="p.fallback_used", order="p.decided_at DESC NULLS LAST"),
    "over_capacity": _LINE.format(
        **_WITH_ASSIGNMENT, where="a.over_capacity AND a.status IN ('OUVERTE', 'ACCEPTEE')", order="a.decided_at"
    ),
    "refused": _LINE.format(**_WITH_ASSIGNMENT, where="a.status = 'REFUSEE'", order="a.status_at DESC"),
    "urgent": _LINE.format(
        **_PROCEDURE_ONLY,
        where="p.urgency IN ('HIGH', 'CRITICAL')",
        order="p.urgency = 'CRITICAL' DESC, p.earliest_expulsion_date NULLS LAST",
    ),
    "overdue": _LINE.format(
        **_WITH_ASSIGNMENT,
        where="a.status = 'OUVERTE' AND (a.decided_at AT TIME ZONE 'Europe/Paris')::date <= $1",
        order="a.decided_at",
    ),
}


def _line(row: Any) -> DeskLine:
    return DeskLine(
        short_ref=str(row["short_ref"]),
        stage=Stage(row["stage"]) if row["stage"] else None,
        urgency=Urgency(row["urgency"]) if row["urgency"] else None,
        commune=row["commune"],
        structure_name=row["structure_name"],
        status=AssignmentStatus(row["status"]) if row["status"] else None,
        status_reason=row["status_reason"],
        since=row["since"],
    )


async def desk_lists(conn: Conn, *, overdue_decided_by: date) -> dict[str, list[DeskLine]]:
    """The open procedures of each list, 200 at most each: ``f1`` (no offer matched), ``over_capacity``,
    ``refused``, ``urgent`` (HIGH or CRITICAL), and ``overdue``: assignments still OUVERTE that were decided
    on or before ``overdue_decided_by`` (a day in Europe/Paris)."""
    lists = {}
    for name, sql in _QUERIES.items():
        arguments = (overdue_decided_by,) if name == "overdue" else ()
        lists[name] = [_line(r) for r in await conn.fetch(sql, *arguments)]
    return lists


async def audit_lines(
    conn: Conn, *, short_ref: str | None, structure_id: str | None, requested_page: str
) -> tuple[AuditPage, list[AuditLine]]:
    """One page of the audit log, newest first, filtered by procedure reference and structure when given."""
    where = "($1::text IS NULL OR p.short_ref = $1) AND ($2::text IS NULL OR l.structure_id = $2)"
    base = (
        "FROM audit_log l LEFT JOIN procedure p USING (procedure_id) LEFT JOIN session s USING (session_id)"
        f" WHERE {where}"
    )
    total: int = await conn.fetchval(f"SELECT count(*) {base}", short_ref, structure_id)
    page = AuditPage.of(requested_page, total)
    rows = await conn.fetch(
        "SELECT l.at, s.principal AS who, l.structure_id, p.short_ref, l.action, l.outcome"
        f" {base} ORDER BY l.at DESC, l.id DESC LIMIT {AUDIT_PAGE_SIZE} OFFSET $3",
        short_ref,
        structure_id,
        page.offset,
    )
    return page, [AuditLine(**dict(r)) for r in rows]
