"""Migrations and the transactional outbox on a real PostgreSQL and a real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import cast

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from structlog.testing import capture_logs

from devtools import BrokerEndpoint, create_topics
from schemas.envelope import new_envelope_fields
from schemas.ingest import IngestDuplicate, IngestDuplicateEvent
from services.platform.db import Conn, apply_migrations, connect_pool, migration_files, open_schema
from services.platform.inbox import AdvisoryLocks, claim_event, claim_events
from services.platform.outbox import InMemoryPublisher, KafkaOutboxPublisher, OutboxMessage, OutboxRelay, enqueue
from tests.integration.query_plans import full_scans, generic_plan, recorded_statements

pytestmark = pytest.mark.integration

PLATFORM_MIGRATIONS = migration_files(files("services.platform") / "migrations")


@pytest.fixture
async def schema_pool(database_url: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    pool = await connect_pool(database_url, schema=schema)
    async with pool.acquire() as conn:
        await apply_migrations(conn, schema, PLATFORM_MIGRATIONS)
    yield schema, pool
    await pool.close()


def _event(n: int) -> IngestDuplicateEvent:
    payload = IngestDuplicate(
        idempotency_key="a" * 64, emitter_id="12345678900011", external_ref=f"R{n}", duplicate_count=n
    )
    return IngestDuplicateEvent(**new_envelope_fields("test"), payload=payload)


async def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"t-{uuid.uuid4().hex}", auto_offset_reset="earliest"
    )
    await consumer.start()
    received: list[tuple[bytes, bytes, dict[str, bytes]]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < count:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    received += [(r.key, r.value, dict(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return received


async def test_migrations_apply_once_and_are_recorded(schema_pool: tuple[str, asyncpg.Pool]) -> None:
    schema, pool = schema_pool
    async with pool.acquire() as conn:
        assert await apply_migrations(conn, schema, PLATFORM_MIGRATIONS) == []
        versions = await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")
    assert [r["version"] for r in versions] == [v for v, _ in PLATFORM_MIGRATIONS]


async def test_rolled_back_transaction_publishes_nothing(schema_pool: tuple[str, asyncpg.Pool]) -> None:
    schema, pool = schema_pool
    publisher = InMemoryPublisher()
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(1))])
        await tx.rollback()
    assert await OutboxRelay(pool, schema, publisher).drain() == 0
    assert publisher.published == []


async def test_rows_stay_pending_until_the_broker_acknowledged(schema_pool: tuple[str, asyncpg.Pool]) -> None:
    schema, pool = schema_pool
    publisher = InMemoryPublisher()
    relay = OutboxRelay(pool, schema, publisher, batch_size=2)
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(n)) for n in range(1, 4)])
    publisher.fail_next = ConnectionError("broker away")
    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3
    assert await relay.drain() == 3
    assert [IngestDuplicateEvent.model_validate_json(m.value).payload.external_ref for m in publisher.published] == [
        "R1",
        "R2",
        "R3",
    ]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_relay_publishes_to_the_broker_after_commit(
    schema_pool: tuple[str, asyncpg.Pool], broker: BrokerEndpoint
) -> None:
    schema, pool = schema_pool
    topic = f"test.outbox.{uuid.uuid4().hex[:8]}"
    await create_topics(broker.bootstrap_servers, [topic], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    relay = OutboxRelay(pool, schema, KafkaOutboxPublisher(producer), poll_interval_s=300)
    task = asyncio.create_task(relay.run())
    try:
        events = [_event(n) for n in range(1, 6)]
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, schema, [OutboxMessage.of(topic, "procedure-1", e) for e in events])
        # Poll interval 300 s, beyond the 30 s consume timeout: arrival proves a wake-up on NOTIFY.
        received = await _consume(broker.bootstrap_servers, topic, 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
    assert [key for key, _, _ in received] == [b"procedure-1"] * 5
    assert [IngestDuplicateEvent.model_validate_json(v).event_id for _, v, _ in received] == [
        e.event_id for e in events
    ]
    assert received[0][2]["event_id"] == str(events[0].event_id).encode()
    assert received[0][2]["correlation_id"] == str(events[0].correlation_id).encode()


class _SlowPublisher(InMemoryPublisher):
    """Holds each batch a moment before acknowledging it, so that two relays overlap."""

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        await asyncio.sleep(0.01)
        await super().publish(messages)


async def test_two_relays_publish_each_row_once_and_in_order(schema_pool: tuple[str, asyncpg.Pool]) -> None:
    schema, pool = schema_pool
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(n)) for n in range(1, 41)])
    first, second = _SlowPublisher(), _SlowPublisher()
    totals = await asyncio.gather(
        OutboxRelay(pool, schema, first, batch_size=3).drain(), OutboxRelay(pool, schema, second, batch_size=3).drain()
    )

    def refs(publisher: InMemoryPublisher) -> list[int]:
        return [IngestDuplicateEvent.model_validate_json(m.value).payload.duplicate_count for m in publisher.published]

    assert sum(totals) == 40
    assert sorted(refs(first) + refs(second)) == list(range(1, 41))
    assert refs(first) == sorted(refs(first))
    assert refs(second) == sorted(refs(second))
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_running_relay_publishes_again_after_a_failure(schema_pool: tuple[str, asyncpg.Pool]) -> None:
    schema, pool = schema_pool
    publisher = InMemoryPublisher()
    publisher.fail_next = ConnectionError("broker away")
    relay = OutboxRelay(pool, schema, publisher, poll_interval_s=300, retry_delay_s=0.05)
    task = asyncio.create_task(relay.run())
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(n)) for n in range(1, 3)])
        async with asyncio.timeout(30):
            while len(publisher.published) < 2:  # noqa: ASYNC110 (the relay signals nothing)
                await asyncio.sleep(0.02)
        # Woken by NOTIFY (the poll interval is 300 s), then again after the failed try: published once.
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(3))])
        async with asyncio.timeout(30):
            while len(publisher.published) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    published = [IngestDuplicateEvent.model_validate_json(m.value).payload.duplicate_count for m in publisher.published]
    assert published == [1, 2, 3]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_inbox_claims_an_event_once(schema_pool: tuple[str, asyncpg.Pool]) -> None:
    _, pool = schema_pool
    event_id = uuid.uuid4()
    async with pool.acquire() as conn:
        assert await claim_event(conn, event_id, "topic") is True
        assert await claim_event(conn, event_id, "topic") is False


async def test_inbox_claims_a_batch_returning_only_new_ids(schema_pool: tuple[str, asyncpg.Pool]) -> None:
    _, pool = schema_pool
    seen, new = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        assert await claim_event(conn, seen, "topic") is True
        assert await claim_events(conn, [seen, new, new], "topic") == {new}
        assert await claim_events(conn, [seen, new], "topic") == set()


async def test_inbox_claims_after_taking_the_advisory_locks_in_the_same_statement(
    schema_pool: tuple[str, asyncpg.Pool],
) -> None:
    _, pool = schema_pool
    seen, new = uuid.uuid4(), uuid.uuid4()
    locks = AdvisoryLocks(0x7465_7374, [-3, 1, 5])
    async with pool.acquire() as conn:
        assert await claim_event(conn, seen, "topic") is True
        async with conn.transaction():
            assert await claim_events(conn, [seen, new, new], "topic", after_locking=locks) == {new}
            held = await conn.fetch(
                "SELECT classid, objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                " AND granted AND objsubid = 2"
            )
        # Transaction-scoped: released at its end, another session takes them.
        async with pool.acquire() as other:
            assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1, 5)", locks.lock_class) is True
    assert {(row["classid"], row["objid"]) for row in held} == {
        (locks.lock_class, key & 0xFFFF_FFFF) for key in locks.keys
    }


class _Lender:
    """A pool that lends one connection, so that a test records what the relay sends on it."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Conn]:
        yield self._conn


