"""The ingest service alone, as a real process, on a broker and a database of its own.

A private broker: the session's broker is shared with the whole pipeline's tests, whose orientation and
notifier would consume the notifications published here (and whose ingest, in the same consumer group,
would take half of these inputs). ``KAFKA_BOOTSTRAP_SERVERS`` is set aside while the private broker is
resolved, so it is a fresh one even when the session uses an external broker.

Outputs are read by consumers started once for the session, from the beginning of each topic, into
memory; tests wait for the records they expect, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import (
    BrokerEndpoint,
    PostgresEndpoint,
    create_topics,
    free_port,
    kafka_broker,
    temporary_database,
    wait_for_port,
)
from devtools.stack import ServiceProcesses, StackConfig
from schemas import topics
from schemas.sources.samples import variant
from services.ingest.intake import SCHEMA
from services.platform.db import apply_migrations, connect_pool, migration_files

WAIT_S = 90.0
"""Upper bound of every wait: a guard against hanging, not a performance assertion."""
OUTPUT_TOPICS = (topics.PROCEDURE_NOTIFICATION, topics.INGEST_REJECTED, topics.INGEST_DUPLICATE)


@contextmanager
def _without_env(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


@pytest.fixture(scope="package")
async def ingest_broker() -> AsyncIterator[BrokerEndpoint]:
    with _without_env("KAFKA_BOOTSTRAP_SERVERS"), kafka_broker() as endpoint:
        await create_topics(endpoint.bootstrap_servers, topics.ALL_TOPICS)
        yield endpoint


@pytest.fixture(scope="package")
async def ingest_database(pg_server: PostgresEndpoint) -> AsyncIterator[str]:
    async with temporary_database(pg_server, "prevex_ingest_e2e") as url:
        yield url


@dataclass
class TopicLog:
    """Every record of the output topics, appended by background consumers; waited on by the tests."""

    records: dict[str, list[tuple[dict[str, str], dict[str, Any]]]] = field(
        default_factory=lambda: {topic: [] for topic in OUTPUT_TOPICS}
    )
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self, topic: str, where: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[dict[str, Any]]:
        """The decoded events of ``topic`` matching ``where``, copies published twice included."""
        return [event for _, event in self.records[topic] if where(event)]

    def distinct(self, topic: str, where: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[dict[str, Any]]:
        """Events of ``topic`` matching ``where``, once per ``event_id`` (the relay may publish twice)."""
        return list({event["event_id"]: event for event in self.events(topic, where)}.values())

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while not condition():
                self.changed.clear()
                await self.changed.wait()
        assert condition(), what


async def _consume(bootstrap: str, topic: str, log: TopicLog) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"e2e-ingest-{uuid.uuid4().hex}", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        while True:
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                for record in batch:
                    headers = {key: value.decode() for key, value in record.headers}
                    log.records[topic].append((headers, json.loads(record.value)))
                log.changed.set()
    finally:
        await consumer.stop()


@pytest.fixture(scope="package")
async def outputs(ingest_broker: BrokerEndpoint) -> AsyncIterator[TopicLog]:
    log = TopicLog()
    tasks = [asyncio.create_task(_consume(ingest_broker.bootstrap_servers, t, log)) for t in OUTPUT_TOPICS]
    yield log
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class IngestService:
    """The running ingest process and how to reach it."""

    processes: ServiceProcesses
    http_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.processes.start("ingest")
        wait_for_port("127.0.0.1", self.http_port, WAIT_S, alive=lambda: self.processes.running("ingest"))

    def kill(self) -> None:
        self.processes.kill("ingest")


@pytest.fixture(scope="package")
def ingest_service(
    ingest_broker: BrokerEndpoint, ingest_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestService]:
    logs = tmp_path_factory.mktemp("ingest-logs")
    port = free_port()
    config = StackConfig(
        ingest_broker.bootstrap_servers, ingest_database, "127.0.0.1", 1, logs / "sms", ingest_http_port=port
    )
    processes = ServiceProcesses(config, logs)
    service = IngestService(processes, port, processes.log_path("ingest"))
    try:  # a service that failed to come up is stopped too, never left running
        service.start()
        yield service
    finally:
        processes.stop()


@pytest.fixture(scope="package")
async def ingest_db(ingest_database: str, ingest_service: IngestService) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the service's own schema (migrated by the service; applying again is a no-op)."""
    pool = await connect_pool(ingest_database, schema=SCHEMA, max_size=2)
    async with pool.acquire() as conn:
        dirs = (files("services.platform") / "migrations", files("services.ingest") / "migrations")
        await apply_migrations(conn, SCHEMA, migration_files(*dirs))
    yield pool
    await pool.close()


@pytest.fixture(scope="package")
async def publish(ingest_broker: BrokerEndpoint) -> AsyncIterator[Callable[..., Any]]:
    """``await publish(topic, [(key, value), …])``: records on a raw topic, acknowledged by the broker."""
    producer = AIOKafkaProducer(
        bootstrap_servers=ingest_broker.bootstrap_servers, acks="all", linger_ms=5, max_request_size=8_388_608
    )
    await producer.start()

    async def _publish(topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)

    yield _publish
    await producer.stop()


@pytest.fixture(scope="session")
def example() -> Callable[..., bytes]:
    """``example(name, debt__amount=2460)``: an example payload's exact bytes, or a variant of it."""
    return variant


async def _raw_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM raw_inbound")
    return count


@pytest.fixture(scope="package")
def wait_for_raw(ingest_db: asyncpg.Pool) -> Callable[[int], Any]:
    """``await wait_for_raw(n)``: until ``raw_inbound`` holds ``n`` rows (polled: the database has no feed)."""

    async def _wait(expected: int) -> int:
        async with asyncio.timeout(WAIT_S):
            count = await _raw_count(ingest_db)
            while count < expected:
                await asyncio.sleep(0.05)
                count = await _raw_count(ingest_db)
        return count

    return _wait
