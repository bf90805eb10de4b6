"""The running ingest process fed records whose headers are not text (issue: five acts with a header
``x-bin: 00 ff 80`` then ten plain acts lost all fifteen): every one is stored and accepted, and the consumer
group never commits past a record that is not stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools import BrokerEndpoint
from schemas import topics
from services.ingest.bootstrap import GROUP_ID

if TYPE_CHECKING:
    from tests.e2e.ingest.conftest import IngestService

pytestmark = pytest.mark.e2e

CJ = b"12345678900011"
WAIT_S = 90.0
"""Upper bound of every wait: a guard against hanging, not a performance assertion."""


async def _stored(pool: asyncpg.Pool, offsets: list[int]) -> dict[int, str]:
    rows = await pool.fetch(
        "SELECT kafka_offset, outcome FROM raw_inbound"
        " WHERE kafka_topic = $1 AND kafka_partition = 0 AND kafka_offset = ANY($2::bigint[])",
        topics.RAW_CJ,
        offsets,
    )
    return {row["kafka_offset"]: row["outcome"] for row in rows}


async def _committed(bootstrap: str) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP_ID, enable_auto_commit=False)
    await reader.start()
    try:
        return await reader.committed(TopicPartition(topics.RAW_CJ, 0)) or 0
    finally:
        await reader.stop()


async def test_acts_with_binary_and_null_headers_are_all_stored_and_accepted(
    ingest_service: IngestService, ingest_db: asyncpg.Pool, ingest_broker: BrokerEndpoint, example: Callable[..., bytes]
) -> None:
    run = uuid.uuid4().hex[:6]

    def act(n: int) -> bytes:
        return example(
            "s01-cj-commandement-payer",
            external_ref=f"HDR-{run}-{n}",
            tenants=[{"last_name": f"Entete{n}", "first_name": "T"}],
            dwelling__address={"line1": f"{n} rue des Octets", "postal_code": "90000", "commune_insee": "90010"},
        )

    binary: list[tuple[str, bytes | None]] = [("x-bin", b"\x00\xff\x80")]
    headers = [binary] * 5 + [[]] * 10 + [[("x-null", None)]]
    producer = AIOKafkaProducer(bootstrap_servers=ingest_broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topics.RAW_CJ, act(n), key=CJ, partition=0, headers=header)
            for n, header in enumerate(headers)
        ]
        offsets = [metadata.offset for metadata in await asyncio.gather(*futures)]
    finally:
        await producer.stop()

    async with asyncio.timeout(WAIT_S):
        stored = await _stored(ingest_db, offsets)
        while len(stored) < len(offsets) or await _committed(ingest_broker.bootstrap_servers) <= offsets[-1]:
            await asyncio.sleep(0.05)
            stored = await _stored(ingest_db, offsets)

    assert [stored[offset] for offset in offsets] == ["ACCEPTED"] * 16
    committed = await _committed(ingest_broker.bootstrap_servers)
    below = await ingest_db.fetchval(
        "SELECT count(*) FROM raw_inbound WHERE kafka_topic = $1 AND kafka_partition = 0 AND kafka_offset < $2",
        topics.RAW_CJ,
        committed,
    )
    assert below == committed  # every position the group committed past is stored
    assert ingest_service.processes.running("ingest")
