"""Orientation's statements reach their rows through indexes once its tables hold months of procedures.

Each test fills a schema with 20,000 procedures' assignments, history, decisions, inbox rows and notice
headers shaped like production's (most assignments ended, the open ones recent, a few CCAPEX overrides and
removals), runs the real handlers on it while recording the statements they send, and reads the generic
plan of each (the one PostgreSQL keeps for a prepared statement): none may read a big table whole, on a young
table (no statistics yet: default estimates) or once analysed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from schemas.assignment import (
    AssignmentOverride,
    AssignmentStatus,
    StatusActor,
)
from services.orientation import repository as repo
from services.orientation.domain import Referential
from services.orientation.escalation import escalate_assignments
from services.orientation.lifecycle import StatusHandler, expire_assignments
from services.orientation.orient import Orientation
from services.orientation.referential_store import ReferentialHolder
from services.platform.db import Conn
from tests.integration.orientation.conftest import MakeEvent, status_event
from tests.integration.query_plans import full_scans_of, recorded_statements

pytestmark = pytest.mark.integration

PROCEDURES = 20_000
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
"""In March: the trêve reminders' sweep looks for due procedures."""
BIG_TABLES = {"assignment", "assignment_status_history", "assignment_escalation", "decision", "notice_header", "inbox"}
"""The tables that grow with every notice or assignment. ``structure_override`` (a row per CCAPEX override) and
``truce_reminder`` (a row per procedure reminded, once a year) stay small: the planner reads them whole only while
that costs less than the ten index lookups it assumes for an array parameter, and turns to their primary key as
they grow."""


def procedure(n: int) -> uuid.UUID:
    """The id of the filled procedure ``n`` (1 to ``PROCEDURES``)."""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"p{n}")


def assignment(n: int, k: int) -> uuid.UUID:
    """The id the fill gives the ``k``-th assignment (1 to 3) of procedure ``n``: ``md5('n-k')::uuid``."""
    return uuid.UUID(hashlib.md5(f"{n}-{k}".encode(), usedforsecurity=False).hexdigest())


