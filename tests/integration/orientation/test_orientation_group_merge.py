"""Orientation reads notices and assignment statuses in one consumer group, ``prevex-orientation``; the
statuses were read in ``prevex-orientation-status`` before. The real ``bootstrap.build`` wiring, on a broker
left as the previous version left it: the status offsets it committed are carried over, so what it had
handled is not read again and what arrived during the upgrade is not skipped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from structlog.testing import capture_logs

from schemas import topics
from schemas.assignment import AssignmentStatus, StatusActor
from services.orientation.bootstrap import GROUP_ID, build
from services.orientation.group_merge import LEGACY_STATUS_GROUP_ID, carry_over_offsets
from services.orientation.referential_store import SCHEMA
from services.orientation.settings import OrientationSettings
from tests.integration.orientation.conftest import status_event

if TYPE_CHECKING:
    from tests.integration.conftest import InProcess, ServeInProcess

pytestmark = pytest.mark.integration

STATUS_0 = TopicPartition(topics.ASSIGNMENT_STATUS, 0)


def _unknown_assignment_closed() -> tuple[uuid.UUID, bytes]:
    """A status change orientation refuses (no such assignment) and keeps in ``assignment_status_refused``:
    whether it was read shows in that table."""
    event = status_event(
        uuid.uuid4(), "S01", AssignmentStatus.CLOTUREE, StatusActor.PARTNER, assignment_id=uuid.uuid4()
    )
    return event.event_id, event.model_dump_json().encode()


async def _publish(bootstrap: str, value: bytes) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topics.ASSIGNMENT_STATUS, value, key=b"k", partition=0)
        offset: int = sent.offset
        return offset
    finally:
        await producer.stop()


@asynccontextmanager
async def _consumer(bootstrap: str, group: str, *subscribed: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        *subscribed,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=1_000,
        heartbeat_interval_ms=100,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def test_the_status_offsets_of_the_former_group_are_carried_over(
    serve_in_process: ServeInProcess, until: Callable[..., Any]
) -> None:
    handled_id, handled = _unknown_assignment_closed()
    arrived_id, arrived = _unknown_assignment_closed()
    offsets: list[int] = []

    async def previous_version(bootstrap: str) -> None:
        offsets.append(await _publish(bootstrap, handled))
        async with _consumer(bootstrap, LEGACY_STATUS_GROUP_ID) as status_reader:
            status_reader.assign([STATUS_0])
            await status_reader.commit({STATUS_0: offsets[0] + 1})
        # Its notices consumer was a member of the merged group: Tansu then refuses a commit from outside it.
        async with _consumer(bootstrap, GROUP_ID, topics.PROCEDURE_NOTIFICATION) as notices_reader:
            await until(lambda: _joined(notices_reader))
        offsets.append(await _publish(bootstrap, arrived))  # during the upgrade

    with capture_logs() as logs:
        async with serve_in_process(
            build, OrientationSettings, SCHEMA, http_enabled=False, prepare=previous_version
        ) as service:
            await until(lambda: _refused(service.pool, arrived_id))
            assert not await _refused(service.pool, handled_id)
            assert await until(lambda: _passed(service, offsets[1]))
            again = await carry_over_offsets(
                service.settings, topics.ASSIGNMENT_STATUS, from_group=LEGACY_STATUS_GROUP_ID, to_group=GROUP_ID
            )

    assert [line["count"] for line in logs if line["event"] == "offsets_carried_over"] == [1]
    assert again == 0  # a restart carries nothing over again


async def test_a_fresh_install_carries_nothing_over_and_reads_statuses(
    serve_in_process: ServeInProcess, until: Callable[..., Any]
) -> None:
    event_id, value = _unknown_assignment_closed()
    with capture_logs() as logs:
        async with serve_in_process(build, OrientationSettings, SCHEMA, http_enabled=False) as service:
            offset = await _publish(service.bootstrap_servers, value)
            await until(lambda: _refused(service.pool, event_id))
            assert await until(lambda: _passed(service, offset))

    assert not [line for line in logs if line["event"] == "offsets_carried_over"]


async def _joined(consumer: AIOKafkaConsumer) -> bool:
    await consumer.getmany(timeout_ms=100)
    return bool(consumer.assignment())


async def _refused(pool: asyncpg.Pool, event_id: uuid.UUID) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM assignment_status_refused WHERE event_id = $1", event_id))


async def _passed(service: InProcess, offset: int) -> bool:
    return await service.committed(GROUP_ID, topics.ASSIGNMENT_STATUS) > offset