@pytest.mark.parametrize("dead", [False, True], ids=["live", "deleted-not-vacuumed"])
@pytest.mark.parametrize("analysed", [False, True], ids=["young", "analysed"])
async def test_relay_reaches_its_batch_through_the_primary_key(
    schema_pool: tuple[str, asyncpg.Pool], dead: bool, analysed: bool
) -> None:
    schema, pool = schema_pool
    async with pool.acquire() as conn:
        # The dead tuples must still be there when the plan is read.
        await conn.execute("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        await conn.execute(
            "INSERT INTO outbox (topic, key, value, headers)"
            " SELECT 'prevex.ingest.stage', ('procedure-' || n)::bytea, convert_to(repeat('x', 600) || n, 'UTF8'),"
            " jsonb_build_object('event_id', gen_random_uuid()::text)"
            " FROM generate_series(1, 20000) AS n"
        )
        if analysed:  # before the delete: statistics of a backlog long gone, as a queue's are
            await conn.execute("ANALYZE outbox")
        if dead:
            await conn.execute("DELETE FROM outbox")
            await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(n)) for n in range(1, 31)])
        oldest = [row["value"] for row in await conn.fetch("SELECT value FROM outbox ORDER BY id LIMIT 20")]
        publisher = InMemoryPublisher()
        relay = OutboxRelay(cast(asyncpg.Pool, _Lender(conn)), schema, publisher, batch_size=20)
        with recorded_statements(conn) as statements:
            published = await relay.publish_pending()
        deletes = [sql for sql in statements if sql.startswith("DELETE")]
        plans = [await generic_plan(conn, sql) for sql in deletes]
        left = await conn.fetchval("SELECT count(*) FROM outbox WHERE value = ANY($1::bytea[])", oldest)
    assert published == 20
    assert len(deletes) == 1
    assert [full_scans(plan, {"outbox"}) for plan in plans] == [set()], plans
    assert "outbox_pkey" in plans[0]
    assert [m.value for m in publisher.published] == oldest
    assert left == 0


