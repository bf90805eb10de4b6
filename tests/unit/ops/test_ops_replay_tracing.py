"""A dead letter's replay as a span: child of the span that first produced the record, and the record goes out
with the replay's trace context (the consumer's span is then the replay's child); off, nothing changes."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.ops.dead_letters import DeadLetterRef, traced_replay
from services.platform import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
STORED = [
    ("event_id", b"e1"),
    ("correlation_id", b"c0ffee00-0000-4000-8000-000000000001"),
    ("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN}-01".encode()),
]
REF = DeadLetterRef("orientation", 7)


def test_off_the_record_goes_out_with_its_stored_headers() -> None:
    with traced_replay(STORED, topic="t", ref=REF, correlation_id=None) as headers:
        assert headers == STORED


def test_on_the_replay_is_a_child_span_and_its_context_goes_out(span_exporter: InMemorySpanExporter) -> None:
    correlation = STORED[1][1].decode()
    with traced_replay(STORED, topic="exp.assignment.status.v1", ref=REF, correlation_id=correlation) as headers:
        pass
    (span,) = span_exporter.get_finished_spans()
    assert span.kind is SpanKind.PRODUCER
    assert span.name == "exp.assignment.status.v1 replay"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_SPAN
    assert span.attributes is not None
    assert span.attributes[tracing.ATTR_CORRELATION_ID] == correlation
    assert span.attributes["prevex.dead_letter"] == "orientation:7"

    sent = dict(headers)
    assert sent["traceparent"].decode() == f"00-{TRACE_ID}-{format(span.context.span_id, '016x')}-01"
    assert sent["correlation_id"] == STORED[1][1]  # the case's correlation id is kept
    assert sent["event_id"] == b"e1"
    assert len(headers) == len(STORED)


def test_a_failed_publish_marks_the_span_failed(span_exporter: InMemorySpanExporter) -> None:
    with (
        pytest.raises(ConnectionError),
        traced_replay(STORED, topic="t", ref=REF, correlation_id=None),
    ):
        raise ConnectionError("broker gone")
    (span,) = span_exporter.get_finished_spans()
    assert not span.status.is_ok
    assert span.events == ()  # no exception event: its message may quote the record
