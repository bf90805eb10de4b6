"""Assignment lifecycle on PostgreSQL: partner answers, refused changes, CCAPEX overrides, expiry."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from schemas import topics
from schemas.assignment import (
    AssignmentOverride,
    AssignmentStatus,
    AssignmentStatusEvent,
    StatusActor,
)
from schemas.orientation import AssignmentKind, DecisionTrigger, OrientationDecidedEvent
from schemas.procedure import ProcedureNotificationEvent
from services.orientation import repository as repo
from services.orientation.lifecycle import StatusHandler, expire_assignments
from tests.integration.orientation.conftest import status_event

pytestmark = pytest.mark.integration

MakeEvent = Callable[..., ProcedureNotificationEvent]
Orient = Callable[..., Any]
S = AssignmentStatus


@pytest.fixture
def apply(pool: asyncpg.Pool, statuses: StatusHandler) -> Callable[..., Any]:
    async def run(*events: AssignmentStatusEvent) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await statuses.handle_batch(conn, events)

    return run


@pytest.fixture
async def s01(pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent) -> dict[str, uuid.UUID]:
    """S-01 oriented: structure id → assignment id; the procedure id under ``"procedure"``."""
    event = make_event("s01-cj-commandement-payer")
    await orient(event)
    async with pool.acquire() as conn:
        rows = await repo.procedure_assignments(conn, event.payload.procedure_id)
    return {"procedure": event.payload.procedure_id} | {r.structure_id: r.assignment_id for r in rows}


async def _status_of(pool: asyncpg.Pool, assignment_id: uuid.UUID) -> tuple[str, str | None, str | None]:
    row = await pool.fetchrow(
        "SELECT status, status_reason, status_by FROM assignment WHERE assignment_id = $1", assignment_id
    )
    assert row is not None
    return row["status"], row["status_reason"], row["status_by"]


async def _refusals(pool: asyncpg.Pool) -> list[tuple[str, str | None]]:
    rows = await pool.fetch("SELECT refusal, current_status FROM assignment_status_refused ORDER BY received_at")
    return [(r["refusal"], r["current_status"]) for r in rows]


async def test_a_partner_accepts_then_closes_each_change_in_the_history(
    pool: asyncpg.Pool, apply: Callable[..., Any], s01: dict[str, uuid.UUID]
) -> None:
    ccas, procedure = s01["CCAS-BELFORT"], s01["procedure"]
    accepted = status_event(procedure, "CCAS-BELFORT", S.ACCEPTEE, StatusActor.PARTNER, assignment_id=ccas)
    await apply(accepted)
    await apply(accepted)  # redelivered: no second history line
    await apply(
        status_event(
            procedure, "CCAS-BELFORT", S.CLOTUREE, StatusActor.PARTNER, assignment_id=ccas, reason="SUIVI_TERMINE"
        )
    )

    assert await _status_of(pool, ccas) == ("CLOTUREE", "SUIVI_TERMINE", "PARTNER")
    async with pool.acquire() as conn:
        history = await repo.history(conn, [ccas])
    assert [(h["from_status"], h["to_status"], h["actor"]) for h in history] == [
        (None, "OUVERTE", "ORIENTATION"),
        ("OUVERTE", "ACCEPTEE", "PARTNER"),
        ("ACCEPTEE", "CLOTUREE", "PARTNER"),
    ]


async def test_changes_that_are_not_allowed_are_recorded_not_applied(
    pool: asyncpg.Pool, apply: Callable[..., Any], s01: dict[str, uuid.UUID]
) -> None:
    cd90, procedure = s01["CD90"], s01["procedure"]
    await apply(
        status_event(procedure, "CD90", S.REFUSEE, StatusActor.PARTNER, assignment_id=cd90, reason="HORS_COMPETENCE")
    )
    await apply(
        status_event(procedure, "CD90", S.ACCEPTEE, StatusActor.PARTNER, assignment_id=cd90),  # final status
        status_event(
            procedure, "CDAD90", S.EXPIREE, StatusActor.PARTNER, assignment_id=s01["CDAD90"]
        ),  # only the timer
        status_event(procedure, "CD90", S.ACCEPTEE, StatusActor.PARTNER, assignment_id=uuid.uuid4()),  # unknown id
        status_event(
            uuid.uuid4(), "CD90", S.ACCEPTEE, StatusActor.PARTNER, assignment_id=s01["CCAS-BELFORT"]
        ),  # mismatch
        status_event(procedure, "CD90", S.REFUSEE, StatusActor.PARTNER, assignment_id=cd90, reason="HORS_COMPETENCE"),
    )

    assert await _status_of(pool, cd90) == ("REFUSEE", "HORS_COMPETENCE", "PARTNER")
    assert await _status_of(pool, s01["CDAD90"]) == ("OUVERTE", None, None)
    assert await _refusals(pool) == [
        ("TRANSITION_NOT_ALLOWED", "REFUSEE"),
        ("ACTOR_NOT_ALLOWED", "OUVERTE"),
        ("UNKNOWN_ASSIGNMENT", None),
        ("ASSIGNMENT_MISMATCH", "OUVERTE"),
    ]  # the repeated refusal is UNCHANGED, not refused


async def test_a_removed_structure_is_never_reassigned_until_the_ccapex_adds_it_back(
    pool: asyncpg.Pool, apply: Callable[..., Any], orient: Orient, make_event: MakeEvent, s01: dict[str, uuid.UUID]
) -> None:
    procedure = s01["procedure"]
    await apply(
        status_event(
            procedure,
            "CDAD90",
            S.CLOTUREE,
            StatusActor.CCAPEX,
            assignment_id=s01["CDAD90"],
            override=AssignmentOverride.REMOVE,
        )
    )
    assert await _status_of(pool, s01["CDAD90"]) == ("CLOTUREE", None, "CCAPEX")

    await orient(make_event("s01-cj-commandement-payer", procedure_id=procedure, revision=2, is_correction=True))
    rerun = (await _decided(pool))[-1].payload
    assert "CDAD90" not in {a.structure_id for a in rerun.assignments}
    assert [(a.structure_id, a.kind) for a in rerun.assignments] == [
        ("CCAS-BELFORT", AssignmentKind.STAGE_UPDATE),
        ("CD90", AssignmentKind.STAGE_UPDATE),
        ("CAF90", AssignmentKind.NEW),
    ]

    await apply(status_event(procedure, "CDAD90", S.OUVERTE, StatusActor.CCAPEX, override=AssignmentOverride.ADD))
    added = (await _decided(pool))[-1]
    assert added.payload.trigger is DecisionTrigger.CCAPEX_OVERRIDE
    [assignment] = added.payload.assignments
    assert (assignment.structure_id, assignment.kind, assignment.offer_ids) == ("CDAD90", AssignmentKind.NEW, [])
    assert added.payload.procedure_short_ref == rerun.procedure_short_ref

    await orient(make_event("s01-cj-commandement-payer", procedure_id=procedure, revision=3, is_correction=True))
    third = (await _decided(pool))[-1].payload
    assert ("CDAD90", AssignmentKind.STAGE_UPDATE) in {(a.structure_id, a.kind) for a in third.assignments}
    async with pool.acquire() as conn:
        rows = await repo.procedure_assignments(conn, procedure)
    assert sorted((r.structure_id, r.status, r.origin) for r in rows) == [
        ("CAF90", "OUVERTE", "MATCHING"),
        ("CCAS-BELFORT", "OUVERTE", "MATCHING"),
        ("CD90", "OUVERTE", "MATCHING"),
        ("CDAD90", "CLOTUREE", "MATCHING"),
        ("CDAD90", "OUVERTE", "OVERRIDE"),
    ]


async def test_adding_an_unknown_structure_is_refused(
    pool: asyncpg.Pool, apply: Callable[..., Any], s01: dict[str, uuid.UUID]
) -> None:
    await apply(
        status_event(s01["procedure"], "NOWHERE", S.OUVERTE, StatusActor.CCAPEX, override=AssignmentOverride.ADD)
    )

    assert await _refusals(pool) == [("UNKNOWN_STRUCTURE", None)]


async def test_silent_assignments_expire_and_the_expiry_is_published_once(
    pool: asyncpg.Pool, apply: Callable[..., Any], s01: dict[str, uuid.UUID]
) -> None:
    procedure, ccas = s01["procedure"], s01["CCAS-BELFORT"]
    await apply(status_event(procedure, "CD90", S.ACCEPTEE, StatusActor.PARTNER, assignment_id=s01["CD90"]))
    # The sweep runs when CDAD90's assignment was opened; the others were opened 31 days before.
    now = await pool.fetchval("SELECT created_at FROM assignment WHERE structure_id = 'CDAD90'")
    older = "UPDATE assignment SET created_at = $1::timestamptz - interval '31 days' WHERE structure_id <> 'CDAD90'"
    await pool.execute(older, now)

    async with pool.acquire() as conn, conn.transaction():
        expired = await expire_assignments(conn, days=30, now=now)
    async with pool.acquire() as conn, conn.transaction():
        again = await expire_assignments(conn, days=30, now=now)

    assert (expired, again) == (1, 0)  # CD90 answered, CDAD90 is recent
    assert await _status_of(pool, ccas) == ("EXPIREE", "SANS_REPONSE", "SYSTEM")
    [raw] = await pool.fetch("SELECT value FROM outbox WHERE topic = $1", topics.ASSIGNMENT_STATUS)
    published = AssignmentStatusEvent.model_validate_json(raw["value"])
    assert (published.payload.assignment_id, published.payload.status, published.payload.by) == (
        ccas,
        S.EXPIREE,
        StatusActor.SYSTEM,
    )
    async with pool.acquire() as conn:
        history = await repo.history(conn, [ccas])
    assert (history[-1]["from_status"], history[-1]["to_status"]) == ("OUVERTE", "EXPIREE")

    await apply(published)  # orientation reads its own event back from the topic
    async with pool.acquire() as conn:
        assert len(await repo.history(conn, [ccas])) == len(history)
    assert await _refusals(pool) == []


async def _decided(pool: asyncpg.Pool) -> list[OrientationDecidedEvent]:
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topics.ORIENTATION_DECIDED)
    return [OrientationDecidedEvent.model_validate_json(row["value"]) for row in rows]
