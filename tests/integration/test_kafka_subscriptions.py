"""Batch subscriptions (``services.platform.kafka``) on the real broker: several topics, one consumer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from devtools import BrokerEndpoint, create_topics
from services.platform.kafka import make_broker, subscribe_batch
from services.platform.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def _publish(bootstrap: str, records: Sequence[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value in records:
            await producer.send_and_wait(topic, value, key=value)
    finally:
        await producer.stop()


async def _never(record: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
    raise AssertionError(f"no record is set aside here: {record.offset} {error!r}")


async def test_one_consumer_reads_every_topic_and_a_failed_batch_comes_again_on_each(broker: BrokerEndpoint) -> None:
    run = uuid.uuid4().hex[:8]
    first, second = f"test.subscribe.{run}.a", f"test.subscribe.{run}.b"
    await create_topics(broker.bootstrap_servers, [first, second])
    sent = [(topic, f"{topic}-{n}".encode()) for topic in (first, second) for n in range(6)]
    await _publish(broker.bootstrap_servers, sent)

    failed_once: set[tuple[str, bytes]] = set()
    delivered: list[tuple[str, bytes]] = []
    everything = asyncio.Event()

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        batch = {(record.topic, record.value or b"") for record in records}
        # Every record fails the first time it comes: whichever partitions and topics a failed batch spans,
        # each of its records must come again, or the wait below never ends.
        if not batch <= failed_once:
            failed_once.update(batch)
            raise ConnectionResetError("first delivery of these records fails")  # transient: the batch rewinds
        delivered.extend(batch)
        if set(delivered) >= set(sent):
            everything.set()

    settings = ServiceSettings(  # a group joined in ~0.5 s on Tansu, as the service processes' (devtools.stack)
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_session_timeout_ms=1_000,
        kafka_heartbeat_interval_ms=100,
    )
    kafka = make_broker(settings, client_id=f"test-{run}")
    subscribe_batch(
        kafka, first, second, group_id=f"test-subscribe-{run}", settings=settings, handler=handle, on_poison=_never
    )
    await kafka.start()
    try:
        async with asyncio.timeout(60):
            await everything.wait()
    finally:
        await kafka.stop()
    assert set(delivered) == set(sent) == failed_once
    assert len(kafka.subscribers) == 1  # one consumer for both topics


def test_a_subscription_names_at_least_one_topic() -> None:
    kafka = make_broker(ServiceSettings(), client_id="test")
    with pytest.raises(ValueError, match="at least one topic"):
        subscribe_batch(
            kafka, group_id="test", settings=ServiceSettings(), handler=lambda _: asyncio.sleep(0), on_poison=_never
        )
