"""The Tansu path of ``kafka_broker()``: a real broker process, a real round trip, nothing left behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools import create_topics, kafka_broker

pytestmark = pytest.mark.integration

TOPIC = "devenv.roundtrip"


def processes_matching(*fragments: str) -> set[int]:
    """PIDs of live processes whose command line contains every fragment."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(fragment in cmdline for fragment in fragments):
            pids.add(int(entry.name))
    return pids


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_tansu_round_trip_and_cleanup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("PREVEX_NO_DOCKER", "1")

    with kafka_broker() as broker:
        assert broker.kind == "tansu"
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        assert host == "127.0.0.1"
        pids = processes_matching("tansu", f"tcp://127.0.0.1:{port}")
        assert len(pids) == 1
        (pid,) = pids

        await create_topics(broker.bootstrap_servers, [TOPIC], partitions=2)
        await create_topics(broker.bootstrap_servers, [TOPIC, TOPIC])  # already exists: no error

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
        await producer.start()
        try:
            assert await producer.partitions_for(TOPIC) == {0, 1}
            sent = await producer.send_and_wait(TOPIC, b"bonjour", key=b"dossier-42", headers=[("trace-id", b"abc123")])
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None, fetch_max_wait_ms=50)
        await consumer.start()
        try:
            partition = TopicPartition(TOPIC, sent.partition)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            record = await asyncio.wait_for(consumer.getone(), timeout=10)
        finally:
            await consumer.stop()

        assert record.key == b"dossier-42"
        assert record.value == b"bonjour"
        assert list(record.headers) == [("trace-id", b"abc123")]
        assert record.offset == sent.offset
        assert pid_exists(pid)

    assert not pid_exists(pid)
    assert processes_matching("tansu", f"tcp://127.0.0.1:{port}") == set()