async def _fill(conn: Conn, structures: Sequence[str], *, analysed: bool) -> None:
    """Months of procedures: three assignments each (open ones among the last 3,000 procedures only, the older
    ones ended), their history, one or two decisions each, an inbox row per event, headers of notices not
    oriented, a removal in a hundred. Autovacuum is kept off the tables so a young table stays young."""
    for table in [*BIG_TABLES, "structure_override", "truce_reminder"]:
        await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    ids = [procedure(n) for n in range(1, PROCEDURES + 1)]
    await conn.execute(
        "CREATE TEMPORARY TABLE filled AS SELECT g, p AS procedure_id,"
        " $3::timestamptz - make_interval(mins => (($2::int - g) * 7)::int) AS at"
        " FROM unnest($1::uuid[]) WITH ORDINALITY AS f(p, g)",
        ids,
        PROCEDURES,
        NOW,
    )
    await conn.execute(
        "INSERT INTO assignment (assignment_id, procedure_id, structure_id, offer_ids, status, mandatory, priority,"
        " over_capacity, explanation, referentiel_version, notification_id, created_at, updated_at, origin,"
        " correlation_id)"
        " SELECT md5(f.g || '-' || k)::uuid, f.procedure_id, ($1::text[])[k], ARRAY[($1::text[])[k]],"
        " CASE WHEN f.g > $2::int - 3000 THEN (ARRAY['OUVERTE', 'OUVERTE', 'ACCEPTEE'])[k]"
        "  ELSE (ARRAY['EXPIREE', 'CLOTUREE', 'REFUSEE', 'ACCEPTEE'])[1 + (f.g + k) % 4] END,"
        " false, 0, false, 'filled', 1, md5('n' || f.g)::uuid, f.at, f.at,"
        " CASE WHEN k = 3 AND f.g % 50 = 0 THEN 'OVERRIDE' ELSE 'MATCHING' END, md5('c' || f.g)::uuid"
        " FROM filled f, generate_series(1, 3) AS k",
        list(structures[:3]),
        PROCEDURES,
    )
    await conn.execute(
        "INSERT INTO assignment_status_history (assignment_id, from_status, to_status, actor, changed_at)"
        " SELECT assignment_id, NULL, 'OUVERTE', 'ORIENTATION', created_at FROM assignment"
        " UNION ALL SELECT assignment_id, 'OUVERTE', status, 'PARTNER', created_at + interval '2 days'"
        " FROM assignment WHERE status <> 'OUVERTE'"
    )
    await conn.execute(
        "INSERT INTO assignment_escalation (assignment_id, step, sent_on, event_id)"
        " SELECT assignment_id, 'STRUCTURE_REMINDER', (created_at + interval '7 days')::date, gen_random_uuid()"
        " FROM assignment WHERE created_at < $1::timestamptz - interval '7 days' AND status <> 'REFUSEE'",
        NOW,
    )
    await conn.execute(
        "INSERT INTO decision (decision_id, procedure_id, notification_id, stage, referentiel_version, rules_version,"
        " fallback_used, result, created_at)"
        " SELECT md5('d' || f.g || '-' || n)::uuid, f.procedure_id, md5('n' || f.g)::uuid, 'COMMANDEMENT_PAYER', 1,"
        " 'orientation-1', false, jsonb_build_object('earliest_expulsion_date',"
        "  CASE WHEN f.g % 20 = 0 AND n = 2 THEN '2026-04-01' ELSE '2027-01-15' END, 'assignments',"
        "  (SELECT jsonb_agg(jsonb_build_object('assignment_id', a.assignment_id::text, 'kind', 'NEW'))"
        "   FROM assignment a WHERE a.procedure_id = f.procedure_id)),"
        " f.at + make_interval(days => n - 1)"
        " FROM filled f, generate_series(1, 1 + (g % 3 = 0)::int) AS n"
    )
    await conn.execute(
        "INSERT INTO truce_reminder (procedure_id, truce_end, decision_id)"
        " SELECT procedure_id, date '2025-04-01', NULL FROM filled WHERE g % 7 = 0"
    )
    await conn.execute(
        "INSERT INTO structure_override (procedure_id, structure_id, override, event_id)"
        " SELECT procedure_id, ($1::text[])[2], 'REMOVE', gen_random_uuid() FROM filled WHERE g % 100 = 0",
        list(structures[:3]),
    )
    await conn.execute(
        "INSERT INTO notice_header (procedure_id, notification_id, header)"
        ' SELECT gen_random_uuid(), gen_random_uuid(), \'{"stage": "CLOTURE"}\' FROM filled WHERE g % 10 = 0'
    )
    await conn.execute(
        "INSERT INTO inbox (event_id, topic)"
        " SELECT gen_random_uuid(), t FROM filled,"
        " unnest(ARRAY['exp.procedure.notification.v1', 'exp.assignment.status.v1']) AS t"
    )
    await conn.execute("DROP TABLE filled")
    if analysed:
        await conn.execute("ANALYZE")


@pytest.fixture(params=[False, True], ids=["young", "analysed"])
async def filled(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential
) -> list[str]:
    """The schema filled (and analysed, for the second run); the three structures of every procedure."""
    structures = [s.id for s in seed.structures[:3]]
    async with pool.acquire() as conn:
        await _fill(conn, structures, analysed=request.param)
    return structures


async def test_a_notice_batch_reads_its_procedures_through_indexes(
    pool: asyncpg.Pool, filled: list[str], orientation: Orientation, make_event: MakeEvent
) -> None:
    known = [make_event("s01-cj-commandement-payer", procedure_id=procedure(n)) for n in (19_990, 19_995, 100)]
    new = [make_event("s01-cj-commandement-payer") for _ in range(3)]
    async with pool.acquire() as conn:
        with recorded_statements(conn) as statements:
            async with conn.transaction():
                await orientation.handle_batch(conn, [*known, *new], now=NOW)
        scans = await full_scans_of(conn, statements, BIG_TABLES)
        decided = await conn.fetchval(
            "SELECT count(DISTINCT procedure_id) FROM decision WHERE procedure_id = ANY($1::uuid[])",
            [e.payload.procedure_id for e in [*known, *new]],
        )
    assert not scans, scans
    assert decided == 6


