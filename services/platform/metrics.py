"""Prometheus metrics of one service process: message counters, business counters, gauges read at scrape time.

Every service gets its own ``CollectorRegistry`` (``ServiceMetrics.registry``), exported on ``/metrics``
(``services.platform.health``). Three sources feed it:

- **Message counters**: FastStream's ``KafkaPrometheusMiddleware`` on the service's broker, named
  ``prevex_<service>_received_messages_total`` etc. (one observation per consumed batch).
- **Business counters**: counted from the events the outbox relay has just relayed (:meth:`observe_published`),
  once the broker acknowledged them and the relay's DELETE of their rows committed: a scrape never sees an
  event both counted and pending in the outbox gauge, and a rolled-back batch counts nothing. Counters
  are per process and start at zero: sum them over replicas and read them with ``rate()``/``increase()``,
  which handle restarts. A relay that publishes a batch and fails to delete its rows publishes it again
  (the same at-least-once as the events themselves) and counts it once, when the delete commits.
- **The end-to-end latency** (the notifier's ``prevex_notifier_end_to_end_latency_seconds``,
  :meth:`ServiceMetrics.observe_end_to_end`): from ingest's reception of an act to the SMTP server or SMS
  provider accepting the first delivery of an alert it caused, observed by the notifier once per alert.
- **Gauges read at scrape time** (:meth:`refresh`): the outbox backlog and its oldest row, the dead letters,
  service tables (assignments by status, the notifier's retry queue) and consumer lag. They come from the
  database or the consumer, so several replicas report the same values: use ``max()``, not ``sum()``.

Labels carry codes only (enums of the contracts, rejection codes, provider names of our code), never an
identifier of a case or of a person; a value that does not look like a code is reported as ``OTHER``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas import topics
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage

__all__ = [
    "END_TO_END_BUCKETS_S",
    "EVENT_COUNTERS",
    "TABLE_GAUGES",
    "EventCounter",
    "ServiceMetrics",
    "TableGauge",
    "code_label",
]

Labels = tuple[str, ...]
log = get_logger(__name__)
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def code_label(value: object) -> str:
    """``value`` as a label: a code as it is (without a ``:field`` qualifier), ``NONE`` when missing,
    ``OTHER`` for anything that is not shaped like a code (so no free text ever becomes a label)."""
    if value is None:
        return "NONE"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).split(":", 1)[0]
    return text if _CODE.match(text) else "OTHER"


@dataclass(frozen=True)
class EventCounter:
    """A counter of the events one service publishes on ``topic``: ``labels`` names its labels and
    ``values`` turns an event's serialised JSON into one label tuple per increment."""

    service: str
    topic: str
    name: str
    documentation: str
    labels: Labels
    values: Callable[[bytes], Iterable[Labels]]


def _parsed(values: Callable[[Mapping[str, Any]], Iterable[Labels]]) -> Callable[[bytes], Iterable[Labels]]:
    return lambda raw: values(json.loads(raw)["payload"])


def _one(*fields: Callable[[Mapping[str, Any]], object]) -> Callable[[bytes], Iterable[Labels]]:
    return _parsed(lambda payload: [tuple(code_label(field(payload)) for field in fields)])


def _scanned(*keys: str) -> Callable[[bytes], Iterable[Labels]]:
    """Labels read from the first ``"key":<string or boolean>`` of each key in the raw JSON, without parsing it:
    for the largest and most frequent events (a canonical record, several kB, thousands a second), where a
    whole parse would cost a few percent of ingest's time per act. Sound on our own compact JSON: inside a
    string a quote is escaped, so ``"key":`` there never matches; each key scanned appears once in the event."""
    patterns = [re.compile(b'"' + re.escape(key.encode()) + rb'":(?:"([^"\\]*)"|(true|false))') for key in keys]

    def values(raw: bytes) -> Iterable[Labels]:
        found = [pattern.search(raw) for pattern in patterns]
        return [tuple(code_label(None if m is None else (m[1] or m[2]).decode("utf-8", "replace")) for m in found)]

    return values


def _first_code(payload: Mapping[str, Any]) -> object:
    errors = payload.get("errors") or [{}]
    return errors[0].get("code")


def _assignments(payload: Mapping[str, Any]) -> Iterable[Labels]:
    return [(code_label(a.get("kind")),) for a in payload.get("assignments", [])]


