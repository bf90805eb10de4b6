"""Inbox: remembers consumed event ids so a redelivered event has no second effect."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.platform.db import Conn

__all__ = ["claim_event", "claim_events"]


async def claim_event(conn: Conn, event_id: uuid.UUID, topic: str) -> bool:
    """Record ``event_id`` as consumed in the caller's transaction.

    Returns ``False`` when it was already recorded: the caller then skips the event. Because the
    row commits with the event's effects, a crash before commit leaves neither behind.
    """
    inserted = await conn.fetchval(
        "INSERT INTO inbox (event_id, topic) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        event_id,
        topic,
    )
    return bool(inserted)


async def claim_events(conn: Conn, event_ids: Sequence[uuid.UUID], topic: str) -> set[uuid.UUID]:
    """``claim_event`` for a whole batch in one statement; returns the ids not seen before."""
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id, topic) SELECT DISTINCT unnest($1::uuid[]), $2"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
        topic,
    )
    return {row["event_id"] for row in rows}
