"""Orientation's SQL on the service clock's time: assignments created at it, the capacity week and expiry
counted from it (not from PostgreSQL's ``now()``), on both sides of their boundaries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from schemas.procedure import ProcedureNotificationEvent
from services.orientation import repository as repo
from services.orientation.lifecycle import expire_assignments
from services.orientation.orient import Orientation

MakeEvent = Callable[..., ProcedureNotificationEvent]
# Sunday 14 June 2026, 23:30 in Paris (summer time): half an hour before the capacity week turns.
SUNDAY_NIGHT = datetime(2026, 6, 14, 21, 30, tzinfo=UTC)
MONDAY_MIDNIGHT_PARIS = datetime(2026, 6, 14, 22, 0, tzinfo=UTC)
S04_OFFERS = ["CD90-DSF", "CD90-ACCOMP", "PJ90-INFO"]
ONE_MICROSECOND = timedelta(microseconds=1)


async def _orient_at(pool: asyncpg.Pool, orientation: Orientation, event: ProcedureNotificationEvent) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await orientation.handle_batch(conn, [event], now=SUNDAY_NIGHT)


async def test_assignments_are_created_at_the_clock_time_and_counted_in_its_paris_week(
    pool: asyncpg.Pool, orientation: Orientation, make_event: MakeEvent
) -> None:
    await _orient_at(pool, orientation, make_event("s04-cj-assignation"))

    assert {row["created_at"] for row in await pool.fetch("SELECT created_at FROM assignment")} == {SUNDAY_NIGHT}
    async with pool.acquire() as conn:
        sunday = await repo.weekly_assignment_counts(conn, S04_OFFERS, now=MONDAY_MIDNIGHT_PARIS - ONE_MICROSECOND)
        monday = await repo.weekly_assignment_counts(conn, S04_OFFERS, now=MONDAY_MIDNIGHT_PARIS)
    assert sunday == dict.fromkeys(S04_OFFERS, 1)
    assert monday == {}


async def test_expiry_counts_its_days_from_the_clock_time_of_creation(
    pool: asyncpg.Pool, orientation: Orientation, make_event: MakeEvent
) -> None:
    await _orient_at(pool, orientation, make_event("s04-cj-assignation"))
    opened = await pool.fetchval("SELECT count(*) FROM assignment WHERE status = 'OUVERTE'")
    thirty_days_on = SUNDAY_NIGHT + timedelta(days=30)

    async with pool.acquire() as conn, conn.transaction():
        assert await expire_assignments(conn, days=30, now=thirty_days_on) == 0
    async with pool.acquire() as conn, conn.transaction():
        assert await expire_assignments(conn, days=30, now=thirty_days_on + ONE_MICROSECOND) == opened
    assert await pool.fetchval("SELECT count(*) FROM assignment WHERE status = 'EXPIREE'") == opened == 3
