"""Sortie-de-trêve reminders on PostgreSQL (docs/domain.md §7, scenario S-06): once per procedure
and trêve, across concurrent sweeps, with the SIAO added and the CCAPEX's removals respected."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

import asyncpg
import pytest

from schemas import topics
from schemas.orientation import AssignmentKind, DecisionTrigger, OrientationDecidedEvent
from schemas.procedure import ProcedureNotificationEvent
from services.orientation import repository as repo
from services.orientation.referential_store import ReferentialHolder
from services.orientation.truce import remind_truce_end

pytestmark = pytest.mark.integration

MakeEvent = Callable[..., ProcedureNotificationEvent]
Orient = Callable[..., Any]
MARCH_1 = date(2026, 3, 1)


async def _decided(pool: asyncpg.Pool) -> list[OrientationDecidedEvent]:
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topics.ORIENTATION_DECIDED)
    return [OrientationDecidedEvent.model_validate_json(row["value"]) for row in rows]


async def _remind(pool: asyncpg.Pool, holder: ReferentialHolder, today: date, limit: int = 500) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await remind_truce_end(conn, holder, now=datetime.combine(today, time(9), UTC), limit=limit)


@pytest.fixture
async def s06(pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent) -> uuid.UUID:
    """S-06 oriented (CQL served 2025-12-10, earliest expulsion 2026-04-01): its procedure id."""
    event = make_event("s06-cj-commandement-quitter")
    assert event.payload.notification.derived.earliest_expulsion_date == date(2026, 4, 1)
    await orient(event)
    return event.payload.procedure_id


async def test_s06_on_1_march_the_holders_are_reminded_and_the_siao_added_once(
    pool: asyncpg.Pool, seeded: ReferentialHolder, s06: uuid.UUID
) -> None:
    [first] = await _decided(pool)
    holders = {a.structure_id: a.assignment_id for a in first.payload.assignments}
    assert set(holders) == {"CCAS-BELFORT", "CD90", "TH90"}

    assert await _remind(pool, seeded, MARCH_1) == 1

    [_, reminder] = await _decided(pool)
    payload = reminder.payload
    assert payload.trigger is DecisionTrigger.WINTER_TRUCE_END
    assert (payload.procedure_id, payload.stage, payload.earliest_expulsion_date) == (
        s06,
        first.payload.stage,
        date(2026, 4, 1),
    )
    assert reminder.correlation_id == first.correlation_id
    updates = {a.structure_id: a.assignment_id for a in payload.assignments if a.kind is AssignmentKind.STAGE_UPDATE}
    assert updates == holders
    [siao] = [a for a in payload.assignments if a.kind is AssignmentKind.NEW]
    assert (siao.structure_id, siao.offer_ids) == ("SIAO90", ["SIAO90"])
    async with pool.acquire() as conn:
        stored = {row.structure_id: row for row in await repo.procedure_assignments(conn, s06)}
    assert (stored["SIAO90"].assignment_id, stored["SIAO90"].status) == (siao.assignment_id, "OUVERTE")
    assert await pool.fetchval("SELECT decision_id FROM truce_reminder WHERE procedure_id = $1", s06) == (
        reminder.event_id
    )

    # Later in March, and on another day of the same month: nothing more for this trêve.
    assert await _remind(pool, seeded, date(2026, 3, 15)) == 0
    assert len(await _decided(pool)) == 2


@pytest.mark.parametrize("today", [date(2026, 2, 28), date(2026, 4, 1), date(2025, 12, 15)])
async def test_outside_march_nothing_is_sent(
    pool: asyncpg.Pool, seeded: ReferentialHolder, s06: uuid.UUID, today: date
) -> None:
    assert await _remind(pool, seeded, today) == 0
    assert len(await _decided(pool)) == 1
    assert await pool.fetchval("SELECT count(*) FROM truce_reminder") == 0


async def test_a_procedure_whose_earliest_date_is_not_the_end_of_the_truce_is_left_alone(
    pool: asyncpg.Pool, seeded: ReferentialHolder, orient: Orient, make_event: MakeEvent
) -> None:
    await orient(make_event("s01-cj-commandement-payer"))  # a commandement de payer: no expulsion date
    assert await _remind(pool, seeded, MARCH_1) == 0
    assert len(await _decided(pool)) == 1


async def test_a_removed_siao_is_not_added_and_a_closed_assignment_is_not_reminded(
    pool: asyncpg.Pool, seeded: ReferentialHolder, s06: uuid.UUID
) -> None:
    async with pool.acquire() as conn:
        await repo.set_override(conn, s06, "SIAO90", "REMOVE", uuid.uuid4())
        await conn.execute(
            "UPDATE assignment SET status = 'CLOTUREE' WHERE procedure_id = $1 AND structure_id = 'TH90'", s06
        )
    assert await _remind(pool, seeded, MARCH_1) == 1
    [_, reminder] = await _decided(pool)
    assert [(a.structure_id, a.kind) for a in reminder.payload.assignments] == [
        ("CCAS-BELFORT", AssignmentKind.STAGE_UPDATE),
        ("CD90", AssignmentKind.STAGE_UPDATE),
    ]


async def test_nobody_left_to_remind_is_recorded_without_a_decision(
    pool: asyncpg.Pool, seeded: ReferentialHolder, s06: uuid.UUID
) -> None:
    async with pool.acquire() as conn:
        await repo.set_override(conn, s06, "SIAO90", "REMOVE", uuid.uuid4())
        await conn.execute("UPDATE assignment SET status = 'REFUSEE' WHERE procedure_id = $1", s06)
    assert await _remind(pool, seeded, MARCH_1) == 1
    assert len(await _decided(pool)) == 1
    assert await pool.fetchval("SELECT decision_id IS NULL FROM truce_reminder WHERE procedure_id = $1", s06)
    assert await _remind(pool, seeded, MARCH_1) == 0


async def test_two_replicas_sweeping_together_remind_each_procedure_once(
    pool: asyncpg.Pool, seeded: ReferentialHolder, orient: Orient, make_event: MakeEvent
) -> None:
    for _ in range(5):
        await orient(make_event("s06-cj-commandement-quitter"))
    other = ReferentialHolder()  # the second replica's own
    handled = await asyncio.gather(_remind(pool, seeded, MARCH_1, limit=2), _remind(pool, other, MARCH_1, limit=2))
    while await _remind(pool, seeded, MARCH_1, limit=2):
        pass
    reminders = [d for d in await _decided(pool) if d.payload.trigger is DecisionTrigger.WINTER_TRUCE_END]
    assert sum(handled) >= 2
    assert len(reminders) == len({d.payload.procedure_id for d in reminders}) == 5
    assert await pool.fetchval("SELECT count(*) FROM assignment WHERE structure_id = 'SIAO90'") == 5
