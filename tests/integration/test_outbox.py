"""Migrations and the transactional outbox on a real PostgreSQL and a real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from importlib.resources import files

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import BrokerEndpoint, create_topics
from schemas.envelope import new_envelope_fields
from schemas.ingest import IngestDuplicate, IngestDuplicateEvent
from services.platform.db import apply_migrations, connect_pool, migration_files
from services.platform.inbox import AdvisoryLocks, claim_event, claim_events
from services.platform.outbox import InMemoryPublisher, KafkaOutboxPublisher, OutboxMessage, OutboxRelay, enqueue

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
