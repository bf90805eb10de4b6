"""Kafka wiring shared by the services: the FastStream broker and batch subscriptions.

Every subscription consumes in batches and acknowledges explicitly: the offsets of a batch are
committed only after the handler returned, and an exception seeks back so the batch is delivered
again (at-least-once; handlers are idempotent through the inbox or natural keys). A batch that fails for
a reason that is not transient is split to set its poison record aside (:mod:`services.platform.isolation`).

Record keys and headers are bytes from whoever produced them: nothing here decodes them strictly.
:func:`key_text` and :func:`header_entries` read them tolerantly for the handlers that need them.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage

from services.platform.isolation import PoisonHandler, handle_isolating
from services.platform.logging import get_logger
from services.platform.settings import ServiceSettings
from services.platform.tracing import record_spans

__all__ = [
    "BatchHandler",
    "HeaderEntry",
    "header_entries",
    "key_text",
    "make_broker",
    "subscribe_batch",
    "undecodable_headers",
]

HeaderEntry = dict[str, str | None]
"""One stored header: ``name`` and ``value`` (text or ``None``), or ``name`` and ``base64``."""

BatchHandler = Callable[[Sequence["ConsumerRecord[bytes, bytes]"]], Awaitable[None]]
"""Processes one batch of raw records; raising makes the whole batch come back."""


def make_broker(settings: ServiceSettings, *, client_id: str) -> KafkaBroker:
    """A FastStream Kafka broker whose producer waits for every in-sync replica (``acks="all"``)."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=5,
        logger=get_logger(f"faststream.{client_id}"),
    )


def subscribe_batch(
    broker: KafkaBroker,
    *topics: str,
    group_id: str,
    settings: ServiceSettings,
    handler: BatchHandler,
    on_poison: PoisonHandler,
) -> None:
    """Register ``handler`` for batches of records of ``topics`` in consumer group ``group_id``.

    One consumer reads every topic given, and a batch may mix them (``record.topic`` tells): a consumer,
    even idle, keeps fetches going (measured with Tansu: about 1.5 % of a core in the client and 2 % in the
    broker each), so topics that share a handler share a consumer.
    ``NACK_ON_ERROR``: FastStream commits after the handler returns and seeks back on an exception,
    which is the at-least-once contract; never ``ACK_FIRST`` (its default commits before processing).
    A failure that is not transient is isolated: the record that fails alone is handed to ``on_poison``
    after a bounded number of tries, and the rest of the batch is handled.
    When tracing is on, each record is processed under a span of its own, child of the one that produced
    it (``services.platform.tracing.record_spans``).
    """
    if not topics:
        raise ValueError("subscribe_batch needs at least one topic")

    async def consume(_: None, msg: KafkaMessage) -> None:
        records: Sequence[ConsumerRecord[bytes, bytes]] = _raw_records(msg.raw_message)
        with record_spans(records):
            await handle_isolating(records, handler, on_poison)

    consume.__name__ = "consume_" + "_".join(topic.replace(".", "_") for topic in topics)
    broker.subscriber(
        *topics,
        group_id=group_id,
        batch=True,
        max_records=settings.kafka_max_batch_records,
        batch_timeout_ms=settings.kafka_fetch_max_wait_ms,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        auto_offset_reset="earliest",
        # FastStream's nack rewinds every partition of the batch to its earliest record.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=_parse_without_headers,
        decoder=_no_body,
    )(consume)


async def _parse_without_headers(
    records: tuple[ConsumerRecord[bytes, bytes], ...],
    default: Callable[[tuple[ConsumerRecord[bytes, bytes], ...]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    # FastStream's batch parser decodes every header value as UTF-8. A value that is not (or is None)
    # raises there, before the handler, where NACK_ON_ERROR cannot rewind: the next batch's commit then
    # skipped the whole batch unseen. It is given only the batch's first and last records (what it reads
    # besides headers and bodies: positions for the message id), without their headers — copying every
    # record costs ~12 µs each, 3 % of ingest's time per notification — and the message then carries the
    # records as received, which the handler reads (headers tolerantly) and a nack rewinds.
    ends = (records[0], records[-1]) if len(records) > 1 else records
    message = await default(tuple(dataclasses.replace(record, headers=()) for record in ends))
    message.raw_message = records
    return message


async def _no_body(_: StreamMessage[Any], __: Any) -> None:
    # Handlers read the records themselves: FastStream's own decoder would build a message and try
    # JSON on every record body of the batch, work thrown away (measured: 7 % of ingest's handler time).
    return None


def _raw_records(raw: Any) -> Sequence[ConsumerRecord[bytes, bytes]]:
    # A batch message wraps a tuple of records; a single record arrives bare in some code paths.
    if isinstance(raw, ConsumerRecord):
        return (raw,)
    return tuple(raw)


def key_text(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The record key as text (invalid UTF-8 replaced by U+FFFD); ``None`` without a key."""
    return None if record.key is None else record.key.decode("utf-8", "replace")


def undecodable_headers(record: ConsumerRecord[bytes, bytes]) -> list[str]:
    """Names of the record's headers whose value is not text: ``None``, not UTF-8, or holding NUL (a NUL in
    a name is replaced by U+FFFD: names are stored as text)."""
    return [name.replace("\x00", "\ufffd") for name, value in record.headers if _header_text(value) is None]


def header_entries(record: ConsumerRecord[bytes, bytes]) -> list[HeaderEntry] | None:
    """The record's headers as JSON-ready entries for storage (a jsonb column), ``None`` when it has none.

    Each header is ``{"name", "value"}`` when its value is text, ``{"name", "base64"}`` when it is bytes
    that are not (kept exactly), ``{"name", "value": null}`` when it has no value.
    """
    if not record.headers:
        return None
    return [_header_entry(name, value) for name, value in record.headers]


def _header_entry(name: str, value: bytes | None) -> HeaderEntry:
    name = name.replace("\x00", "\ufffd")  # PostgreSQL jsonb refuses NUL, even escaped
    text = _header_text(value)
    if value is None or text is not None:
        return {"name": name, "value": text}
    return {"name": name, "base64": base64.b64encode(value).decode("ascii")}


def _header_text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # PostgreSQL text and jsonb refuse NUL: such a value is kept as bytes.
    return None if "\x00" in text else text
