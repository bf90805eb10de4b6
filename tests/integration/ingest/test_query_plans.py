"""Ingest's statements reach their rows through indexes once its tables are large, analysed or not.

A statement planned as a sequential scan costs nothing on a test's ten rows and grows with every act ever
received: each test here first fills the tables with 20,000 rows shaped like production's, then reads the
plan PostgreSQL would cache for the statements a batch really sends (``tests/integration/query_plans.py``),
on young tables (default estimates: what a service sees before autovacuum's first ANALYZE) and analysed ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import date

import asyncpg
import pytest

from services.ingest import repository as repo
from services.ingest.intake import Intake, Outcome, RawInput
from services.platform.db import Conn
from tests.integration.query_plans import full_scans_of, recorded_statements

pytestmark = pytest.mark.integration

CLOCK = date(2026, 6, 20)
LARGE_TABLES = {"procedure", "procedure_stage_event", "raw_inbound", "rejection"}

Example = Callable[..., bytes]
MakeRaw = Callable[..., RawInput]

# Procedure i: an emitter's reference on one in ten only, a household of its own, an address shared by four
# (i / 4), closed when i is a multiple of 3, older as i grows. Its act 'act-i' has one revision, two when i is
# a multiple of 50. A raw input per act, a rejection for one in four.
_FILL = """
INSERT INTO raw_inbound (raw_id, source_system, channel, kafka_topic, kafka_partition, kafka_offset, payload,
    payload_sha256, received_at, outcome)
SELECT md5('raw' || i)::uuid, 'CJ_API', 'kafka:raw', 'raw.cj', 1, i, ''::bytea, md5('raw' || i),
    now() - i * interval '1 minute', 'ACCEPTED'
FROM generate_series(1, 20000) AS i;
INSERT INTO procedure (procedure_id, short_ref, correlation_id, departement, procedure_ref, link_key, address_key,
    current_stage, status, created_at)
SELECT md5('procedure' || i)::uuid, 'P-' || i, md5('correlation' || i)::uuid, '90',
    CASE WHEN i % 10 = 0 THEN 'REF-' || i END, md5('household' || i), md5('address' || i / 4),
    'ASSIGNATION', CASE WHEN i % 3 = 0 THEN 'CLOSED' ELSE 'OPEN' END, now() - i * interval '1 minute'
FROM generate_series(1, 20000) AS i;
INSERT INTO procedure_stage_event (notification_id, procedure_id, idempotency_key, revision, payload_sha256,
    content_sha256, stage, act_date, is_late, is_correction, record, raw_id)
SELECT md5('notification' || i || '/' || r)::uuid, md5('procedure' || i)::uuid, 'act-' || i, r, md5('raw' || i),
    md5('content' || i || '/' || r), 'ASSIGNATION', date '2026-01-01', false, r > 1, '{"warnings": []}',
    md5('raw' || i)::uuid
FROM generate_series(1, 20000) AS i CROSS JOIN LATERAL generate_series(1, CASE WHEN i % 50 = 0 THEN 2 ELSE 1 END) AS r;
INSERT INTO rejection (rejection_id, raw_id, emitter_id, errors)
SELECT md5('rejection' || i)::uuid, md5('raw' || i)::uuid, '12345678900011', '[{"code": "SCHEMA_INVALID"}]'
FROM generate_series(1, 20000, 4) AS i;
"""


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the fill's keys, not a security use


@pytest.fixture(params=[False, True], ids=["young", "analysed"])
async def grown(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    """A connection on this test's schema once its tables hold 20,000 rows, analysed or not (both run)."""
    async with pool.acquire() as conn:
        await conn.execute(_FILL)
        if request.param:
            await conn.execute("ANALYZE")
        yield conn


async def test_load_procedures_finds_every_keyed_procedure_through_indexes(grown: Conn) -> None:
    async with grown.transaction():
        with recorded_statements(grown) as statements:
            latest, procedures = await repo.load_procedures(
                grown,
                idempotency_keys={"act-10", "act-50", "act-unknown"},
                refs={"REF-20"},
                link_keys={_md5("household30")},
                address_keys={_md5("address10")},
            )

    assert {key: found.revision for key, found in latest.items()} == {"act-10": 1, "act-50": 2}
    # Acts 10 and 50, reference 20, household 30 (closed: any status), the open ones at address 10 (40, 41,
    # 43; 42 is closed); oldest first.
    assert [p.short_ref for p in procedures] == ["P-50", "P-43", "P-41", "P-40", "P-30", "P-20", "P-10"]
    assert await full_scans_of(grown, statements, LARGE_TABLES) == {}


async def test_a_batch_reads_the_grown_tables_through_indexes(
    grown: Conn, intake: Intake, make_raw: MakeRaw, example: Example
) -> None:
    # A first batch creates a household's procedure and rejects an input; the second links another act to
    # that procedure (an update) and receives the first act again (a duplicate count).
    batches = [
        [make_raw(example("s04-cj-commandement-payer-late"), offset=0), make_raw(b"[]", offset=1)],
        [
            make_raw(example("s04-cj-assignation"), offset=2),
            make_raw(example("s04-cj-commandement-payer-late"), offset=3),
        ],
    ]
    statements: list[str] = []
    outcomes: list[Outcome] = []
    for batch in batches:
        async with grown.transaction():
            with recorded_statements(grown) as sent:
                outcomes += [result.outcome for result in await intake.process(grown, batch, clock=CLOCK)]
        statements += sent

    assert outcomes == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED, Outcome.DUPLICATE_IGNORED]
    assert any(sql.startswith("UPDATE procedure") for sql in statements), "no procedure was updated"
    assert await full_scans_of(grown, statements, LARGE_TABLES) == {}
