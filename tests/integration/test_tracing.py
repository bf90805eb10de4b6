"""One act's spans across ingest, orientation and the notifier, each wired by its real ``bootstrap.build`` and
run in-process on one Tansu broker and one PostgreSQL database, traced into the SDK's in-memory exporter.

The emitter sends the act under a span of its own, on the raw Kafka topic or over ingest's HTTP intake: the
trace must run from it through ingest's intake (the raw record's span, or the request's server span),
orientation's processing of the canonical notification (its ``traceparent`` written by ingest's outbox), the
notifier's of the decision, and the notifier's sending of each alert to a real SMTP server (a client span per
delivery, child of the decision's record span stored with the alert), every hop a child of the one that caused
it, with the correlation id as an attribute and not as the trace id, and no personal data of the act in any
attribute.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from devtools import PostgresEndpoint, SmtpSink, create_topics, free_port, kafka_broker, temporary_database
from schemas import topics
from schemas.sources.samples import variant
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
BAILLEUR_KEY = "prevex-dev-key-th-0002"  # Territoire habitat's development key (deploy/emitters/emitters.yaml)
LINK_SECRET = "tracing-integration-tests-link-secret"
WAIT_S = 90.0
"""Upper bound of the wait for the last hop: a guard against hanging, not a performance assertion."""


@dataclass(frozen=True)
class Running:
    """The three services' broker, ingest's HTTP intake, and the SMTP server the notifier sends to."""

    bootstrap_servers: str
    intake_url: str
    smtp: SmtpSink


@pytest.fixture
async def services(span_exporter: InMemorySpanExporter, pg_server: PostgresEndpoint) -> AsyncIterator[Running]:
    """Ingest, orientation and the notifier on one broker and database, traced into ``span_exporter``."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        with kafka_broker() as broker, SmtpSink() as smtp:
            await create_topics(broker.bootstrap_servers, topics.ALL_TOPICS)
            async with temporary_database(pg_server, "prevex_tracing") as url, AsyncExitStack() as stack:
                common: dict[str, Any] = {
                    "kafka_bootstrap_servers": broker.bootstrap_servers,
                    "database_url": url,
                    # The service processes' timings (devtools.stack): a group joined in ~0.5 s on Tansu.
                    "kafka_session_timeout_ms": 1_000,
                    "kafka_heartbeat_interval_ms": 100,
                }
                intake_port = free_port()
                runtimes = [
                    ingest.build(IngestSettings(**common, emitters_path=EMITTERS_FILE, http_port=intake_port)),
                    orientation.build(OrientationSettings(**common, http_enabled=False)),
                    notifier.build(
                        NotifierSettings(
                            **common,
                            smtp_host=smtp.host,
                            smtp_port=smtp.port,
                            smtp_tls="none",
                            dispatch_interval_s=0.2,
                            http_port=free_port(),
                            link_secrets=LINK_SECRET,
                        )
                    ),
                ]
                for runtime in runtimes:
                    await _start(runtime, stack)
                yield Running(broker.bootstrap_servers, f"http://127.0.0.1:{intake_port}", smtp)


async def _start(runtime: Runtime, stack: AsyncExitStack) -> None:
    await runtime.start()
    stack.push_async_callback(runtime.stop)
    await runtime.broker.start()
    stack.push_async_callback(runtime.broker.stop)


