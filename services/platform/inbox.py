"""Inbox: remembers consumed event ids so a redelivered event has no second effect."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from services.platform.db import Conn

__all__ = ["AdvisoryLocks", "claim_event", "claim_events"]


@dataclass(frozen=True)
class AdvisoryLocks:
    """Transaction-level advisory locks of one class, in PostgreSQL's two-key form ``(lock_class, key)``.

    ``keys`` must be sorted and distinct: they are locked in that order, so that two transactions locking
    overlapping sets never wait on each other in opposite orders.
    """

    lock_class: int
    keys: Sequence[int]


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


async def claim_events(
    conn: Conn, event_ids: Sequence[uuid.UUID], topic: str, *, after_locking: AdvisoryLocks | None = None
) -> set[uuid.UUID]:
    """``claim_event`` for a whole batch in one statement; returns the ids not seen before.

    ``after_locking``: advisory locks the same statement takes first — every one of them before the first
    claim, so the claims wait for the locks as if they were taken by a statement of their own (a batch that
    locks its procedures before claiming their events), one round trip fewer.
    """
    if after_locking is None or not after_locking.keys:
        rows = await conn.fetch(
            "INSERT INTO inbox (event_id, topic) SELECT DISTINCT unnest($1::uuid[]), $2"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            list(event_ids),
            topic,
        )
    else:
        rows = await conn.fetch(
            # The aggregate consumes every lock (a function scan of unnest yields the keys in order) before
            # the join yields its first row to insert.
            "INSERT INTO inbox (event_id, topic) SELECT DISTINCT e.id, $2 FROM unnest($1::uuid[]) AS e(id),"
            " (SELECT count(l.locked) FROM (SELECT pg_advisory_xact_lock($3, k) AS locked"
            " FROM unnest($4::int[]) AS k) AS l) AS locks"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            list(event_ids),
            topic,
            after_locking.lock_class,
            list(after_locking.keys),
        )
    return {row["event_id"] for row in rows}
