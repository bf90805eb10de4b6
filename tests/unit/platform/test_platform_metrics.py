"""Business counters counted from the events the outbox published, labels that are codes only, and the consumer
progress that ``/health/ready`` reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from schemas import topics
from services.platform.health import ConsumerProgress, Readiness, health_app, health_router
from services.platform.metrics import ServiceMetrics, code_label
from services.platform.outbox import OutboxMessage


def _message(topic: str, payload: dict[str, Any]) -> OutboxMessage:
    # Compact, like the events' model_dump_json()
    return OutboxMessage(topic, b"key", json.dumps({"payload": payload}, separators=(",", ":")).encode())


def _value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_ingest_counts_accepted_rejected_and_duplicate_events_by_code_and_emitter_type() -> None:
    metrics = ServiceMetrics("ingest")
    source = {"notification": {"source": {"emitter_type": "COMMISSAIRE_JUSTICE"}}}
    metrics.observe_published(
        [
            _message(topics.PROCEDURE_NOTIFICATION, {**source, "is_correction": False}),
            _message(topics.PROCEDURE_NOTIFICATION, {**source, "is_correction": True}),
            _message(topics.INGEST_REJECTED, {"emitter_type": "BAILLEUR_SOCIAL", "errors": [{"code": "DATE_INVALID"}]}),
            _message(topics.INGEST_REJECTED, {"errors": [{"code": "REQUIRED_FOR_STAGE_MISSING:debt.amount"}]}),
            _message(topics.INGEST_DUPLICATE, {"emitter_id": "CJ-1"}),
        ]
    )
    accepted = "prevex_ingest_acts_accepted_total"
    assert _value(metrics, accepted, emitter_type="COMMISSAIRE_JUSTICE", correction="false") == 1
    assert _value(metrics, accepted, emitter_type="COMMISSAIRE_JUSTICE", correction="true") == 1
    rejected = "prevex_ingest_acts_rejected_total"
    assert _value(metrics, rejected, code="DATE_INVALID", emitter_type="BAILLEUR_SOCIAL") == 1
    # The field qualifier stays out of the label; an unreadable input has no emitter type.
    assert _value(metrics, rejected, code="REQUIRED_FOR_STAGE_MISSING", emitter_type="NONE") == 1
    assert _value(metrics, "prevex_ingest_duplicates_total") == 1


def test_the_notifier_counts_each_receipt_by_channel_provider_and_outcome() -> None:
    metrics = ServiceMetrics("notifier")
    sent = {"channel": "EMAIL", "provider": "smtp"}
    metrics.observe_published(
        [
            _message(topics.NOTIFICATION_SENT, sent),
            _message(topics.NOTIFICATION_SENT, sent),
            _message(topics.NOTIFICATION_FAILED, {"channel": "SMS", "provider": "ovh"}),
            _message(topics.NOTIFICATION_UNDELIVERABLE, {"channel": None, "provider": None}),
        ]
    )
    name = "prevex_notifier_deliveries_total"
    assert _value(metrics, name, channel="EMAIL", provider="smtp", outcome="sent") == 2
    assert _value(metrics, name, channel="SMS", provider="ovh", outcome="failed") == 1
    assert _value(metrics, name, channel="NONE", provider="NONE", outcome="undeliverable") == 1


def test_the_notifier_observes_the_end_to_end_latency_of_each_alert_without_labels() -> None:
    metrics = ServiceMetrics("notifier")
    received = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for accepted_after in (timedelta(milliseconds=300), timedelta(hours=2), timedelta(seconds=-1)):
        metrics.observe_end_to_end(received, received + accepted_after)
    name = "prevex_notifier_end_to_end_latency_seconds"
    assert _value(metrics, f"{name}_count") == 3
    assert _value(metrics, f"{name}_bucket", le="0.01") == 1  # another host's clock a second ahead: 0, not dropped
    assert _value(metrics, f"{name}_bucket", le="0.5") == 2
    assert _value(metrics, f"{name}_bucket", le="3600.0") == 2
    assert _value(metrics, f"{name}_bucket", le="+Inf") == 3
    assert _value(metrics, f"{name}_sum") == 0.3 + 7200
    # Only the notifier sees an alert accepted: the other services have no such histogram, and ignore the call.
    ingest = ServiceMetrics("ingest")
    ingest.observe_end_to_end(received, received + timedelta(seconds=1))
    assert not [m for m in ingest.registry.collect() if "latency" in m.name]


def test_orientation_counts_decisions_by_fallback_and_their_assignments() -> None:
    metrics = ServiceMetrics("orientation")
    decided = {"trigger": "NOTIFICATION", "fallback_used": True, "assignments": [{"kind": "NEW"}, {"kind": "NEW"}]}
    metrics.observe_published(
        [_message(topics.ORIENTATION_DECIDED, decided), _message(topics.ORIENTATION_UNMATCHED, {})]
    )
    assert _value(metrics, "prevex_orientation_decisions_total", trigger="NOTIFICATION", fallback="true") == 1
    assert _value(metrics, "prevex_orientation_decided_assignments_total", kind="NEW") == 2
    assert _value(metrics, "prevex_orientation_unmatched_total") == 1


def test_a_value_that_is_not_a_code_never_becomes_a_label() -> None:
    metrics = ServiceMetrics("ingest")
    hostile = {"emitter_type": "Léa Durand, 12 rue des Lilas", "errors": [{"code": "06 12 34 56 78"}]}
    metrics.observe_published([_message(topics.INGEST_REJECTED, hostile)])
    assert _value(metrics, "prevex_ingest_acts_rejected_total", code="OTHER", emitter_type="OTHER") == 1
    labels = {
        value for family in metrics.registry.collect() for sample in family.samples for value in sample.labels.values()
    }
    assert not any("Durand" in value or "06 12" in value for value in labels)


def test_code_label() -> None:
    assert code_label("SCHEMA_INVALID") == "SCHEMA_INVALID"
    assert code_label("REQUIRED_FOR_STAGE_MISSING:debt.amount") == "REQUIRED_FOR_STAGE_MISSING"
    assert code_label(topics.RAW_CJ) == topics.RAW_CJ
    assert code_label(None) == "NONE"
    assert code_label(True) == "true"
    assert code_label("90-2026-000001") == "OTHER"  # a procedure reference starts with a digit
    assert code_label("x" * 65) == "OTHER"
    assert code_label("a b") == "OTHER"


def test_events_of_other_topics_are_neither_parsed_nor_counted() -> None:  # parsing is the relay's only cost
    metrics = ServiceMetrics("ingest")
    metrics.observe_published([OutboxMessage(topics.ORIENTATION_DECIDED, None, b"not json")])
    assert _value(metrics, "prevex_ingest_acts_accepted_total", emitter_type="NONE", correction="NONE") == 0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_consumer_is_stalled_by_a_batch_held_too_long_or_failing_too_long_never_by_idling() -> None:
    clock = _Clock()
    progress = ConsumerProgress(clock=clock)
    progress.started("a")
    progress.finished("a", ok=True)
    clock.now = 10_000.0
    assert progress.stalled(300) == []  # idle for hours: no input is no work

    progress.started("a")
    clock.now += 300
    assert progress.stalled(300) == []  # at the limit, not past it
    clock.now += 1
    assert progress.stalled(300) == ["a"]
    progress.finished("a", ok=False)  # the batch will come again: failing since now
    assert progress.stalled(300) == []
    for _ in range(4):
        progress.started("a")
        clock.now += 100
        progress.finished("a", ok=False)
    assert progress.stalled(300) == ["a"]
    progress.started("a")
    progress.finished("a", ok=True)
    assert progress.stalled(300) == []


def test_an_event_that_cannot_be_read_is_left_uncounted_without_failing_the_relay() -> None:
    metrics = ServiceMetrics("ingest")
    metrics.observe_published(
        [
            OutboxMessage(topics.INGEST_REJECTED, None, b"not json"),
            OutboxMessage(topics.INGEST_REJECTED, None, b'{"no": "payload"}'),
            _message(topics.INGEST_REJECTED, {"errors": [{"code": "SCHEMA_INVALID"}]}),
        ]
    )
    assert _value(metrics, "prevex_ingest_acts_rejected_total", code="SCHEMA_INVALID", emitter_type="NONE") == 1
    assert sum(s.value for f in metrics.registry.collect() for s in f.samples if s.name.endswith("rejected_total")) == 1


def test_accepted_acts_are_labelled_from_the_event_itself_not_from_text_inside_it() -> None:
    # The accepted counter reads its two labels without parsing the (large) event: a string holding the
    # same key, escaped in JSON, must not be taken for it.
    metrics = ServiceMetrics("ingest")
    decoy = '"emitter_type":"OTHER_TYPE"'
    payload = {"note": decoy, "is_correction": True, "notification": {"source": {"emitter_type": "BAILLEUR_SOCIAL"}}}
    metrics.observe_published([_message(topics.PROCEDURE_NOTIFICATION, payload)])
    assert _value(metrics, "prevex_ingest_acts_accepted_total", emitter_type="BAILLEUR_SOCIAL", correction="true") == 1


class _DownPool:
    def fetchval(self, _: str) -> Any:
        raise ConnectionRefusedError

    def acquire(self, **_: Any) -> Any:
        raise ConnectionRefusedError


class _Subscriber:
    consumer = None  # not started: not in its group


class _SilentBroker:
    subscribers = (_Subscriber(),)

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109 (FastStream's signature)
        return False


async def test_ready_answers_503_naming_every_failing_check_and_metrics_still_answer() -> None:
    progress = ConsumerProgress()
    progress.finished(topics.RAW_CJ, ok=False)
    readiness = Readiness(pool=_DownPool, broker=_SilentBroker(), progress=progress, stall_after_s=0.0)  # type: ignore[arg-type]
    metrics = ServiceMetrics("ingest")
    metrics.observe_published([_message(topics.INGEST_DUPLICATE, {})])
    app = health_app([health_router(readiness, metrics)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "not ready",
            "problems": [
                "postgresql: ConnectionRefusedError",
                "broker: no answer",
                "consumers: 1 not in their group yet",
                f"consumer stalled: {topics.RAW_CJ}",
            ],
        }
        assert (await client.get("/health/live")).status_code == 200
        scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert "prevex_ingest_duplicates_total 1.0" in scraped.text
    assert "prevex_ingest_ready 0.0" in scraped.text