async def test_outbox_vacuum_settings_apply_to_a_schema_already_migrated(database_url: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    cut = next(i for i, (version, _) in enumerate(PLATFORM_MIGRATIONS) if version.endswith("/005_outbox_autovacuum"))
    pool = await connect_pool(database_url, schema=schema)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema, PLATFORM_MIGRATIONS[:cut])  # as deployed before
            async with conn.transaction():
                await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(1))])
            applied = await apply_migrations(conn, schema, PLATFORM_MIGRATIONS)
            options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'outbox'::regclass")
        publisher = InMemoryPublisher()
        assert await OutboxRelay(pool, schema, publisher).drain() == 1
    finally:
        await pool.close()
    assert applied == [version for version, _ in PLATFORM_MIGRATIONS[cut:]]
    assert {"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_cost_delay=0"} <= set(options)


async def _session_state(pool: asyncpg.Pool) -> tuple[int, list[str], list[str], list[str]]:
    """On the pool's next connection: its backend, then what a session can carry from one holder to the next —
    advisory locks, channels it listens on, settings that RESET would change."""
    async with pool.acquire() as conn:
        return (
            await conn.fetchval("SELECT pg_backend_pid()"),
            [
                str(r[0])
                for r in await conn.fetch(
                    "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                )
            ],
            [r[0] for r in await conn.fetch("SELECT pg_listening_channels()")],
            [
                r[0]
                for r in await conn.fetch(
                    "SELECT name FROM pg_settings WHERE source = 'session' AND setting <> reset_val"
                )
            ],
        )


async def test_a_released_connection_carries_no_session_state_into_the_next_acquire(database_url: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    pool = await connect_pool(database_url, schema=schema, max_size=1)  # every acquire gets the same backend
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await apply_migrations(conn, schema, PLATFORM_MIGRATIONS)  # a session advisory lock, SET LOCAL
        assert await _session_state(pool) == (backend, [], [], [])

        async with pool.acquire() as conn, conn.transaction():
            await claim_events(conn, [uuid.uuid4()], "topic", after_locking=AdvisoryLocks(0x7465_7374, [1, 2]))
            await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(n)) for n in range(1, 3)])
        assert await _session_state(pool) == (backend, [], [], [])

        publisher = InMemoryPublisher()
        publisher.fail_next = ConnectionError("broker away")
        task = asyncio.create_task(OutboxRelay(pool, schema, publisher, poll_interval_s=300, retry_delay_s=300).run())
        try:
            async with asyncio.timeout(30):
                while publisher.fail_next is not None:  # noqa: ASYNC110 (the relay signals nothing)
                    await asyncio.sleep(0.02)
            # The relay listened, failed, and gave its connection back: the next acquire waits for it.
            assert await _session_state(pool) == (backend, [], [], [])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        task = asyncio.create_task(OutboxRelay(pool, schema, publisher, poll_interval_s=300).run())
        try:
            async with asyncio.timeout(30):
                while len(publisher.published) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()  # while it listens, idle
            await asyncio.gather(task, return_exceptions=True)
        assert await _session_state(pool) == (backend, [], [], [])

        # Not reset by the pool: state a holder forgets to give back reaches the next one (hence the above).
        async with pool.acquire() as conn:
            await conn.execute("LISTEN forgotten")
        assert await _session_state(pool) == (backend, [], ["forgotten"], [])
    finally:
        await pool.close()


