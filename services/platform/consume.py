"""Decoding our own events from Kafka records, with undecodable records parked, not dropped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from schemas.envelope import Envelope
from services.platform.db import Conn
from services.platform.logging import get_logger

__all__ = ["decode_or_park"]

EventT = TypeVar("EventT", bound=Envelope)

log = get_logger(__name__)


async def decode_or_park(
    conn: Conn, records: Sequence[ConsumerRecord[bytes, bytes]], event_type: type[EventT]
) -> list[EventT]:
    """Decode every record as ``event_type``; park the ones that fail in ``dead_letter``.

    A producer bug must not block a partition forever, nor vanish: the record is kept with the
    validation error (field paths only, never input values) for ops to replay.
    """
    events = []
    for record in records:
        try:
            events.append(event_type.model_validate_json(record.value or b""))
        except ValidationError as error:
            summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in error.errors())[:2000]
            await conn.execute(
                'INSERT INTO dead_letter (topic, partition, "offset", error, value) VALUES ($1, $2, $3, $4, $5)'
                " ON CONFLICT DO NOTHING",
                record.topic,
                record.partition,
                record.offset,
                summary,
                record.value,
            )
            # Not log.exception: pydantic messages echo input values, which may be personal data.
            log.error("event_parked", topic=record.topic, partition=record.partition, offset=record.offset)  # noqa: TRY400
    return events
