"""Decoding our own events from Kafka records, with undecodable and poison records parked, not dropped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import asyncpg
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from schemas.envelope import Envelope
from services.platform.db import Conn
from services.platform.isolation import PoisonHandler, failure_summary, is_transient
from services.platform.kafka import header_entries
from services.platform.logging import get_logger

__all__ = ["decode_or_park", "decode_topic", "or_parked", "park", "parking"]

EventT = TypeVar("EventT", bound=Envelope)

log = get_logger(__name__)


async def decode_or_park(
    conn: Conn, records: Sequence[ConsumerRecord[bytes, bytes]], event_type: type[EventT]
) -> list[EventT]:
    """Decode every record as ``event_type``; park the ones that fail in ``dead_letter``.

    A producer bug must not block a partition forever, nor vanish: the record is kept with the
    validation error (field paths only, never input values) for ops to replay. Records already parked
    (a poison record set aside, then its batch redelivered) are left out: they are not handled again
    until ops delete their ``dead_letter`` row.
    """
    parked = await _parked(conn, records)
    events = []
    for record in records:
        if (record.topic, record.partition, record.offset) in parked:
            continue
        try:
            events.append(event_type.model_validate_json(record.value or b""))
        except ValidationError as error:
            summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in error.errors())
            await park(conn, record, summary)
            # Not the summary: a field path may be a key of the input, which may be personal data.
            log.error("event_parked", topic=record.topic, partition=record.partition, offset=record.offset)  # noqa: TRY400
    return events


async def decode_topic(
    conn: Conn, records: Sequence[ConsumerRecord[bytes, bytes]], topic: str, event_type: type[EventT]
) -> list[EventT]:
    """:func:`decode_or_park` of the records of ``topic`` in a batch of several topics (one consumer reading
    them all); a topic absent from the batch costs no statement."""
    of_topic = [record for record in records if record.topic == topic]
    return await decode_or_park(conn, of_topic, event_type) if of_topic else []


async def _parked(conn: Conn, records: Sequence[ConsumerRecord[bytes, bytes]]) -> set[tuple[str, int, int]]:
    rows = await conn.fetch(
        'SELECT d.topic, d.partition, d."offset" FROM dead_letter d'
        ' JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS r(topic, partition, "offset")'
        ' ON d.topic = r.topic AND d.partition = r.partition AND d."offset" = r."offset"',
        [record.topic for record in records],
        [record.partition for record in records],
        [record.offset for record in records],
    )
    return {(row["topic"], row["partition"], row["offset"]) for row in rows}


async def park(conn: Conn, record: ConsumerRecord[bytes, bytes], error: str) -> None:
    """Keep ``record`` in ``dead_letter`` with ``error`` (no input values in it), its key and headers as
    received; a record already parked (a redelivery) is left as it is."""
    await conn.execute(
        'INSERT INTO dead_letter (topic, partition, "offset", error, value, key, headers)'
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        record.topic,
        record.partition,
        record.offset,
        error[:2000],
        record.value,
        record.key,
        header_entries(record),
    )


def parking(pool: Callable[[], asyncpg.Pool]) -> PoisonHandler:
    """The poison handler of a subscription to events: park the record in ``dead_letter``, in a
    transaction of its own, with where its processing failed."""

    async def park_poison(record: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
        async with pool().acquire() as conn, conn.transaction():
            await park(conn, record, f"processing failed: {failure_summary(error)}")

    return park_poison


def or_parked(set_aside: PoisonHandler, pool: Callable[[], asyncpg.Pool]) -> PoisonHandler:
    """``set_aside``, or, when it fails too for a reason that is not transient, the record parked in
    ``dead_letter``: a poison record is never retried forever because setting it aside raises as well."""
    park_poison = parking(pool)

    async def set_aside_or_park(record: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
        try:
            await set_aside(record, error)
        except Exception as aside_error:
            if is_transient(aside_error):
                raise
            log.error("set_aside_failed", topic=record.topic, offset=record.offset, error=failure_summary(aside_error))  # noqa: TRY400
            await park_poison(record, aside_error)

    return set_aside_or_park
