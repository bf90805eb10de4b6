"""Transactional outbox: write events with the business rows, publish them after commit.

``enqueue`` runs inside the caller's transaction and raises a NOTIFY that PostgreSQL delivers only at
commit; the ``OutboxRelay`` wakes on it (or on a poll timer, should a notification be lost while
its listening connection was down), publishes a batch, waits for the broker's acknowledgements and
only then deletes the rows. A crash between publish and delete re-publishes the batch: at-least-once,
and consumers dedupe on ``event_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaProducer

from schemas.envelope import HEADER_TRACEPARENT, HEADER_TRACESTATE, Envelope, event_headers
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.platform.tracing import outgoing_context

__all__ = [
    "InMemoryPublisher",
    "KafkaOutboxPublisher",
    "OutboxMessage",
    "OutboxPublisher",
    "OutboxRelay",
    "enqueue",
    "notify_channel",
]

log = get_logger(__name__)


@dataclass(frozen=True)
class OutboxMessage:
    """One record to publish: topic, key, serialised value, string headers and the W3C trace context of
    the span that wrote it (``None`` when not tracing)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def of(cls, topic: str, key: str, event: Envelope) -> OutboxMessage:
        """The record for ``event`` on ``topic``, keyed by ``key``, with the envelope's headers and the
        trace context of the span handling what caused it (``services.platform.tracing``)."""
        traceparent, tracestate = outgoing_context(event.causation_id)
        return cls(topic, key.encode(), event.model_dump_json().encode(), event_headers(event), traceparent, tracestate)

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """The record's Kafka headers: the envelope's, then the trace context when there is one."""
        trace_context = ((HEADER_TRACEPARENT, self.traceparent), (HEADER_TRACESTATE, self.tracestate))
        return [(k, v.encode()) for k, v in (*self.headers.items(), *trace_context) if v is not None]


class OutboxPublisher(Protocol):
    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        """Publish every message; return only once the broker acknowledged all of them."""


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of ``schema``'s outbox."""
    return f"{schema}_outbox"


async def enqueue(conn: Conn, schema: str, messages: Sequence[OutboxMessage]) -> None:
    """Insert ``messages`` into ``schema``'s outbox in the caller's transaction and wake the relay."""
    if not messages:
        return
    # One statement for the whole batch (executemany would run the INSERT once per message); ids are
    # drawn in the messages' order, which the relay keeps.
    await conn.execute(
        "WITH rows AS (INSERT INTO outbox (topic, key, value, headers, traceparent, tracestate)"
        " SELECT m.topic, m.key, m.value, m.headers::jsonb, m.traceparent, m.tracestate"
        " FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $6::text[], $7::text[]) WITH ORDINALITY"
        " AS m(topic, key, value, headers, traceparent, tracestate, position) ORDER BY m.position)"
        " SELECT pg_notify($5, '')",
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        [json.dumps(m.headers) for m in messages],
        notify_channel(schema),
        [m.traceparent for m in messages],
        [m.tracestate for m in messages],
    )


