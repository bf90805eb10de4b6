"""Escalation of unanswered assignments on PostgreSQL, on set clocks: the structure's reminder after 5 working
days, the secretariat's alert 5 working days after the reminder (French public holidays counted), each
published once, none for an assignment answered meanwhile."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from schemas import topics
from schemas.assignment import (
    AssignmentEscalationEvent,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    EscalationStep,
    StatusActor,
)
from schemas.envelope import new_envelope_fields
from schemas.procedure import ProcedureNotificationEvent
from services.orientation import repository as repo
from services.orientation.escalation import escalate_assignments
from services.orientation.lifecycle import StatusHandler

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
OPENED = datetime(2026, 5, 4, 10, 0, tzinfo=PARIS)  # a Monday; 8 May and Ascension (14 May) follow


def _at(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 5, day, hour, 0, tzinfo=PARIS)


@pytest.fixture
async def s01(
    pool: asyncpg.Pool, orient: Callable[..., Any], make_event: Callable[..., ProcedureNotificationEvent]
) -> dict[str, uuid.UUID]:
    """S-01 oriented, its assignments opened on Monday 4 May 2026: structure id → assignment id."""
    event = make_event("s01-cj-commandement-payer")
    await orient(event)
    await pool.execute("UPDATE assignment SET created_at = $1", OPENED)
    async with pool.acquire() as conn:
        rows = await repo.procedure_assignments(conn, event.payload.procedure_id)
    return {"procedure": event.payload.procedure_id} | {r.structure_id: r.assignment_id for r in rows}


async def _sweep(pool: asyncpg.Pool, now: datetime) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await escalate_assignments(conn, now=now, reminder_days=5, secretariat_days=5)


async def _published(pool: asyncpg.Pool) -> list[tuple[str, EscalationStep]]:
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topics.ASSIGNMENT_ESCALATION)
    events = [AssignmentEscalationEvent.model_validate_json(row["value"]).payload for row in rows]
    return sorted((e.structure_id, e.step) for e in events)


async def _accept(pool: asyncpg.Pool, statuses: StatusHandler, s01: dict[str, uuid.UUID], structure: str) -> None:
    payload = AssignmentStatusChange(
        assignment_id=s01[structure],
        procedure_id=s01["procedure"],
        structure_id=structure,
        status=AssignmentStatus.ACCEPTEE,
        by=StatusActor.PARTNER,
    )
    async with pool.acquire() as conn, conn.transaction():
        await statuses.handle_batch(conn, [AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=payload)])


async def test_a_reminder_after_five_working_days_then_the_secretariat_after_five_more(
    pool: asyncpg.Pool, statuses: StatusHandler, s01: dict[str, uuid.UUID]
) -> None:
    structures = sorted(key for key in s01 if key != "procedure")
    assert len(structures) == 3
    first, second = structures[0], structures[1]
    await _accept(pool, statuses, s01, first)

    # 5, 6, 7, (8 May), 11: four working days by Monday 11 May; the fifth is Tuesday 12 May.
    assert await _sweep(pool, _at(11, 23)) == 0
    assert await _sweep(pool, _at(12)) == 2
    reminded = [(s, EscalationStep.STRUCTURE_REMINDER) for s in structures[1:]]
    assert await _published(pool) == reminded
    assert await _sweep(pool, _at(12, 15)) == 0  # once

    # The second structure answers; the third stays silent. From the 12th: 13, (14 Ascension), 15, 18, 19, 20.
    await _accept(pool, statuses, s01, second)
    assert await _sweep(pool, _at(19, 20)) == 0
    assert await _sweep(pool, _at(20)) == 1
    assert await _published(pool) == sorted([*reminded, (structures[2], EscalationStep.SECRETARIAT_ALERT)])
    assert await _sweep(pool, _at(29)) == 0

    rows = await pool.fetch("SELECT assignment_id, step, sent_on FROM assignment_escalation ORDER BY sent_on, step")
    assert [(r["step"], r["sent_on"].isoformat()) for r in rows] == [
        ("STRUCTURE_REMINDER", "2026-05-12"),
        ("STRUCTURE_REMINDER", "2026-05-12"),
        ("SECRETARIAT_ALERT", "2026-05-20"),
    ]


async def test_the_event_names_the_assignment_and_keeps_the_procedures_correlation(
    pool: asyncpg.Pool, s01: dict[str, uuid.UUID]
) -> None:
    await _sweep(pool, _at(12))
    rows = await pool.fetch("SELECT key, value FROM outbox WHERE topic = $1", topics.ASSIGNMENT_ESCALATION)
    assert len(rows) == 3
    async with pool.acquire() as conn:
        correlations = {r.correlation_id for r in await repo.procedure_assignments(conn, s01["procedure"])}
    for row in rows:
        event = AssignmentEscalationEvent.model_validate_json(row["value"])
        assert bytes(row["key"]).decode() == str(s01["procedure"])
        assert event.payload.assignment_id == s01[event.payload.structure_id]
        assert event.payload.working_days == 5
        assert event.correlation_id in correlations
