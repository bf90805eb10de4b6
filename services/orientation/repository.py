"""SQL of the orientation schema: référentiel versions, assignments, decisions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from services.platform.db import Conn

__all__ = [
    "insert_assignments",
    "insert_decision",
    "latest_referential",
    "open_assignments",
    "store_referential",
    "weekly_assignment_counts",
]


async def latest_referential(conn: Conn) -> tuple[int, str, dict[str, Any]] | None:
    """``(version, content_hash, document)`` of the newest référentiel, if any was loaded."""
    row = await conn.fetchrow(
        "SELECT version, content_hash, document FROM referential_version ORDER BY version DESC LIMIT 1"
    )
    return (row["version"], row["content_hash"], row["document"]) if row else None


async def store_referential(conn: Conn, *, content_hash: str, document: dict[str, Any], source: str) -> int:
    """Store a référentiel under the next version number unless identical content exists; return its version."""
    existing = await conn.fetchval("SELECT version FROM referential_version WHERE content_hash = $1", content_hash)
    if existing is not None:
        return int(existing)
    version: int = await conn.fetchval(
        "INSERT INTO referential_version (version, content_hash, document, source)"
        " SELECT coalesce(max(version), 0) + 1, $1, $2, $3 FROM referential_version RETURNING version",
        content_hash,
        document,
        source,
    )
    return version


async def open_assignments(conn: Conn, procedure_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """Structure id → assignment id of the procedure's OUVERTE/ACCEPTEE assignments, locked."""
    rows = await conn.fetch(
        "SELECT structure_id, assignment_id FROM assignment"
        " WHERE procedure_id = $1 AND status IN ('OUVERTE', 'ACCEPTEE') FOR UPDATE",
        procedure_id,
    )
    return {r["structure_id"]: r["assignment_id"] for r in rows}


async def weekly_assignment_counts(conn: Conn) -> dict[str, int]:
    """Offer id → assignments created since the start of the current ISO week (capacity accounting)."""
    rows = await conn.fetch(
        "SELECT offer_id, count(*) AS n FROM assignment, unnest(offer_ids) AS offer_id"
        " WHERE created_at >= date_trunc('week', now()) GROUP BY offer_id"
    )
    return {r["offer_id"]: r["n"] for r in rows}


async def insert_assignments(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert new assignments: ``(assignment_id, procedure_id, structure_id, offer_ids, mandatory,
    priority, over_capacity, explanation, referentiel_version, notification_id)``."""
    await conn.executemany(
        "INSERT INTO assignment (assignment_id, procedure_id, structure_id, offer_ids, mandatory, priority,"
        " over_capacity, explanation, referentiel_version, notification_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        rows,
    )


async def insert_decision(
    conn: Conn,
    *,
    decision_id: uuid.UUID,
    procedure_id: uuid.UUID,
    notification_id: uuid.UUID,
    stage: str,
    referentiel_version: int,
    rules_version: str,
    fallback_used: bool,
    result: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO decision (decision_id, procedure_id, notification_id, stage, referentiel_version,"
        " rules_version, fallback_used, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        decision_id,
        procedure_id,
        notification_id,
        stage,
        referentiel_version,
        rules_version,
        fallback_used,
        result,
    )
