"""Ingest's intake on a real PostgreSQL: storage, dedup, corrections, linking, rejections."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from importlib.resources import files
from pathlib import Path

import asyncpg
import pytest

from schemas import topics
from schemas.procedure import ProcedureNotificationEvent, SourceSystem
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.emitters import load_emitters
from services.ingest.intake import Intake, Outcome, RawInput
from services.platform.db import apply_migrations, connect_pool, migration_files

pytestmark = pytest.mark.integration

EXAMPLES = Path(str(files("schemas.sources") / "examples"))
CJ = "12345678900011"
BAILLEUR = "99990000100015"


def _example(name: str, **changes: object) -> bytes:
    document = json.loads((EXAMPLES / name).read_text("utf-8"))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = document
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return json.dumps(document).encode()


def _raw(payload: bytes, emitter: str = CJ, offset: int | None = None) -> RawInput:
    return RawInput(
        payload=payload,
        source_system=SourceSystem.CJ_API,
        channel="test",
        emitter_key=emitter,
        received_at=datetime(2026, 6, 3, 9, 0, tzinfo=UTC),
        kafka_topic="t" if offset is not None else None,
        kafka_partition=0 if offset is not None else None,
        kafka_offset=offset,
    )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # A fresh schema per test: the intake's tables are exercised from empty each time.
    schema = f"ingest_t{uuid.uuid4().hex[:8]}"
    pool = await connect_pool(database_url, schema=schema)
    async with pool.acquire() as conn:
        dirs = (files("services.platform") / "migrations", files("services.ingest") / "migrations")
        await apply_migrations(conn, schema, migration_files(*dirs))
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def intake() -> Intake:
    return Intake(
        emitters=load_emitters(Path("deploy/emitters/emitters.yaml")),
        communes=CommuneDirectory.from_packaged_data(),
        territory=Territory(frozenset({"90"})),
        max_payload_bytes=256_000,
    )


async def _process(pool: asyncpg.Pool, intake: Intake, *inputs: RawInput) -> list[Outcome]:
    async with pool.acquire() as conn, conn.transaction():
        return await intake.process(conn, inputs, clock=date(2026, 6, 3))


async def _outbox(pool: asyncpg.Pool, topic: str) -> list[bytes]:
    return [r["value"] for r in await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topic)]


async def test_accepted_act_is_stored_linked_and_published(pool: asyncpg.Pool, intake: Intake) -> None:
    assert await _process(pool, intake, _raw(_example("s01-cj-commandement-payer.json"))) == [Outcome.ACCEPTED]
    [value] = await _outbox(pool, topics.PROCEDURE_NOTIFICATION)
    notice = ProcedureNotificationEvent.model_validate_json(value).payload
    assert notice.revision == 1
    assert not notice.is_late
    assert notice.stage_advanced
    assert notice.procedure_short_ref.startswith("90-2026-")
    assert notice.notification.derived.commandement_deadline == date(2026, 4, 13)
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound WHERE outcome = 'ACCEPTED'") == 1


async def test_exact_duplicate_is_counted_and_not_published_again(pool: asyncpg.Pool, intake: Intake) -> None:
    payload = _example("s01-cj-commandement-payer.json")
    outcomes = await _process(pool, intake, _raw(payload), _raw(payload))
    assert outcomes == [Outcome.ACCEPTED, Outcome.DUPLICATE_IGNORED]
    assert len(await _outbox(pool, topics.PROCEDURE_NOTIFICATION)) == 1
    [duplicate] = await _outbox(pool, topics.INGEST_DUPLICATE)
    assert json.loads(duplicate)["payload"]["duplicate_count"] == 1


async def test_changed_payload_under_the_same_act_is_a_correction(pool: asyncpg.Pool, intake: Intake) -> None:
    first = _example("s01-cj-commandement-payer.json")
    corrected = _example("s01-cj-commandement-payer.json", debt__amount=2460)
    assert await _process(pool, intake, _raw(first), _raw(corrected)) == [Outcome.ACCEPTED, Outcome.CORRECTION]
    notices = [
        ProcedureNotificationEvent.model_validate_json(v).payload
        for v in await _outbox(pool, topics.PROCEDURE_NOTIFICATION)
    ]
    assert [(n.revision, n.is_correction) for n in notices] == [(1, False), (2, True)]
    assert notices[0].procedure_id == notices[1].procedure_id


async def test_earlier_stage_arriving_late_links_to_the_procedure_and_is_flagged(
    pool: asyncpg.Pool, intake: Intake
) -> None:
    """S-04: the assignation creates the procedure; the older commandement links to it as late."""
    outcomes = await _process(
        pool, intake, _raw(_example("s04-cj-assignation.json")), _raw(_example("s04-cj-commandement-payer-late.json"))
    )
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    first, late = [
        ProcedureNotificationEvent.model_validate_json(v).payload
        for v in await _outbox(pool, topics.PROCEDURE_NOTIFICATION)
    ]
    assert late.procedure_id == first.procedure_id
    assert late.is_late
    assert not late.stage_advanced
    assert "LATE_EARLIER_STAGE" in late.notification.warnings
    assert await pool.fetchval("SELECT current_stage FROM procedure") == "ASSIGNATION"


@pytest.mark.parametrize(
    ("example", "emitter", "code"),
    [
        ("s07-cj-address-missing.json", CJ, "ADDRESS_MISSING"),
        ("s08-bailleur-debt-negative.json", BAILLEUR, "DEBT_NEGATIVE"),
        ("s08-bailleur-amount-invalid.json", BAILLEUR, "AMOUNT_INVALID"),
        ("s01-cj-commandement-payer.json", "99999999900099", "EMITTER_UNKNOWN"),
    ],
)
async def test_rejection_is_stored_and_published_with_its_code(
    pool: asyncpg.Pool, intake: Intake, example: str, emitter: str, code: str
) -> None:
    assert await _process(pool, intake, _raw(_example(example), emitter)) == [Outcome.REJECTED]
    [value] = await _outbox(pool, topics.INGEST_REJECTED)
    assert code in [error["code"] for error in json.loads(value)["payload"]["errors"]]
    assert await pool.fetchval("SELECT count(*) FROM rejection") == 1
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound WHERE outcome = 'REJECTED' AND payload <> ''") == 1
    assert b"Durand" not in value


async def test_malformed_bytes_are_kept_and_rejected(pool: asyncpg.Pool, intake: Intake) -> None:
    assert await _process(pool, intake, _raw(b"\xff{not json")) == [Outcome.REJECTED]
    assert await pool.fetchval("SELECT payload FROM raw_inbound") == b"\xff{not json"


async def test_redelivered_kafka_record_is_processed_once(pool: asyncpg.Pool, intake: Intake) -> None:
    payload = _example("s01-cj-commandement-payer.json")
    assert await _process(pool, intake, _raw(payload, offset=7)) == [Outcome.ACCEPTED]
    assert await _process(pool, intake, _raw(payload, offset=7)) == [Outcome.ALREADY_PROCESSED]
    assert len(await _outbox(pool, topics.PROCEDURE_NOTIFICATION)) == 1
    assert await pool.fetchval("SELECT count(*) FROM duplicate_count") == 0