async def test_a_running_relay_plans_its_delete_from_the_table_as_it_is_at_each_batch(database_url: str) -> None:
    # The plan PostgreSQL would keep is made on an empty outbox soon after start: a sequential scan, kept while
    # the heap fills with dead tuples. The running relay's connection plans every batch afresh instead.
    schema = f"t_{uuid.uuid4().hex[:10]}"
    pool = await connect_pool(database_url, schema=schema, max_size=1)  # the relay's backend is the next one's
    writer = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema, PLATFORM_MIGRATIONS)
        publisher = InMemoryPublisher()
        task = asyncio.create_task(OutboxRelay(pool, schema, publisher, batch_size=2, poll_interval_s=300).run())
        try:
            for n in range(1, 8):  # one commit at a time, each relayed on its NOTIFY: a DELETE each
                await enqueue(writer, schema, [OutboxMessage.of("t", "k", _event(n))])
                async with asyncio.timeout(30):
                    while len(publisher.published) < n:  # noqa: ASYNC110 (the relay signals nothing)
                        await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        async with pool.acquire() as conn:
            plans = await conn.fetch(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE 'DELETE FROM outbox%'"
            )
            setting = await conn.fetchval("SHOW plan_cache_mode")
    finally:
        await writer.close()
        await pool.close()
    [(generic, custom)] = [(row["generic_plans"], row["custom_plans"]) for row in plans]
    assert generic == 0  # PostgreSQL's own choice keeps one plan from the sixth execution on
    assert custom >= 7
    assert setting == "auto"  # given back with the connection


async def test_relayed_events_are_told_once_their_delete_committed(schema_pool: tuple[str, asyncpg.Pool]) -> None:
    """The services' metrics count what ``on_relayed`` is told. A batch the broker acknowledged whose delete
    then fails to commit is still pending: told nothing; relayed again, it is told once."""
    schema, pool = schema_pool
    async with pool.acquire() as conn:
        # The first commit of a delete from the outbox fails, after the broker's ack (a sequence, because
        # whatever the failing transaction wrote is rolled back with it).
        await conn.execute(
            """
            CREATE SEQUENCE outbox_deletes;
            CREATE FUNCTION refuse_first_delete() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('outbox_deletes') = 1 THEN RAISE EXCEPTION 'commit refused'; END IF;
                RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER refuse_first_delete AFTER DELETE ON outbox
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_first_delete();
            """
        )
        async with conn.transaction():
            await enqueue(conn, schema, [OutboxMessage.of("t", "k", _event(n)) for n in range(1, 4)])
    told: list[list[int]] = []
    publisher = InMemoryPublisher()
    relay = OutboxRelay(
        pool, schema, publisher, on_relayed=lambda messages: told.append([_duplicate_count(m) for m in messages])
    )

    with pytest.raises(asyncpg.RaiseError, match="commit refused"):
        await relay.drain()
    assert [_duplicate_count(m) for m in publisher.published] == [1, 2, 3]  # acknowledged by the broker
    assert told == []
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3

    assert await relay.drain() == 3
    assert told == [[1, 2, 3]]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


def _duplicate_count(message: OutboxMessage) -> int:
    return IngestDuplicateEvent.model_validate_json(message.value).payload.duplicate_count


async def test_a_service_starting_on_a_server_without_autovacuum_says_so(database_url: str, tmp_path: Path) -> None:
    """Its queue tables would bloat unnoticed: the start warns, once, naming the schema (this machine's
    server decides which way the test goes: whatever it runs with, the warning must match it)."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with capture_logs() as logs:
        pool = await open_schema(database_url, schema=schema, migrations=tmp_path)  # the platform's tables only
    try:
        autovacuum = await pool.fetchval("SELECT setting FROM pg_settings WHERE name = 'autovacuum'")
    finally:
        await pool.close()
    warnings = [entry for entry in logs if entry["event"] == "autovacuum_off"]
    if autovacuum == "off":
        assert [(w["log_level"], w["schema"]) for w in warnings] == [("warning", schema)]
    else:
        assert warnings == []
