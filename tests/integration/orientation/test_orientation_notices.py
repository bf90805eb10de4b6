"""Orienting notices on PostgreSQL: inbox, decisions through the outbox, stage updates, capacity, versions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from schemas import topics
from schemas.orientation import AssignmentKind, OrientationDecidedEvent, OrientationUnmatchedEvent
from schemas.procedure import ProcedureNotificationEvent
from schemas.referential import RecordStatus
from services.orientation import repository as repo
from services.orientation.domain import Referential
from services.orientation.referential_store import ReferentialHolder, commit_referential

pytestmark = pytest.mark.integration

MakeEvent = Callable[..., ProcedureNotificationEvent]
Orient = Callable[..., Any]
S01 = "s01-cj-commandement-payer"


async def _decisions(pool: asyncpg.Pool) -> list[OrientationDecidedEvent]:
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topics.ORIENTATION_DECIDED)
    return [OrientationDecidedEvent.model_validate_json(row["value"]) for row in rows]


async def _assignments(pool: asyncpg.Pool, procedure_id: uuid.UUID) -> list[tuple[str, list[str], str]]:
    async with pool.acquire() as conn:
        rows = await repo.procedure_assignments(conn, procedure_id)
    return sorted((r.structure_id, r.offer_ids, r.status) for r in rows)


async def test_s01_creates_three_assignments_and_one_decision_once(
    pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent
) -> None:
    event = make_event(S01)
    await orient(event)
    await orient(event)  # redelivered: the consumer restarted before committing its offset

    [decided] = await _decisions(pool)
    assert decided.causation_id == event.event_id
    assert decided.correlation_id == event.correlation_id
    assert decided.payload.referentiel_version == 1
    assert [(a.structure_id, a.kind) for a in decided.payload.assignments] == [
        ("CCAS-BELFORT", AssignmentKind.NEW),
        ("CDAD90", AssignmentKind.NEW),
        ("CD90", AssignmentKind.NEW),
    ]
    assert await _assignments(pool, event.payload.procedure_id) == [
        ("CCAS-BELFORT", ["CCAS-BELFORT"], "OUVERTE"),
        ("CD90", ["CD90-ACCOMP"], "OUVERTE"),
        ("CDAD90", ["PJ90-INFO"], "OUVERTE"),
    ]
    row = await pool.fetchrow("SELECT referentiel_version, stage, fallback_used FROM decision")
    assert row is not None
    assert dict(row) == {"referentiel_version": 1, "stage": "COMMANDEMENT_PAYER", "fallback_used": False}
    history = await pool.fetch("SELECT to_status, actor, event_id FROM assignment_status_history")
    assert {(h["to_status"], h["actor"], h["event_id"]) for h in history} == {
        ("OUVERTE", "ORIENTATION", decided.event_id)
    }


async def test_a_correction_gives_stage_updates_not_new_assignments(
    pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent
) -> None:
    procedure_id = uuid.uuid4()
    await orient(make_event(S01, procedure_id=procedure_id))
    await orient(make_event(S01, procedure_id=procedure_id, revision=2, is_correction=True))

    first, correction = await _decisions(pool)
    assert {a.kind for a in correction.payload.assignments} == {AssignmentKind.STAGE_UPDATE}
    assert [a.assignment_id for a in correction.payload.assignments] == [
        a.assignment_id for a in first.payload.assignments
    ]
    assert len(await _assignments(pool, procedure_id)) == 3


async def test_a_late_notice_is_not_oriented(pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent) -> None:
    await orient(make_event("s04-cj-commandement-payer-late", is_late=True))

    assert await _decisions(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 1


async def test_merged_offers_count_against_each_offer_and_refusals_free_capacity(
    pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent
) -> None:
    s04 = make_event("s04-cj-assignation")
    await orient(s04)
    now = await pool.fetchval("SELECT max(created_at) FROM assignment")  # the week it was oriented in
    offers = ["CD90-DSF", "CD90-ACCOMP", "PJ90-INFO", "CAF90-MAINTIEN"]
    async with pool.acquire() as conn:
        counts = await repo.weekly_assignment_counts(conn, offers, now=now)
    assert counts == {"CD90-DSF": 1, "CD90-ACCOMP": 1, "PJ90-INFO": 1}

    await pool.execute("UPDATE assignment SET status = 'REFUSEE' WHERE structure_id = 'CDAD90'")
    async with pool.acquire() as conn:
        assert await repo.weekly_assignment_counts(conn, ["PJ90-INFO"], now=now) == {}


async def test_capacity_used_within_a_batch_is_not_overbooked(
    pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential, orient: Orient, make_event: MakeEvent
) -> None:
    capped = tuple(
        o.model_copy(update={"max_new_assignments_per_week": 1}) if o.id == "PJ90-INFO" else o for o in seed.offers
    )
    async with pool.acquire() as conn, conn.transaction():
        await commit_referential(conn, lambda _: seed.model_copy(update={"offers": capped}), source="t", author="t")

    await orient(make_event(S01), make_event(S01))  # two households, one batch

    first, second = await _decisions(pool)
    assert first.payload.referentiel_version == second.payload.referentiel_version == 2
    assert "CDAD90" in {a.structure_id for a in first.payload.assignments}
    assert "CDAD90" not in {a.structure_id for a in second.payload.assignments}
    [pj90] = [o for o in second.payload.also_eligible if o.offer_id == "PJ90-INFO"]
    assert pj90.over_capacity


async def test_a_new_version_is_used_from_the_next_batch(
    pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential, orient: Orient, make_event: MakeEvent
) -> None:
    await orient(make_event(S01))
    suspended = tuple(
        s.model_copy(update={"status": RecordStatus.SUSPENDED}) if s.id == "CDAD90" else s for s in seed.structures
    )
    async with pool.acquire() as conn, conn.transaction():  # another replica, or the CLI
        await commit_referential(
            conn, lambda _: seed.model_copy(update={"structures": suspended}), source="t", author="t"
        )

    await orient(make_event(S01))

    before, after = await _decisions(pool)
    assert (before.payload.referentiel_version, after.payload.referentiel_version) == (1, 2)
    assert "CDAD90" in {a.structure_id for a in before.payload.assignments}
    assert [a.structure_id for a in after.payload.assignments] == ["CCAS-BELFORT", "CD90", "CAF90"]
    versions = await pool.fetch("SELECT DISTINCT referentiel_version FROM assignment ORDER BY 1")
    assert [r["referentiel_version"] for r in versions] == [1, 2]


async def test_no_eligible_offer_assigns_the_default_referent_and_reports_every_offer(
    pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent, seed: Referential
) -> None:
    event = make_event("s05-bailleur-impaye-constate")
    await orient(event)

    [decided] = await _decisions(pool)
    assert decided.payload.fallback_used
    assert [a.structure_id for a in decided.payload.assignments] == ["CCAPEX90"]
    [raw] = await pool.fetch("SELECT value FROM outbox WHERE topic = $1", topics.ORIENTATION_UNMATCHED)
    unmatched = OrientationUnmatchedEvent.model_validate_json(raw["value"]).payload
    assert sorted(r.offer_id for r in unmatched.reasons) == sorted(o.id for o in seed.offers)
    assert all(r.reasons for r in unmatched.reasons)


async def test_one_batch_sees_its_own_assignments_and_orients_a_repeated_event_once(
    pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent
) -> None:
    procedure_id = uuid.uuid4()
    first = make_event(S01, procedure_id=procedure_id)
    correction = make_event(S01, procedure_id=procedure_id, revision=2, is_correction=True)

    await orient(first, first, correction)

    decided, corrected = await _decisions(pool)
    assert {a.kind for a in decided.payload.assignments} == {AssignmentKind.NEW}
    assert {a.kind for a in corrected.payload.assignments} == {AssignmentKind.STAGE_UPDATE}
    assert [a.assignment_id for a in corrected.payload.assignments] == [
        a.assignment_id for a in decided.payload.assignments
    ]
    assert len(await _assignments(pool, procedure_id)) == 3


async def test_a_batch_logs_one_line_with_counts_and_no_line_per_notice(orient: Orient, make_event: MakeEvent) -> None:
    first, second = make_event(S01), make_event(S01)

    with capture_logs() as logs:
        await orient(first, second, first)

    oriented = [line for line in logs if line["event"] == "notices_oriented"]
    assert len(oriented) == 1
    # Three matched structures each (S-01 in Belfort); the repeated event is claimed once.
    counts = {key: oriented[0].get(key) for key in ("notices", "claimed", "matched", "new_assignments")}
    assert counts == {"notices": 3, "claimed": 2, "matched": 2, "new_assignments": 6}
    assert [line for line in logs if line["event"] == "notice_oriented"] == []
    assert "procedure_ref" not in oriented[0]


@pytest.mark.usefixtures("seeded")  # the assignments' référentiel version 1
async def test_new_assignments_and_their_first_history_line_in_input_order(pool: asyncpg.Pool) -> None:
    procedure_id, decision_id, override_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def opened(structure_id: str, offer_ids: list[str], origin: str, event_id: uuid.UUID) -> repo.NewAssignment:
        return repo.NewAssignment(
            uuid.uuid4(), procedure_id, structure_id, offer_ids, False, 1, False, "why", 1, None, uuid.uuid4(),
            event_id, origin,
        )  # fmt: skip

    rows = [
        opened("CD90", ["CD90-ACCOMP", "CD90-FSL"], "MATCHING", decision_id),
        opened("CCAS-BELFORT", [], "OVERRIDE", override_id),
    ]
    async with pool.acquire() as conn, conn.transaction():
        await repo.insert_assignments(conn, rows, now=datetime(2026, 5, 4, 9, tzinfo=UTC))

    assert await _assignments(pool, procedure_id) == [
        ("CCAS-BELFORT", [], "OUVERTE"),
        ("CD90", ["CD90-ACCOMP", "CD90-FSL"], "OUVERTE"),
    ]
    history = await pool.fetch(
        "SELECT assignment_id, from_status, to_status, actor, override, event_id FROM assignment_status_history"
        " WHERE assignment_id = ANY($1::uuid[]) ORDER BY id",
        [row.assignment_id for row in rows],
    )
    assert [tuple(h.values()) for h in history] == [
        (rows[0].assignment_id, None, "OUVERTE", "ORIENTATION", None, decision_id),
        (rows[1].assignment_id, None, "OUVERTE", "CCAPEX", "ADD", override_id),
    ]
