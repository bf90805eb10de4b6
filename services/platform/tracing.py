"""OpenTelemetry tracing: off by default, one act's journey as one trace when on.

Off (``PREVEX_TRACING=off``, or unset without ``OTEL_EXPORTER_OTLP_ENDPOINT``) nothing here creates a span
or touches a header: the broker gets no tracing middleware, the HTTP apps are not wrapped, and the helpers
return after one check of a module variable. On (``otlp``), spans go to the OTLP/HTTP exporter configured
by the standard ``OTEL_EXPORTER_OTLP_*`` variables, in batches, off the event loop.

How a trace crosses the services: an HTTP request gets a server span (:func:`asgi_app`);
each consumed record gets a *processing* span, child of the span that produced it (its ``traceparent``
header); an event a handler writes to the outbox stores the W3C context of the span that caused it (the
processing span of the record its ``causation_id`` names, else the current span: the HTTP request's), and
the relay publishes it in the Kafka headers. A batch's FastStream span links nothing (our parser hides the
headers from it), so each record span links to it instead: the batch stays findable from every record.

The notifier's sending, which runs later from its delivery queue, joins the same trace: the alert keeps
the context of the decision's record span (:func:`outgoing_context`, stored with the alert), and each delivery
attempt is a client span, child of it (:func:`send_span`).

Attributes are ids, codes, topics, positions and counts only, never a value read from a payload.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Literal

from aiokafka import ConsumerRecord
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from schemas.envelope import HEADER_CORRELATION_ID, HEADER_EVENT_ID, HEADER_TRACEPARENT, HEADER_TRACESTATE

__all__ = [
    "ATTR_CORRELATION_ID",
    "TraceContext",
    "TracingMode",
    "asgi_app",
    "broker_middleware",
    "configure",
    "install",
    "outgoing_context",
    "record_spans",
    "send_span",
    "tracer_provider",
]

TracingMode = Literal["off", "otlp"]

TraceContext = tuple[str | None, str | None]
"""A W3C ``traceparent`` and ``tracestate`` to publish with an event; ``(None, None)`` when not tracing."""

ATTR_CORRELATION_ID = "prevex.correlation_id"
"""The case's correlation id: an attribute of every record span, never the trace id."""

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "prevex"

_provider: TracerProvider | None = None
# The processing spans of the batch being handled, by the event id of their record: an event written to
# the outbox finds the span of the record that caused it even when the batch is handled in bulk.
_record_spans: ContextVar[dict[str, Span] | None] = ContextVar("prevex_record_spans", default=None)


def install(provider: TracerProvider | None) -> None:
    """Trace through ``provider`` from now on in this process (``None``: tracing off). Tests install one
    with an in-memory exporter; :func:`configure` installs the OTLP one."""
    global _provider  # noqa: PLW0603 -- one tracing pipeline per process, as OpenTelemetry's own global
    _provider = provider


def tracer_provider() -> TracerProvider | None:
    """The installed provider, ``None`` when tracing is off."""
    return _provider


def configure(service: str, mode: TracingMode) -> TracerProvider | None:
    """Install the OTLP pipeline for ``service`` when ``mode`` is ``otlp`` and none is installed yet;
    return the provider in use (``None``: off). An already installed provider (a test's) is kept."""
    if _provider is None and mode == "otlp":
        # Imported here: its protobuf modules cost start-up time a service that does not trace never pays.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"prevex-{service}"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        install(provider)
    return _provider


def broker_middleware(provider: TracerProvider) -> KafkaTelemetryMiddleware:
    """FastStream's OpenTelemetry middleware: a span per consumed batch and per FastStream publish."""
    return KafkaTelemetryMiddleware(tracer_provider=provider, include_messages_counters=False)