class KafkaOutboxPublisher:
    """Publishes through one aiokafka producer with ``acks="all"``, pipelining the whole batch."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        # send() only enqueues into the producer's accumulator; awaiting the futures afterwards
        # lets a whole batch travel in a few requests instead of one round trip per record.
        futures = [await self._producer.send(m.topic, m.value, key=m.key, headers=m.kafka_headers()) for m in messages]
        await asyncio.gather(*futures)


class InMemoryPublisher:
    """Keeps published messages in a list; for unit tests of code that writes to the outbox."""

    def __init__(self) -> None:
        self.published: list[OutboxMessage] = []
        self.fail_next: BaseException | None = None

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.published.extend(messages)


class OutboxRelay:
    """Moves committed outbox rows of one schema to the broker, in id order, batch by batch.

    While it runs it holds one connection of the pool, which both listens for the NOTIFY of ``enqueue``
    and carries the relay's transactions: a batch costs three round trips (``BEGIN``, one ``DELETE …
    RETURNING``, ``COMMIT``) and no pool checkout. That connection plans the DELETE at every batch
    (``plan_cache_mode``), and gives both settings back when the relay stops.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        publisher: OutboxPublisher,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        retry_delay_s: float = 1.0,
        on_relayed: Callable[[Sequence[OutboxMessage]], None] | None = None,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._publisher = publisher
        self._on_relayed = on_relayed
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retry_delay_s = retry_delay_s
        self._wakeup = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows on a connection of the pool; return how many."""
        async with self._pool.acquire() as conn:
            return await self._publish_batch(conn)

    async def drain(self) -> int:
        """Publish until a batch comes back short (nothing was pending when it was read); return the total."""
        async with self._pool.acquire() as conn:
            return await self._drain(conn)

    async def _publish_batch(self, conn: Conn) -> int:
        # The rows are deleted and returned in one statement, in a transaction that commits only once
        # the broker acknowledged them: a failure rolls the delete back, so they stay pending. Their locks
        # (the subquery's FOR UPDATE) make a second relay on the same schema wait for this one and then
        # skip what it deleted, so nothing is published twice and order by id is kept.
        # The ids are read first, into an array (ARRAY(…) runs once, before the delete), so that the delete
        # reaches its rows through the primary key whatever PostgreSQL believes of the table: with
        # `id IN (subquery)`, the plan it caches may join against a scan of the whole heap, dead tuples
        # included, when its statistics are stale or absent (a queue's always are).
        async with conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE))"
                " RETURNING id, topic, key, value, headers, traceparent, tracestate",
                self._batch_size,
            )
            if not rows:
                return 0
            messages = [
                OutboxMessage(r["topic"], r["key"], r["value"], r["headers"], r["traceparent"], r["tracestate"])
                for r in sorted(rows, key=lambda row: row["id"])  # RETURNING keeps no order
            ]
            await self._publisher.publish(messages)
        # Told once the DELETE committed, not on the broker's ack: whoever counts the relayed events (the
        # services' metrics) and reads the outbox in the same moment must never see an event both pending
        # and relayed. A commit that fails after the ack leaves the rows to be published again: told then.
        if self._on_relayed is not None:
            self._on_relayed(messages)
        return len(rows)

    async def _drain(self, conn: Conn) -> int:
        total = 0
        # A short batch ends the drain: a row committed after it was read comes with its own NOTIFY,
        # which wakes the relay again. Reading once more to find nothing would cost a transaction per wake.
        while (count := await self._publish_batch(conn)) == self._batch_size:
            total += count
        return total + count

    async def run(self) -> None:
        """Relay forever: drain, then sleep until NOTIFY or the poll interval. Cancel to stop.

        A failure (the broker or the database away) gives the connection back, waits ``retry_delay_s`` and
        starts again on a fresh one: pending rows stay in the table until published.
        """
        channel = notify_channel(self._schema)
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await conn.add_listener(channel, self._on_notify)
                    try:
                        # A plan per batch, from the table as it is now. The plan PostgreSQL would keep is
                        # made while the outbox is empty, soon after start, and believes it a few pages: a
                        # sequential scan, kept while the heap fills with every relayed row's dead tuple until
                        # vacuum (measured at 50 acts/s: 3.5 ms a batch, 0.11 core of PostgreSQL; planning
                        # the DELETE costs a fraction of a millisecond).
                        await conn.execute("SET plan_cache_mode = force_custom_plan")
                        await self._relay(conn)
                    finally:
                        try:
                            await conn.execute("RESET plan_cache_mode")
                            await conn.remove_listener(channel, self._on_notify)
                        except Exception:
                            # Perhaps still listening or planning its own way: the pool resets nothing
                            # (services.platform.db), so the connection must not go back to it.
                            conn.terminate()
            except Exception as error:  # aiokafka's errors share no base with asyncpg's nor OSError
                log.warning("outbox_publish_failed", schema=self._schema, error=type(error).__name__)
                await asyncio.sleep(self._retry_delay_s)

    async def _relay(self, conn: Conn) -> None:
        while True:
            # Cleared before reading: a NOTIFY of a commit the drain does not see sets it again (PostgreSQL
            # delivers it once the relay's own transaction ended).
            self._wakeup.clear()
            if published := await self._drain(conn):
                log.debug("outbox_published", schema=self._schema, count=published)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()
