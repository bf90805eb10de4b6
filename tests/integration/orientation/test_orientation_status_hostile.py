"""Orientation's consumer of ``exp.assignment.status.v1`` (produced by partners' systems), the real
``bootstrap.build`` wiring on a broker and a database of its own, fed hostile records: headers that are
not text, a body that is not an event, and an event whose processing raises. Each ends in ``dead_letter``
or applied; none is skipped, none stops the records after it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from structlog.testing import capture_logs

from schemas import topics
from schemas.assignment import AssignmentStatus, AssignmentStatusChange, AssignmentStatusEvent, StatusActor
from schemas.envelope import Envelope, new_envelope_fields
from schemas.procedure import ProcedureNotificationEvent
from services.devenv import PostgresEndpoint, create_topics, kafka_broker, temporary_database
from services.orientation import repository as repo
from services.orientation.bootstrap import STATUS_GROUP_ID, build
from services.orientation.lifecycle import StatusHandler
from services.orientation.referential_store import SCHEMA
from services.orientation.settings import OrientationSettings
from services.platform.db import connect_pool

pytestmark = pytest.mark.integration

BINARY = b"\x00\xff\x80"
WAIT_S = 90.0
"""Upper bound of every wait: a guard against hanging, not a performance assertion."""


@contextmanager
def _without_env(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


async def _until(probe: Callable[[], Any]) -> Any:
    """``probe()``'s first truthy answer (the database has no feed: polled)."""
    async with asyncio.timeout(WAIT_S):
        answer = await probe()
        while not answer:
            await asyncio.sleep(0.05)
            answer = await probe()
    return answer


@pytest.fixture
async def running(pg_server: PostgresEndpoint) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """The orientation service's runtime started in-process; its broker's address and a pool on its schema."""
    with _without_env("KAFKA_BOOTSTRAP_SERVERS"), kafka_broker() as broker:
        await create_topics(broker.bootstrap_servers, topics.ALL_TOPICS)
        async with temporary_database(pg_server, "prevex_orientation_hostile") as url:
            settings = OrientationSettings(
                kafka_bootstrap_servers=broker.bootstrap_servers,
                database_url=url,
                http_enabled=False,
                kafka_session_timeout_ms=6_000,
            )
            runtime = build(settings)
            await runtime.start()
            await runtime.broker.start()
            pool = await connect_pool(url, schema=SCHEMA, max_size=2)
            try:
                yield broker.bootstrap_servers, pool
            finally:
                await pool.close()
                await runtime.broker.stop()
                await runtime.stop()


async def _publish(
    bootstrap: str, topic: str, records: list[tuple[bytes, list[tuple[str, bytes | None]]]]
) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=b"k", partition=0, headers=headers) for value, headers in records
        ]
        return [metadata.offset for metadata in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


async def _committed(bootstrap: str) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=STATUS_GROUP_ID, enable_auto_commit=False)
    await reader.start()
    try:
        return await reader.committed(TopicPartition(topics.ASSIGNMENT_STATUS, 0)) or 0
    finally:
        await reader.stop()


def _json(event: Envelope) -> bytes:
    return event.model_dump_json().encode()


async def test_hostile_status_records_are_parked_and_the_following_ones_applied(
    running: tuple[str, asyncpg.Pool], make_event: Callable[..., ProcedureNotificationEvent]
) -> None:
    bootstrap, pool = running
    notice = make_event("s01-cj-commandement-payer")
    procedure = notice.payload.procedure_id
    await _publish(bootstrap, topics.PROCEDURE_NOTIFICATION, [(_json(notice), [])])
    assignments = await _until(lambda: repo.procedure_assignments(pool, procedure))
    by_structure = {row.structure_id: row.assignment_id for row in assignments}
    first, second, third = sorted(by_structure)[:3]

    def accepted(structure: str) -> AssignmentStatusEvent:
        payload = AssignmentStatusChange(
            procedure_id=procedure,
            structure_id=structure,
            status=AssignmentStatus.ACCEPTEE,
            by=StatusActor.PARTNER,
            assignment_id=by_structure[structure],
        )
        return AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=payload)

    poison = accepted(second)
    real_handle = StatusHandler.handle

    async def handle(self: StatusHandler, conn: Any, event: AssignmentStatusEvent) -> None:
        if event.event_id == poison.event_id:
            raise LookupError("a bug reached by one status")
        await real_handle(self, conn, event)

    hostile = [("x-bin", BINARY), ("x-null", None)]
    with mock.patch.object(StatusHandler, "handle", handle), capture_logs() as logs:
        offsets = await _publish(
            bootstrap,
            topics.ASSIGNMENT_STATUS,
            [
                (b"\xff\xfe not an event", hostile),
                (_json(accepted(first)), hostile),
                (_json(poison), []),
                (_json(accepted(third)), []),
            ],
        )
        parked = await _until(lambda: _parked(pool, count=2))
        await _until(lambda: _accepted(pool, by_structure[third]))

    assert [row["offset"] for row in parked] == [offsets[0], offsets[2]]
    undecodable, failed = parked
    assert undecodable["error"] == ": json_invalid"  # field paths and error types only, no input values
    assert bytes(undecodable["value"]) == b"\xff\xfe not an event"
    assert undecodable["headers"] == [{"name": "x-bin", "base64": "AP+A"}, {"name": "x-null", "value": None}]
    assert failed["error"].startswith("processing failed: LookupError at test_orientation_status_hostile.py:")
    assert await _status(pool, by_structure[first]) == "ACCEPTEE"
    assert await _status(pool, by_structure[second]) == "OUVERTE"
    assert await _status(pool, by_structure[third]) == "ACCEPTEE"
    assert [line["offset"] for line in logs if line["event"] == "record_set_aside"] == [offsets[2]]
    assert await _until(lambda: _passed(bootstrap, offsets[-1]))


async def _accepted(pool: asyncpg.Pool, assignment_id: uuid.UUID) -> bool:
    return await _status(pool, assignment_id) == "ACCEPTEE"


async def _passed(bootstrap: str, offset: int) -> bool:
    return await _committed(bootstrap) > offset


async def _parked(pool: asyncpg.Pool, *, count: int) -> list[asyncpg.Record] | None:
    rows = await pool.fetch('SELECT "offset", error, value, headers FROM dead_letter ORDER BY "offset"')
    return rows if len(rows) >= count else None


async def _status(pool: asyncpg.Pool, assignment_id: uuid.UUID) -> str | None:
    status: str | None = await pool.fetchval("SELECT status FROM assignment WHERE assignment_id = $1", assignment_id)
    return status
