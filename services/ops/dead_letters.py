"""Dead letters of every service: records of our topics a consumer could not decode, parked in its schema's
``dead_letter`` table with their key and headers (``services.platform.consume``), and their replay.

A replay, once the cause is fixed, publishes the stored record again — same topic, key, headers (so the
same correlation id and event id) and value — and deletes the row in the same transaction: if the broker
does not acknowledge, the row stays. The service's consumer then reads it like any record; its inbox makes
a second replay of the same event harmless.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from schemas.envelope import HEADER_CORRELATION_ID, HEADER_TRACEPARENT, HEADER_TRACESTATE
from services.ops.readers import Schemas
from services.platform.kafka import HeaderEntry
from services.platform.logging import get_logger
from services.platform.tracing import ATTR_CORRELATION_ID, tracer_provider

__all__ = [
    "DeadLetterRef",
    "Publisher",
    "kafka_headers",
    "list_dead_letters",
    "replay",
    "show_dead_letter",
    "traced_replay",
]

log = get_logger(__name__)

_COLUMNS = 'id, topic, partition, "offset", error, received_at, length(value) AS value_bytes'


class Publisher(Protocol):
    """Publishes one record and returns once the broker acknowledged it."""

    async def send_and_wait(
        self, topic: str, value: bytes | None, *, key: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> Any: ...


@dataclass(frozen=True)
class DeadLetterRef:
    """``<service>:<id>``, how the CLI names one dead letter."""

    service: str
    row_id: int

    @classmethod
    def parse(cls, text: str) -> DeadLetterRef:
        """``orientation:12`` → the reference; :class:`ValueError` naming the expected form otherwise."""
        service, _, number = text.partition(":")
        if not service or not number.isdigit():
            raise ValueError(f"{text!r} is not a dead letter reference: expected SERVICE:ID, e.g. orientation:12")
        return cls(service, int(number))

    def __str__(self) -> str:
        return f"{self.service}:{self.row_id}"


def kafka_headers(entries: Sequence[HeaderEntry] | None) -> list[tuple[str, bytes]]:
    """The Kafka headers stored as :func:`services.platform.kafka.header_entries` wrote them: text as
    UTF-8, ``base64`` entries as their bytes, a header without value as empty bytes (aiokafka sends no null)."""
    headers: list[tuple[str, bytes]] = []
    for entry in entries or ():
        if (encoded := entry.get("base64")) is not None:
            headers.append((str(entry["name"]), base64.b64decode(encoded)))
        else:
            headers.append((str(entry["name"]), (entry.get("value") or "").encode("utf-8")))
    return headers


_TRACE_HEADERS = (HEADER_TRACEPARENT, HEADER_TRACESTATE)


@contextlib.contextmanager
def traced_replay(
    headers: list[tuple[str, bytes]], *, topic: str, ref: DeadLetterRef, correlation_id: str | None
) -> Iterator[list[tuple[str, bytes]]]:
    """The headers to replay a record with, inside the replay's span: unchanged when tracing is off; else
    the stored trace context replaced by the replay span's, the span being a child of the stored one (or a
    new trace's root without it). The span ends with the block, failed if it raised."""
    provider = tracer_provider()
    if provider is None:
        yield headers
        return
    propagator = TraceContextTextMapPropagator()
    stored = {name: value.decode("utf-8", "replace") for name, value in headers if name in _TRACE_HEADERS}
    attributes = {"messaging.system": "kafka", "messaging.destination.name": topic, "prevex.dead_letter": str(ref)}
    if correlation_id is not None:
        attributes[ATTR_CORRELATION_ID] = correlation_id
    # Not the exception's message: it may quote the record.
    with provider.get_tracer("prevex").start_as_current_span(
        f"{topic} replay",
        context=propagator.extract(stored),
        kind=SpanKind.PRODUCER,
        attributes=attributes,
        record_exception=False,
    ):
        carrier: dict[str, str] = {}
        propagator.inject(carrier)
        kept = [(name, value) for name, value in headers if name not in _TRACE_HEADERS]
        yield kept + [(name, value.encode("utf-8")) for name, value in carrier.items()]


def _correlation(entries: Sequence[HeaderEntry] | None) -> str | None:
    return next((e.get("value") for e in entries or () if e.get("name") == HEADER_CORRELATION_ID), None)


async def _has_table(conn: asyncpg.Connection[asyncpg.Record]) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('dead_letter') IS NOT NULL"))


async def list_dead_letters(schemas: Schemas, *, topic: str | None, limit: int) -> list[dict[str, Any]]:
    """Dead letters of every service, oldest first, ``limit`` per service: ids, topic, position, error,
    size; never the value (it may hold personal data)."""
    found: list[dict[str, Any]] = []
    for service, conn in schemas.items():
        if not await _has_table(conn):
            continue
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM dead_letter WHERE $1::text IS NULL OR topic = $1 ORDER BY id LIMIT $2",
            topic,
            limit,
        )
        found.extend({"ref": str(DeadLetterRef(service, r["id"])), "service": service, **dict(r)} for r in rows)
    return found


async def show_dead_letter(schemas: Schemas, ref: DeadLetterRef) -> dict[str, Any] | None:
    """One dead letter with its key, headers and correlation id (the value's size, not the value)."""
    conn = schemas.get(ref.service)
    if conn is None or not await _has_table(conn):
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS}, key, headers FROM dead_letter WHERE id = $1", ref.row_id)
    if row is None:
        return None
    shown = dict(row)
    shown["key"] = None if row["key"] is None else row["key"].decode("utf-8", "replace")
    shown["correlation_id"] = _correlation(row["headers"])
    return {"ref": str(ref), "service": ref.service, **shown}


async def replay(
    conn: asyncpg.Connection[asyncpg.Record], ref: DeadLetterRef, publisher: Publisher
) -> dict[str, Any] | None:
    """Publish the dead letter ``ref`` again as it was received, then delete it; ``None`` when there is no
    such row. ``conn`` is a writable connection to the service's schema. The row is locked while it is
    published, so two replays of it do not both publish."""
    async with conn.transaction():
        row = await conn.fetchrow(
            'SELECT id, topic, partition, "offset", key, headers, value FROM dead_letter WHERE id = $1 FOR UPDATE',
            ref.row_id,
        )
        if row is None:
            return None
        correlation_id = _correlation(row["headers"])
        stored = kafka_headers(row["headers"])
        with traced_replay(stored, topic=row["topic"], ref=ref, correlation_id=correlation_id) as headers:
            await publisher.send_and_wait(row["topic"], row["value"], key=row["key"], headers=headers)
        await conn.execute("DELETE FROM dead_letter WHERE id = $1", ref.row_id)
    replayed: Mapping[str, Any] = {
        "ref": str(ref),
        "topic": row["topic"],
        "parked_from": f"{row['partition']}:{row['offset']}",
        "correlation_id": correlation_id,
    }
    log.info("dead_letter_replayed", **replayed)
    return dict(replayed)