def asgi_app(app: Any, provider: TracerProvider) -> Any:
    """``app`` with a server span per HTTP request, child of the caller's ``traceparent`` if it sent one.

    A small middleware rather than OpenTelemetry's ASGI instrumentation, which records the full URL (a
    workspace path carries a signed link token), the client's address and its user agent: here the span
    holds the method, the path's first segment and the status code, nothing else.
    """
    tracer = provider.get_tracer(_TRACER_NAME)

    async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _first_segment(scope) in _UNTRACED:
            await app(scope, receive, send)
            return
        method = str(scope.get("method", "HTTP"))
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        with tracer.start_as_current_span(
            f"{method} {_first_segment(scope)}",
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": _first_segment(scope)},
            # The SDK would record the exception's message, which may quote the request: the type only.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            async def send_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", int(message["status"]))
                    if int(message["status"]) >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await app(scope, receive, send_status)
            except Exception as error:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise

    return traced


_UNTRACED = frozenset({"/health", "/metrics"})
"""Probes and scrapes, every few seconds: a trace each would drown the requests worth following."""


def _first_segment(scope: dict[str, Any]) -> str:
    segment = str(scope.get("path", "/")).lstrip("/").split("/", 1)[0]
    return f"/{segment}"


@contextlib.contextmanager
def record_spans(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Iterator[None]:
    """A processing span per record for the batch handled inside: child of the producing span named by
    the record's ``traceparent`` (else of the batch span), linked to the batch span. A batch of one record
    makes its span the current one. The spans end with the block, marked failed if it raised."""
    if _provider is None:
        yield
        return
    tracer = _provider.get_tracer(_TRACER_NAME)
    batch = trace.get_current_span()
    by_event: dict[str, Span] = {}
    spans = [_record_span(tracer, record, batch, by_event) for record in records]
    token = _record_spans.set(by_event)
    try:
        with trace.use_span(spans[0], end_on_exit=False) if len(spans) == 1 else contextlib.nullcontext():
            yield
    except BaseException as error:
        # The type only: an exception's message may quote the input.
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        _record_spans.reset(token)
        for span in spans:
            span.end()


def _record_span(
    tracer: trace.Tracer, record: ConsumerRecord[bytes, bytes], batch: Span, by_event: dict[str, Span]
) -> Span:
    headers = _text_headers(record)
    parent = _PROPAGATOR.extract(headers)
    caused = trace.get_current_span(parent).get_span_context().is_valid
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
    }
    if (event_id := headers.get(HEADER_EVENT_ID)) is not None:
        attributes["messaging.message.id"] = event_id
    if (correlation_id := headers.get(HEADER_CORRELATION_ID)) is not None:
        attributes[ATTR_CORRELATION_ID] = correlation_id
    batch_context = batch.get_span_context()
    span = tracer.start_span(
        f"{record.topic} record",
        context=parent if caused else trace.set_span_in_context(batch),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=[Link(batch_context)] if caused and batch_context.is_valid else None,
    )
    if event_id is not None:
        by_event[event_id] = span
    return span


_TRACE_HEADERS = (HEADER_TRACEPARENT, HEADER_TRACESTATE, HEADER_EVENT_ID, HEADER_CORRELATION_ID)


def _text_headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    # Headers come from any producer: only the few read here, and only when they are text.
    found: dict[str, str] = {}
    for name, value in record.headers:
        if name in _TRACE_HEADERS and value is not None:
            with contextlib.suppress(UnicodeDecodeError):
                found[name] = value.decode("utf-8")
    return found


def outgoing_context(causation_id: uuid.UUID | None) -> TraceContext:
    """The W3C context to publish with an event caused by the event ``causation_id``: that event's record
    span when it is in the batch being handled, else the current span (an HTTP request's, a record's in a
    batch of one); ``(None, None)`` when tracing is off or no span is current."""
    if _provider is None:
        return None, None
    spans = _record_spans.get()
    span = (spans or {}).get(str(causation_id)) if causation_id is not None else None
    if span is None:
        span = trace.get_current_span()
    if not span.get_span_context().is_valid:
        return None, None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get(HEADER_TRACEPARENT), carrier.get(HEADER_TRACESTATE)


@contextlib.contextmanager
def send_span(
    context: TraceContext, *, channel: str, provider: str, delivery_id: uuid.UUID, attempt: int
) -> Iterator[Span | None]:
    """A client span ``<channel> send`` around one delivery attempt, child of the stored ``context`` (the
    alert's: the decision's record span), or a trace's root when it holds none. Yields the span, for the
    caller to add the outcome (``prevex.outcome``), or ``None`` when tracing is off.

    Attributes: the channel, our provider name, the delivery id and attempt number, never the recipient;
    an exception is recorded by its type (an SMTP reply quotes the address) and re-raised."""
    if _provider is None:
        yield None
        return
    traceparent, tracestate = context
    carrier = {HEADER_TRACEPARENT: traceparent} if traceparent else {}
    if traceparent and tracestate:
        carrier[HEADER_TRACESTATE] = tracestate
    with _provider.get_tracer(_TRACER_NAME).start_as_current_span(
        f"{channel} send",
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.CLIENT,
        attributes={
            "prevex.channel": channel,
            "prevex.provider": provider,
            "prevex.delivery_id": str(delivery_id),
            "prevex.attempt": attempt,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as error:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