async def test_a_status_batch_reads_its_assignments_through_indexes(
    pool: asyncpg.Pool, filled: list[str], seeded: ReferentialHolder
) -> None:
    accepted = status_event(
        procedure(19_990),
        filled[0],
        AssignmentStatus.ACCEPTEE,
        StatusActor.PARTNER,
        assignment_id=assignment(19_990, 1),
    )
    add, unseen = AssignmentOverride.ADD, uuid.uuid4()
    events = [
        accepted,
        # Procedure 19,991 holds an open assignment of this structure already; orientation has not seen the other.
        status_event(procedure(19_991), filled[1], AssignmentStatus.OUVERTE, StatusActor.CCAPEX, override=add),
        status_event(unseen, filled[1], AssignmentStatus.OUVERTE, StatusActor.CCAPEX, override=add),
    ]
    async with pool.acquire() as conn:
        with recorded_statements(conn) as statements:
            async with conn.transaction():
                await StatusHandler(seeded).handle_batch(conn, events)
        scans = await full_scans_of(conn, statements, BIG_TABLES)
        status = await conn.fetchval(
            "SELECT status FROM assignment WHERE assignment_id = $1", accepted.payload.assignment_id
        )
        added = await conn.fetch(
            "SELECT procedure_id FROM assignment WHERE origin = 'OVERRIDE' AND status = 'OUVERTE'"
            " AND procedure_id = ANY($1::uuid[])",
            [procedure(19_991), unseen],
        )
    assert not scans, scans
    assert status == "ACCEPTEE"
    assert [row["procedure_id"] for row in added] == [unseen]


async def test_the_sweeps_read_due_rows_through_indexes(
    pool: asyncpg.Pool, filled: list[str], seeded: ReferentialHolder
) -> None:
    async with pool.acquire() as conn:
        with recorded_statements(conn) as statements:
            async with conn.transaction():
                expired = await expire_assignments(conn, days=30, now=NOW + timedelta(days=20))
                escalated = await escalate_assignments(conn, now=NOW, reminder_days=5, secretariat_days=5)
                # The trêve sweep's two reads, called directly: the sweep itself would build reminders from the
                # filled decisions, whose payload is not a whole decision.
                truce_end = date(2026, 4, 1)
                due = await repo.truce_end_due(conn, truce_end, limit=5)
                among = await repo.truce_end_due(conn, truce_end, limit=5, among=[procedure(60), procedure(61)])
        scans = await full_scans_of(conn, statements, BIG_TABLES)
    assert not scans, scans
    assert expired > 0
    assert escalated > 0
    # Procedures whose latest decision (the second one, every third procedure) has 1 April, every twentieth.
    assert [d.procedure_id for d in due] == sorted(procedure(n) for n in range(60, PROCEDURES + 1, 60))[:5]
    assert [d.procedure_id for d in among] == [procedure(60)]


async def test_a_procedure_decided_twice_in_one_transaction_is_due_once(
    pool: asyncpg.Pool, seeded: ReferentialHolder
) -> None:
    # Both decisions get the transaction's now() as created_at: "the latest" must still be one of them, or the
    # sweep would write the procedure's truce_reminder row twice.
    procedure_id, truce_end = uuid.uuid4(), date(2026, 4, 1)
    async with pool.acquire() as conn:
        async with conn.transaction():
            for _ in range(2):
                await conn.execute(
                    "INSERT INTO decision (decision_id, procedure_id, notification_id, stage, referentiel_version,"
                    " rules_version, fallback_used, result) VALUES (gen_random_uuid(), $1, gen_random_uuid(),"
                    " 'COMMANDEMENT_QUITTER', 1, 'orientation-1', false, jsonb_build_object('earliest_expulsion_date',"
                    " $2::date::text))",
                    procedure_id,
                    truce_end,
                )
        due = await repo.truce_end_due(conn, truce_end, limit=5)
        among = await repo.truce_end_due(conn, truce_end, limit=5, among=[procedure_id])
    assert [d.procedure_id for d in due] == [d.procedure_id for d in among] == [procedure_id]
