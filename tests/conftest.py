"""Session-wide real infrastructure, resolved like ``make run`` does (devtools)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import HealthCheck, settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devtools import (
    BrokerEndpoint,
    PostgresEndpoint,
    create_topics,
    kafka_broker,
    postgres_server,
    temporary_database,
)
from schemas.topics import ALL_TOPICS
from services.platform import tracing

# Property tests assert behaviour, not speed: a wall-clock deadline would only make them fail on a busy machine.
settings.register_profile("prevex", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("prevex")


@pytest.fixture(scope="session")
async def broker() -> AsyncIterator[BrokerEndpoint]:
    """One broker per test session (Tansu keeps everything in memory: never restarted mid-session)."""
    with kafka_broker() as endpoint:
        await create_topics(endpoint.bootstrap_servers, ALL_TOPICS)
        yield endpoint


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresEndpoint]:
    with postgres_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
async def database_url(pg_server: PostgresEndpoint) -> AsyncIterator[str]:
    """A database of this test run's own, dropped at the end."""
    async with temporary_database(pg_server, "prevex_test") as url:
        yield url


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this process, every finished span kept in memory; off again afterwards."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    try:
        yield spans
    finally:
        tracing.install(None)
        provider.shutdown()