EVENT_COUNTERS: tuple[EventCounter, ...] = (
    EventCounter(
        "ingest",
        topics.PROCEDURE_NOTIFICATION,
        "acts_accepted_total",
        "Acts accepted (a new act or a correction), by emitter type",
        ("emitter_type", "correction"),
        _scanned("emitter_type", "is_correction"),
    ),
    EventCounter(
        "ingest",
        topics.INGEST_REJECTED,
        "acts_rejected_total",
        "Inputs rejected, by their first error code and the emitter type (NONE when unreadable)",
        ("code", "emitter_type"),
        _one(_first_code, lambda p: p.get("emitter_type")),
    ),
    EventCounter(
        "ingest",
        topics.INGEST_DUPLICATE,
        "duplicates_total",
        "Exact re-sends of an act already accepted (ignored)",
        (),
        lambda _: [()],
    ),
    EventCounter(
        "orientation",
        topics.ORIENTATION_DECIDED,
        "decisions_total",
        "Decisions published, by trigger and whether a fallback was used",
        ("trigger", "fallback"),
        _one(lambda p: p.get("trigger"), lambda p: p.get("fallback_used")),
    ),
    EventCounter(
        "orientation",
        topics.ORIENTATION_DECIDED,
        "decided_assignments_total",
        "Assignments carried by the decisions published, by kind",
        ("kind",),
        _parsed(_assignments),
    ),
    EventCounter(
        "orientation",
        topics.ORIENTATION_UNMATCHED,
        "unmatched_total",
        "Notices no offer matched (sent to manual orientation)",
        (),
        lambda _: [()],
    ),
    *(
        EventCounter(
            "notifier",
            topic,
            "deliveries_total",
            "Delivery outcomes published as receipts, by channel, provider and outcome",
            ("channel", "provider", "outcome"),
            _one(lambda p: p.get("channel"), lambda p: p.get("provider"), lambda _, o=outcome: o),  # type: ignore[misc]
        )
        for topic, outcome in (
            (topics.NOTIFICATION_SENT, "sent"),
            (topics.NOTIFICATION_FAILED, "failed"),
            (topics.NOTIFICATION_UNDELIVERABLE, "undeliverable"),
        )
    ),
    EventCounter(
        "workspace",
        topics.ASSIGNMENT_STATUS,
        "status_changes_total",
        "Status changes partners made on their pages, by status",
        ("status",),
        _one(lambda p: p.get("status")),
    ),
)
"""The business counters, by the service whose outbox publishes them."""


@dataclass(frozen=True)
class TableGauge:
    """A gauge of one service read from its database at scrape time: ``query`` returns rows whose last
    column is the value and the others the labels, in ``labels`` order."""

    service: str
    name: str
    documentation: str
    labels: Labels
    query: str


_SHARED_GAUGES = (
    TableGauge(
        "*",
        "outbox_pending_events",
        "Events written to the outbox and not yet acknowledged by the broker",
        (),
        "SELECT count(*) FROM outbox",
    ),
    TableGauge(
        "*",
        "outbox_oldest_pending_age_seconds",
        "Age of the oldest event waiting in the outbox (0 when empty)",
        (),
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM outbox",
    ),
    TableGauge(
        "*",
        "dead_letters",
        "Records parked in dead_letter (waiting for ops), by topic",
        ("topic",),
        "SELECT topic, count(*) FROM dead_letter GROUP BY topic",
    ),
)

TABLE_GAUGES: tuple[TableGauge, ...] = (
    *_SHARED_GAUGES,
    TableGauge(
        "orientation",
        "assignments",
        "Assignments by status",
        ("status",),
        "SELECT status, count(*) FROM assignment GROUP BY status",
    ),
    TableGauge(
        "notifier",
        "retry_queue_deliveries",
        "Deliveries waiting for another attempt",
        (),
        "SELECT count(*) FROM delivery WHERE state = 'retrying'",
    ),
    TableGauge(
        "notifier",
        "retry_queue_oldest_due_seconds",
        "How long the most overdue delivery waiting for another attempt is past its due time (0 when none)",
        (),
        "SELECT coalesce(greatest(extract(epoch FROM now() - min(next_attempt_at)), 0), 0)"
        " FROM delivery WHERE state = 'retrying'",
    ),
    TableGauge(
        "notifier",
        "deliveries_in_progress",
        "Deliveries not yet sent nor given up, by state (pending, sending, retrying)",
        ("state",),
        # Only the open states: the partial index delivery_due serves them; sent ones pile up for ever.
        "SELECT state, count(*) FROM delivery WHERE state IN ('pending', 'retrying', 'sending') GROUP BY state",
    ),
)
"""Gauges read from the database at scrape time; service ``*`` is every service (platform tables)."""


