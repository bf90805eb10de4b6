"""The orientation service alone, as a real process, on a broker and a database of its own.

Its own broker (a second Tansu, unless ``KAFKA_BOOTSTRAP_SERVERS`` names an external one) keeps these
tests' notices away from the whole-pipeline tests of the same session, whose orientation process would
otherwise orient them too (and the other way round). Its own database: the service's schema is
``orientation`` whatever the database. The process consumes in batches of 20 so that a kill finds
batches in flight, and its admin API listens on a free port with a tokens file of the test's own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import (
    BrokerEndpoint,
    create_topics,
    free_port,
)
from devtools.stack import ServiceProcesses, StackConfig
from schemas.envelope import Envelope
from schemas.topics import ALL_TOPICS
from services.orientation.auth import hash_token
from services.orientation.referential_store import SCHEMA
from services.platform.db import connect_pool

ADMIN_TOKEN = "pvx_e2e-admin-token"  # a test token: only its hash is in the tokens file


@dataclass(frozen=True)
class Harness:
    """The running service and what the tests reach it through."""

    processes: ServiceProcesses
    bootstrap_servers: str
    database_url: str
    admin_url: str
    work_dir: Path
    db: asyncpg.Pool
    producer: AIOKafkaProducer

    def log_text(self) -> str:
        return self.processes.log_path("orientation").read_text("utf-8")

    async def publish(self, topic: str, event: Envelope, key: str) -> None:
        """One record, acknowledged by the broker."""
        await self.producer.send_and_wait(topic, event.model_dump_json().encode(), key=key.encode())

    async def read_topic(self, topic: str, count: int, timeout_s: float = 60) -> list[bytes]:
        """The first ``count`` records of ``topic``."""
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap_servers,
            group_id=f"e2e-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            async with asyncio.timeout(timeout_s):
                while len(values) < count:
                    for batch in (await consumer.getmany(timeout_ms=200)).values():
                        values += [record.value for record in batch if record.value is not None]
        finally:
            await consumer.stop()
        return values

    async def consumed(self, *event_ids: uuid.UUID, timeout_s: float = 60) -> None:
        """Wait until the service committed every one of these events (they are in its inbox)."""
        wanted = list(event_ids)
        query = "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])"
        await self.until(lambda: self.db.fetchval(query, wanted), len(wanted), timeout_s)

    async def until(self, count: Callable[[], Awaitable[int]], at_least: int, timeout_s: float = 60) -> None:
        """Poll ``count`` until it reaches ``at_least`` (a failure guard, not a timing assertion)."""
        async with asyncio.timeout(timeout_s):
            # Polling PostgreSQL: no event to wait on from here.
            while await count() < at_least:
                if not self.processes.running("orientation"):
                    raise AssertionError(f"orientation died; see {self.processes.log_path('orientation')}")
                await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def orientation(
    own_broker: BrokerEndpoint, own_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    await create_topics(own_broker.bootstrap_servers, ALL_TOPICS)
    work = tmp_path_factory.mktemp("orientation-e2e")
    tokens = work / "tokens.yaml"
    entry = {"name": "e2e-secretariat", "sha256": hash_token(ADMIN_TOKEN), "roles": ["ccapex-admin"]}
    tokens.write_text(yaml.safe_dump({"tokens": [entry]}), "utf-8")
    port = free_port()
    config = StackConfig(
        own_broker.bootstrap_servers, own_database, "127.0.0.1", 1, work / "sms", orientation_http_port=port
    )
    extra = {"ORIENTATION_ADMIN_TOKENS_PATH": str(tokens), "ORIENTATION_KAFKA_MAX_BATCH_RECORDS": "20"}
    processes = ServiceProcesses(config, work / "logs", extra_env=extra)
    processes.start("orientation")
    producer = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap_servers, acks="all")
    await producer.start()
    pool = await connect_pool(own_database, schema=SCHEMA, max_size=2)
    harness = Harness(
        processes, own_broker.bootstrap_servers, own_database, f"http://127.0.0.1:{port}", work, pool, producer
    )
    try:
        await harness.until(lambda: _ready(harness.admin_url), 1)
        yield harness
    finally:
        processes.stop()
        await producer.stop()
        await pool.close()


async def _ready(admin_url: str) -> int:
    """1 once the service migrated its schema and loaded the référentiel (its admin API answers then)."""
    try:
        async with httpx.AsyncClient(base_url=admin_url) as client:
            health = (await client.get("/health")).json()
    except httpx.HTTPError:
        return 0
    return int(health["referentiel_version"] is not None)
