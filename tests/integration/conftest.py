"""Fixtures shared by the integration tests that run a service's runtime in-process (its real
``bootstrap.build`` wiring) on a broker and a database of their own.

A private broker, as for the e2e tests: on the session's broker, a service process of another test (same
consumer group) could take these records. ``KAFKA_BOOTSTRAP_SERVERS`` is set aside while it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from devtools import PostgresEndpoint, create_topics, kafka_broker, temporary_database
from schemas import topics
from services.platform.db import connect_pool
from services.platform.runtime import Runtime
from services.platform.settings import ServiceSettings

WAIT_S = 90.0
"""Upper bound of every wait: a guard against hanging, not a performance assertion."""


@dataclass(frozen=True)
class InProcess:
    """A started service runtime: its broker's address, its settings and a pool on its schema."""

    bootstrap_servers: str
    settings: Any
    pool: asyncpg.Pool

    async def committed(self, group: str, topic: str, partition: int = 0) -> int:
        """The offset ``group`` committed on ``topic``'s ``partition`` (0 when none)."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=group, enable_auto_commit=False)
        await reader.start()
        try:
            return await reader.committed(TopicPartition(topic, partition)) or 0
        finally:
            await reader.stop()


ServeInProcess = Callable[..., AbstractAsyncContextManager[InProcess]]


@pytest.fixture(scope="session")
def serve_in_process(pg_server: PostgresEndpoint) -> ServeInProcess:
    """``async with serve_in_process(build, SettingsClass, schema, **settings) as service``: the runtime
    ``build(SettingsClass(...))`` started on a fresh broker and database, stopped (with both) at the end.
    ``prepare``, when given, is awaited with the broker's address before the runtime starts (a broker's state
    left by a previous version, say)."""

    @asynccontextmanager
    async def _serve(
        build: Callable[[Any], Runtime],
        settings_class: type[ServiceSettings],
        schema: str,
        *,
        prepare: Callable[[str], Awaitable[None]] | None = None,
        **settings: Any,
    ) -> AsyncIterator[InProcess]:
        with pytest.MonkeyPatch.context() as env:
            env.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)  # a fresh broker even when the session has one
            with kafka_broker() as broker:
                await create_topics(broker.bootstrap_servers, topics.ALL_TOPICS)
                if prepare is not None:
                    await prepare(broker.bootstrap_servers)
                async with temporary_database(pg_server, f"prevex_{schema}_inproc") as url:
                    configured = settings_class(
                        kafka_bootstrap_servers=broker.bootstrap_servers,
                        database_url=url,
                        # The service processes' timings (devtools.stack): Tansu joins a group in about half the
                        # session timeout (docs/architecture.md §7.1), 3 s a group with 6 s.
                        kafka_session_timeout_ms=1_000,
                        kafka_heartbeat_interval_ms=100,
                        **settings,
                    )
                    runtime = build(configured)
                    await runtime.start()
                    await runtime.broker.start()
                    pool = await connect_pool(url, schema=schema, max_size=2)
                    try:
                        yield InProcess(broker.bootstrap_servers, configured, pool)
                    finally:
                        await pool.close()
                        await runtime.broker.stop()
                        await runtime.stop()

    return _serve


@pytest.fixture(scope="session")
def until() -> Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]:
    """``await until(probe)``: ``probe()``'s first truthy answer, polled (a database has no feed)."""

    async def _until(probe: Callable[[], Awaitable[Any]]) -> Any:
        async with asyncio.timeout(WAIT_S):
            answer = await probe()
            while not answer:
                await asyncio.sleep(0.05)
                answer = await probe()
        return answer

    return _until
