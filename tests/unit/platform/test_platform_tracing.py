"""Tracing's edges without a broker: the HTTP server span, the trace context an outgoing event stores, the
record spans of a batch, and the settings that turn it on."""

from __future__ import annotations

import uuid

import httpx
import pytest
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.platform import tracing
from services.platform.outbox import OutboxMessage
from services.platform.settings import ServiceSettings

TOKEN = "b3uIMJEdBEh1BlXSLGxV"
CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/d/{token}")
    async def case(token: str) -> dict[str, str | None]:
        return {"traceparent": tracing.outgoing_context(None)[0]}

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("Durand, 12 rue de Mulhouse")

    @app.get("/metrics")
    async def metrics() -> str:
        return ""

    return app


async def _get(provider: TracerProvider, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=tracing.asgi_app(_app(), provider), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://workspace.test") as client:
        return await client.get(path, headers=headers or {})


async def test_a_request_is_a_server_span_child_of_its_caller_without_its_path(
    span_exporter: InMemorySpanExporter,
) -> None:
    provider = tracing.tracer_provider()
    assert provider is not None
    answer = await _get(provider, f"/d/{TOKEN}?ref=90-2026-000001", {"traceparent": CALLER})
    (span,) = span_exporter.get_finished_spans()
    assert span.kind is trace.SpanKind.SERVER
    assert span.name == "GET /d"
    assert span.context is not None
    assert span.parent is not None
    assert f"{span.context.trace_id:032x}" == CALLER.split("-")[1]
    assert f"{span.parent.span_id:016x}" == CALLER.split("-")[2]
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/d",
        "http.response.status_code": 200,
    }
    # What the handler writes to the outbox is a child of the request's span.
    assert answer.json()["traceparent"] == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"


async def test_a_failing_request_is_marked_with_the_error_type_only(span_exporter: InMemorySpanExporter) -> None:
    provider = tracing.tracer_provider()
    assert provider is not None
    answer = await _get(provider, "/boom")
    assert answer.status_code == 500
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert "Durand" not in str(span.status.description) + str(span.attributes) + str(span.events)


async def test_scrapes_and_probes_are_not_traced(span_exporter: InMemorySpanExporter) -> None:
    provider = tracing.tracer_provider()
    assert provider is not None
    assert (await _get(provider, "/metrics")).status_code == 200
    assert span_exporter.get_finished_spans() == ()


def _record(offset: int, headers: list[tuple[str, bytes | None]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        "exp.procedure.notification.v1",
        0,
        offset,
        0,
        0,
        b"k",
        b"{}",
        None,
        1,
        2,
        headers,
    )


def test_each_record_span_is_the_child_of_its_producer_and_an_event_finds_its_cause(
    span_exporter: InMemorySpanExporter,
) -> None:
    cause = uuid.uuid4()
    records = [
        _record(7, [("traceparent", CALLER.encode()), ("event_id", str(cause).encode()), ("correlation_id", b"c-1")]),
        _record(8, [("traceparent", b"\xff not text"), ("x-null", None)]),
    ]
    tracer = trace.get_tracer("batch", tracer_provider=tracing.tracer_provider())
    with tracer.start_as_current_span("batch") as batch, tracing.record_spans(records):
        caused = tracing.outgoing_context(cause)
        uncaused = tracing.outgoing_context(None)
    first, second = (s for s in span_exporter.get_finished_spans() if s.name.endswith(" record"))
    assert first.parent is not None
    assert f"{first.parent.span_id:016x}" == CALLER.split("-")[2]
    assert [link.context.span_id for link in first.links] == [batch.get_span_context().span_id]
    assert dict(first.attributes or {})["prevex.correlation_id"] == "c-1"
    # A traceparent that is not text is ignored: that record is a child of the batch.
    assert second.parent is not None
    assert second.parent.span_id == batch.get_span_context().span_id
    assert caused[0] is not None
    assert f"{first.context.span_id:016x}" in caused[0]
    assert uncaused[0] is not None
    assert f"{batch.get_span_context().span_id:016x}" in uncaused[0]


def test_a_failing_batch_marks_its_record_spans_with_the_error_type(span_exporter: InMemorySpanExporter) -> None:
    with pytest.raises(KeyError), tracing.record_spans([_record(1, [])]):
        raise KeyError("Durand")
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "KeyError"


def test_a_delivery_attempt_is_a_client_span_child_of_the_alerts_stored_context(
    span_exporter: InMemorySpanExporter,
) -> None:
    delivery_id = uuid.uuid4()
    with tracing.send_span((CALLER, "vendor=1"), channel="EMAIL", provider="smtp", delivery_id=delivery_id, attempt=2):
        pass
    sms = tracing.send_span((None, None), channel="SMS", provider="ovh", delivery_id=delivery_id, attempt=1)
    with pytest.raises(ConnectionError), sms:
        raise ConnectionError("550 <jean.durand@example.fr>: recipient rejected")

    sent, failed = span_exporter.get_finished_spans()
    assert (sent.name, sent.kind, failed.name) == ("EMAIL send", trace.SpanKind.CLIENT, "SMS send")
    assert sent.context is not None
    assert sent.parent is not None
    assert (f"{sent.context.trace_id:032x}", f"{sent.parent.span_id:016x}") == (CALLER[3:35], CALLER[36:52])
    assert sent.parent.trace_state.get("vendor") == "1"
    assert dict(sent.attributes or {}) == {
        "prevex.channel": "EMAIL",
        "prevex.provider": "smtp",
        "prevex.delivery_id": str(delivery_id),
        "prevex.attempt": 2,
    }
    assert failed.parent is None, "an alert stored without a context starts a trace of its own"
    assert failed.status.description == "ConnectionError"
    assert "durand" not in str(failed.to_json()).lower()


def test_tracing_off_opens_no_send_span() -> None:
    tracing.install(None)
    with tracing.send_span(
        (CALLER, None), channel="EMAIL", provider="smtp", delivery_id=uuid.uuid4(), attempt=1
    ) as span:
        assert span is None


def test_the_relay_publishes_the_stored_context_after_the_envelope_headers() -> None:
    message = OutboxMessage("t", b"k", b"{}", {"event_id": "e"}, CALLER, "vendor=1")
    assert message.kafka_headers() == [
        ("event_id", b"e"),
        ("traceparent", CALLER.encode()),
        ("tracestate", b"vendor=1"),
    ]
    assert OutboxMessage("t", b"k", b"{}", {"event_id": "e"}).kafka_headers() == [("event_id", b"e")]


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "off"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "PREVEX_TRACING": "off"}, "off"),
        ({"PREVEX_TRACING": "otlp"}, "otlp"),
        ({"PREVEX_TRACING": ""}, "off"),
    ],
)
def test_tracing_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], mode: str) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "PREVEX_TRACING"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ServiceSettings().tracing_mode == mode


def test_an_unknown_tracing_mode_stops_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVEX_TRACING", "jaeger")
    with pytest.raises(ValueError, match="PREVEX_TRACING"):
        ServiceSettings()
