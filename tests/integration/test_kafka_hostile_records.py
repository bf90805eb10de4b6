"""Batch subscriptions on the real broker with records whose key and headers are not text, and with a
record whose processing raises: nothing is skipped unseen, nothing stops the others."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import TypeAlias

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from structlog.testing import capture_logs

from devtools import BrokerEndpoint, create_topics
from services.platform.kafka import header_entries, key_text, make_broker, subscribe_batch, undecodable_headers
from services.platform.settings import ServiceSettings

pytestmark = pytest.mark.integration

# aiokafka ships no type information (pyproject's mypy overrides): the alias documents what the records hold.
Record: TypeAlias = ConsumerRecord[bytes, bytes]
Header = tuple[str, bytes | None]
BINARY = b"\x00\xff\x80"


async def _publish(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes, list[Header]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, partition=0, headers=headers)
    finally:
        await producer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    """The offset ``group`` committed on the topic's partition 0 (-1 when none)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        offset = await reader.committed(TopicPartition(topic, 0))
    finally:
        await reader.stop()
    return -1 if offset is None else offset


class _Consumer:
    """A subscription whose handler records what it handled, raising for the values in ``poison``."""

    def __init__(self, poison: frozenset[bytes] = frozenset()) -> None:
        self.poison = poison
        self.handled: dict[int, Record] = {}
        self.set_aside: list[tuple[int, str]] = []
        self.calls = 0
        self.changed = asyncio.Event()

    async def handle(self, records: Sequence[Record]) -> None:
        self.calls += 1
        if any(record.value in self.poison for record in records):
            raise ValueError("a bug reached by one record")
        self.handled.update((record.offset, record) for record in records)
        self.changed.set()

    async def on_poison(self, record: Record, error: BaseException) -> None:
        self.set_aside.append((record.offset, type(error).__name__))
        self.changed.set()

    async def run_until(self, broker: BrokerEndpoint, topic: str, group: str, expected: int) -> None:
        settings = ServiceSettings(  # a group joined in ~0.5 s on Tansu, as the service processes' (devtools.stack)
            kafka_bootstrap_servers=broker.bootstrap_servers,
            kafka_session_timeout_ms=1_000,
            kafka_heartbeat_interval_ms=100,
        )
        kafka = make_broker(settings, client_id=f"test-{group}")
        subscribe_batch(kafka, topic, group_id=group, settings=settings, handler=self.handle, on_poison=self.on_poison)
        await kafka.start()
        try:
            async with asyncio.timeout(60):
                while len(self.handled) + len(self.set_aside) < expected:
                    self.changed.clear()
                    await self.changed.wait()
        finally:
            # Stopping waits for the batch in hand, whose offsets are committed once its handler returned.
            await kafka.stop()


async def _topic(broker: BrokerEndpoint) -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    topic = f"test.hostile.{run}"
    await create_topics(broker.bootstrap_servers, [topic], partitions=1)
    return topic, f"test-hostile-{run}"


async def test_records_with_binary_or_null_headers_and_binary_keys_are_all_handled(broker: BrokerEndpoint) -> None:
    topic, group = await _topic(broker)
    hostile: list[tuple[bytes | None, bytes, list[Header]]] = [
        (b"key", f"bin-{n}".encode(), [("x-bin", BINARY), ("event_id", b"e")]) for n in range(5)
    ]
    hostile.append((b"key", b"null-header", [("x-null", None)]))
    hostile.append((b"\xff\xfe-siret", b"binary-key", []))
    valid: list[tuple[bytes | None, bytes, list[Header]]] = [(b"key", f"valid-{n}".encode(), []) for n in range(10)]
    await _publish(broker.bootstrap_servers, topic, hostile + valid)

    consumer = _Consumer()
    await consumer.run_until(broker, topic, group, expected=17)

    assert sorted(consumer.handled) == list(range(17))
    assert consumer.set_aside == []
    first = consumer.handled[0]
    assert list(first.headers) == [("x-bin", BINARY), ("event_id", b"e")]  # as received, for the handler to judge
    assert undecodable_headers(first) == ["x-bin"]
    assert header_entries(first) == [{"name": "x-bin", "base64": "AP+A"}, {"name": "event_id", "value": "e"}]
    null = consumer.handled[5]
    assert undecodable_headers(null) == ["x-null"]
    assert header_entries(null) == [{"name": "x-null", "value": None}]
    assert key_text(consumer.handled[6]) == "\ufffd\ufffd-siret"
    assert await _committed(broker.bootstrap_servers, group, topic) == 17


async def test_a_record_whose_processing_raises_is_set_aside_once_and_the_others_go_on(broker: BrokerEndpoint) -> None:
    topic, group = await _topic(broker)
    values = [f"record-{n}".encode() for n in range(12)]
    await _publish(broker.bootstrap_servers, topic, [(b"key", value, []) for value in values])

    consumer = _Consumer(poison=frozenset({b"record-6"}))
    with capture_logs() as logs:
        await consumer.run_until(broker, topic, group, expected=12)

    assert sorted(consumer.handled) == [n for n in range(12) if n != 6]
    assert consumer.set_aside == [(6, "ValueError")]
    set_aside = [line for line in logs if line["event"] == "record_set_aside"]
    assert len(set_aside) == 1  # logged once, not on every try
    assert set_aside[0]["offset"] == 6
    assert set_aside[0]["error"].startswith("ValueError at test_kafka_hostile_records.py:")
    assert await _committed(broker.bootstrap_servers, group, topic) == 12


async def test_a_transient_failure_rewinds_the_batch_instead_of_setting_a_record_aside(broker: BrokerEndpoint) -> None:
    topic, group = await _topic(broker)
    await _publish(broker.bootstrap_servers, topic, [(b"key", f"record-{n}".encode(), []) for n in range(4)])
    consumer = _Consumer()
    failures = iter([ConnectionResetError("database went away")])
    handle = consumer.handle

    async def flaky(records: Sequence[Record]) -> None:
        if (failure := next(failures, None)) is not None:
            raise failure
        await handle(records)

    consumer.handle = flaky  # type: ignore[method-assign]
    with capture_logs() as logs:
        await consumer.run_until(broker, topic, group, expected=4)

    assert sorted(consumer.handled) == [0, 1, 2, 3]
    assert consumer.set_aside == []
    assert not [line for line in logs if line["event"] in {"batch_failed_isolating", "record_set_aside"}]
