"""Orientation's refused status changes: ``assignment.status`` events it did not apply (unknown assignment,
transition not allowed…), kept in its ``assignment_status_refused`` table with the reason, never raised
(services/orientation/lifecycle.py). Ingest's rejected inputs are its own CLI's (``rejections``)."""

from __future__ import annotations

import uuid
from typing import Any

from services.ops.readers import Schemas

__all__ = ["list_refusals", "show_refusal"]

_COLUMNS = (
    "event_id, received_at, procedure_id, assignment_id, structure_id, requested_status, current_status,"
    " actor, override, refusal, detail"
)


async def list_refusals(schemas: Schemas, *, limit: int) -> list[dict[str, Any]]:
    """Refused status changes, newest first (``[]`` without orientation's schema). Codes, ids and the
    generated detail only: the events carry no personal data."""
    conn = schemas.get("orientation")
    if conn is None:
        return []
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM assignment_status_refused ORDER BY received_at DESC LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]


async def show_refusal(schemas: Schemas, event_id: uuid.UUID) -> dict[str, Any] | None:
    """One refused status change by its event id; ``None`` when orientation has none."""
    conn = schemas.get("orientation")
    if conn is None:
        return None
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM assignment_status_refused WHERE event_id = $1",
        event_id,
    )
    return None if row is None else dict(row)