def _caller_headers() -> dict[str, str]:
    """The W3C headers of the current span, as an emitter that traces would send them."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier


async def _on_kafka(running: Running, act: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap_servers, acks="all")
    await producer.start()
    try:
        headers = [(name, value.encode()) for name, value in _caller_headers().items()]
        await producer.send_and_wait(topics.RAW_CJ, act, key=CJ, headers=headers)
    finally:
        await producer.stop()


async def _over_http(running: Running, act: bytes) -> None:
    async with httpx.AsyncClient(base_url=running.intake_url) as client:
        answer = await client.post(
            "/v1/notifications", content=act, headers={"X-Api-Key": BAILLEUR_KEY, **_caller_headers()}
        )
    assert answer.status_code in {200, 201, 202}, answer.text


async def _finished(span_exporter: InMemorySpanExporter, name: str, count: int = 1) -> list[ReadableSpan]:
    """The ``count`` finished spans named ``name``, once they are there (a finished span has no feed: polled)."""

    def found() -> list[ReadableSpan]:
        return [s for s in span_exporter.get_finished_spans() if s.name == name]

    async with asyncio.timeout(WAIT_S):
        spans = found()
        while len(spans) < count:
            await asyncio.sleep(0.1)
            spans = found()
    assert len(spans) == count, [s.name for s in spans]
    return spans


def _parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


@pytest.mark.parametrize(
    ("example", "send", "intake_span"),
    [
        ("s01-cj-commandement-payer", _on_kafka, f"{topics.RAW_CJ} record"),
        ("s02-bailleur-saisine-ccapex", _over_http, "POST /v1"),
    ],
    ids=["kafka", "http"],
)
async def test_one_act_is_one_trace_across_the_services(
    services: Running,
    span_exporter: InMemorySpanExporter,
    example: str,
    send: Callable[[Running, bytes], Awaitable[None]],
    intake_span: str,
) -> None:
    act = variant(example)
    emitter = trace.get_tracer("emitter", tracer_provider=tracing.tracer_provider())
    with emitter.start_as_current_span("emitter send", kind=trace.SpanKind.PRODUCER) as emitter_span:
        await send(services, act)
    trace_id = emitter_span.get_span_context().trace_id

    (intake,) = await _finished(span_exporter, intake_span)
    (oriented,) = await _finished(span_exporter, f"{topics.PROCEDURE_NOTIFICATION} record")
    (decided,) = await _finished(span_exporter, f"{topics.ORIENTATION_DECIDED} record")  # one decision, 3 partners
    mails = await services.smtp.wait_for(3, timeout=WAIT_S)
    sends = await _finished(span_exporter, "EMAIL send", count=len(mails))  # one delivery per partner's email

    for span in (intake, oriented, decided, *sends):
        assert span.context is not None
        assert span.context.trace_id == trace_id, span.name
    assert _parent_id(intake) == emitter_span.get_span_context().span_id
    assert _parent_id(oriented) == intake.context.span_id
    assert _parent_id(decided) == oriented.context.span_id
    for span in sends:
        assert _parent_id(span) == decided.context.span_id
        assert span.kind is trace.SpanKind.CLIENT
        assert (span.attributes or {})["prevex.provider"] == "smtp"
    recipients = {address for mail in mails for address in mail.rcpt_tos}
    for span in sends:
        assert not any(address in str(value) for value in (span.attributes or {}).values() for address in recipients)

    correlation_id = oriented.attributes[ATTR_CORRELATION_ID]  # type: ignore[index]
    assert decided.attributes[ATTR_CORRELATION_ID] == correlation_id  # type: ignore[index]
    assert f"{trace_id:032x}" != str(correlation_id).replace("-", "")

    # Every span of the trace, and FastStream's batch spans the record spans link to: no personal value.
    personal = _personal_values(json.loads(act))
    finished = [s for s in span_exporter.get_finished_spans() if s.context is not None]
    linked = {link.context.span_id for span in (oriented, decided) for link in span.links}
    batches = [s for s in finished if s.context.span_id in linked]
    assert len(batches) == 2, "each record span links to its batch's span"
    for span in [s for s in finished if s.context.trace_id == trace_id] + batches:
        for name, value in (span.attributes or {}).items():
            assert not any(p in str(value) for p in personal), (span.name, name)


def _personal_values(act: dict[str, Any]) -> set[str]:
    tenants = [value for tenant in act["tenants"] for value in (tenant["last_name"], tenant["first_name"])]
    address = act["dwelling"]["address"]
    money = [act["debt"]["amount"], act["lease"]["rent_excl_charges"]]
    return {*tenants, address["line1"], *map(str, money)} | set(act["household"].get("contact", {}).values())


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