END_TO_END_BUCKETS_S: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
)  # fmt: skip
"""10 ms to 1 h: a local run alerts in well under a second, a loaded one in seconds; a delivery held
for retries, a provider down or an SMS waiting out quiet hours lands in the minutes (or ``+Inf``)."""


class ServiceMetrics:
    """The registry of one service and the metrics in it (see the module docstring)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.prefix = f"prevex_{service}"
        self.registry = CollectorRegistry()
        self.middleware = KafkaPrometheusMiddleware(
            registry=self.registry, app_name=service, metrics_prefix=self.prefix
        )
        self._events: dict[str, list[tuple[EventCounter, Counter]]] = {}
        counters: dict[str, Counter] = {}
        for spec in EVENT_COUNTERS:
            if spec.service == service:
                if spec.name not in counters:
                    counters[spec.name] = Counter(
                        f"{self.prefix}_{spec.name}", spec.documentation, spec.labels, registry=self.registry
                    )
                self._events.setdefault(spec.topic, []).append((spec, counters[spec.name]))
        self._tables = [
            (spec, Gauge(f"{self.prefix}_{spec.name}", spec.documentation, spec.labels, registry=self.registry))
            for spec in TABLE_GAUGES
            if spec.service in ("*", service)
        ]
        self.consumer_lag = Gauge(
            f"{self.prefix}_consumer_lag_records",
            "Records between the consumer's position and the partition's high watermark (last fetch)",
            ("topic", "partition"),
            registry=self.registry,
        )
        self.ready = Gauge(
            f"{self.prefix}_ready", "1 when /health/ready would answer 200, read at each scrape", registry=self.registry
        )
        # The notifier's alone: only it sees an alert accepted. No label: a per-case value would be one.
        self._end_to_end = (
            Histogram(
                f"{self.prefix}_end_to_end_latency_seconds",
                "From ingest receiving an act to the SMTP server or SMS provider accepting the first delivery"
                " of an alert it caused",
                buckets=END_TO_END_BUCKETS_S,
                registry=self.registry,
            )
            if service == "notifier"
            else None
        )

    def observe_end_to_end(self, act_received_at: datetime, accepted_at: datetime) -> None:
        """One alert's first accepted delivery, ``accepted_at``, for the act received at ``act_received_at``.

        A service other than the notifier has no such histogram: nothing happens. Clocks of different hosts
        may disagree by a little: a negative latency is observed as 0 rather than dropped."""
        if self._end_to_end is not None:
            self._end_to_end.observe(max((accepted_at - act_received_at).total_seconds(), 0.0))

    def observe_published(self, messages: Sequence[OutboxMessage]) -> None:
        """Count the business events among ``messages``, which the outbox relay has just relayed. Never raises:
        an event that cannot be read is logged (its topic and error type) and left uncounted."""
        for message in messages:
            counters = self._events.get(message.topic)
            if not counters:
                continue
            try:
                increments = [(counter, labels) for spec, counter in counters for labels in spec.values(message.value)]
            except Exception as error:  # a counting bug must never fail the relay (it would publish again)
                log.warning("metrics_event_unreadable", topic=message.topic, error=type(error).__name__)
                continue
            for counter, labels in increments:
                counter.labels(*labels).inc() if labels else counter.inc()

    async def refresh(self, conn: Conn, consumers: Iterable[AIOKafkaConsumer]) -> None:
        """Read the gauges: the service's tables on ``conn``, the lag of ``consumers``' assigned partitions."""
        for spec, gauge in self._tables:
            rows = await conn.fetch(spec.query)
            if spec.labels:
                gauge.clear()  # a label value gone from the table must not stay at its last value
                for row in rows:
                    gauge.labels(*(code_label(value) for value in tuple(row)[:-1])).set(float(row[-1]))
            else:
                gauge.set(float(rows[0][0]) if rows else 0.0)
        self.consumer_lag.clear()
        for consumer in consumers:
            for partition in consumer.assignment():
                lag = await _lag(consumer, partition)
                if lag is not None:
                    self.consumer_lag.labels(code_label(partition.topic), str(partition.partition)).set(lag)


async def _lag(consumer: AIOKafkaConsumer, partition: TopicPartition) -> int | None:
    # The high watermark comes with each fetch response (no request here); ``None`` before the first fetch.
    highwater = consumer.highwater(partition)
    if highwater is None:
        return None
    position: int = await consumer.position(partition)
    return max(int(highwater) - position, 0)
