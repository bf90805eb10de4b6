"""One act's spans across ingest, orientation and the notifier, each wired by its real ``bootstrap.build`` and
run in-process on one Tansu broker and one PostgreSQL database, traced into the SDK's in-memory exporter.

The emitter publishes the act under a span of its own: the trace must run from it through ingest's processing
of the raw record, orientation's of the canonical notification (its ``traceparent`` written by ingest's outbox)
and the notifier's of the decision, every hop a child of the one that caused it, with the correlation id as
an attribute and not as the trace id, and no personal data of the act in any attribute.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from schemas import topics
from schemas.sources.samples import variant
from services.devenv import PostgresEndpoint, create_topics, free_port, kafka_broker, temporary_database
from services.ingest import bootstrap as ingest
from services.ingest.settings import IngestSettings
from services.notifier import bootstrap as notifier
from services.notifier.settings import NotifierSettings
from services.orientation import bootstrap as orientation
from services.orientation.settings import OrientationSettings
from services.platform import tracing
from services.platform.runtime import Runtime
from services.platform.tracing import ATTR_CORRELATION_ID

pytestmark = pytest.mark.integration

EMITTERS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "emitters" / "emitters.yaml"
CJ = b"12345678900011"
LINK_SECRET = "tracing-integration-tests-link-secret"
WAIT_S = 90.0
"""Upper bound of the wait for the last hop: a guard against hanging, not a performance assertion."""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this process, into memory; off again afterwards."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    try:
        yield spans
    finally:
        tracing.install(None)
        provider.shutdown()


@pytest.fixture
async def services(exporter: InMemorySpanExporter, pg_server: PostgresEndpoint) -> AsyncIterator[str]:
    """Ingest, orientation and the notifier on one broker and database; yields the broker's address."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        with kafka_broker() as broker:
            await create_topics(broker.bootstrap_servers, topics.ALL_TOPICS)
            async with temporary_database(pg_server, "prevex_tracing") as url, AsyncExitStack() as stack:
                common: dict[str, Any] = {
                    "kafka_bootstrap_servers": broker.bootstrap_servers,
                    "database_url": url,
                    "kafka_session_timeout_ms": 6_000,
                }
                runtimes = [
                    ingest.build(IngestSettings(**common, emitters_path=EMITTERS_FILE, http_enabled=False)),
                    orientation.build(OrientationSettings(**common, http_enabled=False)),
                    # No SMTP server: the trace ends with the decision's processing, not with a delivery.
                    notifier.build(NotifierSettings(**common, smtp_port=free_port(), link_secrets=LINK_SECRET)),
                ]
                for runtime in runtimes:
                    await _start(runtime, stack)
                yield broker.bootstrap_servers


async def _start(runtime: Runtime, stack: AsyncExitStack) -> None:
    await runtime.start()
    stack.push_async_callback(runtime.stop)
    await runtime.broker.start()
    stack.push_async_callback(runtime.broker.stop)


async def _spans_of(exporter: InMemorySpanExporter, topic: str, count: int) -> list[ReadableSpan]:
    """The record spans of ``topic`` once there are ``count`` (a finished span has no feed: polled)."""

    def found() -> list[ReadableSpan]:
        return [s for s in exporter.get_finished_spans() if s.name == f"{topic} record"]

    async with asyncio.timeout(WAIT_S):
        spans = found()
        while len(spans) < count:
            await asyncio.sleep(0.1)
            spans = found()
    return spans


def _parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_one_act_is_one_trace_across_the_services(services: str, exporter: InMemorySpanExporter) -> None:
    act = variant("s01-cj-commandement-payer", external_ref="TRACE-0001")
    producer = AIOKafkaProducer(bootstrap_servers=services, acks="all")
    await producer.start()
    try:
        with trace.get_tracer("emitter", tracer_provider=tracing.tracer_provider()).start_as_current_span(
            "emitter send", kind=trace.SpanKind.PRODUCER
        ) as emitter_span:
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
            headers = [(name, value.encode()) for name, value in carrier.items()]
            await producer.send_and_wait(topics.RAW_CJ, act, key=CJ, headers=headers)
    finally:
        await producer.stop()
    trace_id = emitter_span.get_span_context().trace_id

    (ingested,) = await _spans_of(exporter, topics.RAW_CJ, 1)
    (oriented,) = await _spans_of(exporter, topics.PROCEDURE_NOTIFICATION, 1)
    (decided,) = await _spans_of(exporter, topics.ORIENTATION_DECIDED, 1)  # one decision, three partners

    for span in (ingested, oriented, decided):
        assert span.context is not None
        assert span.context.trace_id == trace_id, span.name
    assert _parent_id(ingested) == emitter_span.get_span_context().span_id
    assert _parent_id(oriented) == ingested.context.span_id
    assert _parent_id(decided) == oriented.context.span_id

    correlation_id = oriented.attributes[ATTR_CORRELATION_ID]  # type: ignore[index]
    assert decided.attributes[ATTR_CORRELATION_ID] == correlation_id  # type: ignore[index]
    assert f"{trace_id:032x}" != str(correlation_id).replace("-", "")

    # Every span of the trace, FastStream's batch spans included: no value of the act's household in any attribute.
    personal = _personal_values(json.loads(act))
    in_trace = [s for s in exporter.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]
    linked = {link.context.span_id for span in (ingested, oriented, decided) for link in span.links}
    batches = [s for s in exporter.get_finished_spans() if s.context is not None and s.context.span_id in linked]
    assert batches, "each record span links to its batch's span"
    for span in in_trace + batches:
        for name, value in (span.attributes or {}).items():
            assert not any(p in str(value) for p in personal), (span.name, name)


def _personal_values(act: dict[str, Any]) -> set[str]:
    tenant = act["tenants"][0]
    return {
        tenant["last_name"],
        tenant["first_name"],
        act["household"]["contact"]["mobile"],
        act["dwelling"]["address"]["line1"],
        str(act["debt"]["amount"]),
        str(act["lease"]["rent_excl_charges"]),
    }


def test_tracing_off_writes_no_trace_context() -> None:
    tracing.install(None)
    assert tracing.outgoing_context(None) == (None, None)
    with tracing.record_spans(()):
        assert tracing.outgoing_context(None) == (None, None)


def test_tracing_off_adds_nothing_to_a_service() -> None:
    tracing.install(None)
    runtime = ingest.build(IngestSettings(emitters_path=EMITTERS_FILE, http_enabled=False))
    assert tracing.tracer_provider() is None
    assert not any("Telemetry" in type(m).__name__ for m in runtime.broker.middlewares)
