"""Orientation's consumer of ``exp.assignment.status.v1`` (produced by partners' systems), the real
``bootstrap.build`` wiring on a broker and a database of its own, fed hostile records: headers that are
not text, a body that is not an event, and an event whose processing raises. Each ends in ``dead_letter``
or applied; none is skipped, none stops the records after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from unittest import mock

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from structlog.testing import capture_logs

from schemas import topics
from schemas.assignment import AssignmentStatus, AssignmentStatusChange, AssignmentStatusEvent, StatusActor
from schemas.envelope import Envelope, new_envelope_fields
from schemas.procedure import ProcedureNotificationEvent
from services.orientation import repository as repo
from services.orientation.bootstrap import GROUP_ID, build
from services.orientation.lifecycle import StatusHandler
from services.orientation.referential_store import SCHEMA
from services.orientation.settings import OrientationSettings

if TYPE_CHECKING:
    from tests.integration.conftest import InProcess, ServeInProcess

pytestmark = pytest.mark.integration

BINARY = b"\x00\xff\x80"


@pytest.fixture
async def running(serve_in_process: ServeInProcess) -> AsyncIterator[InProcess]:
    """The orientation service's runtime started in-process (tests/integration/conftest.py)."""
    async with serve_in_process(build, OrientationSettings, SCHEMA, http_enabled=False) as service:
        yield service


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


def _json(event: Envelope) -> bytes:
    return event.model_dump_json().encode()


async def test_hostile_status_records_are_parked_and_the_following_ones_applied(
    running: InProcess, until: Callable[..., Any], make_event: Callable[..., ProcedureNotificationEvent]
) -> None:
    bootstrap, pool = running.bootstrap_servers, running.pool
    notice = make_event("s01-cj-commandement-payer")
    procedure = notice.payload.procedure_id
    await _publish(bootstrap, topics.PROCEDURE_NOTIFICATION, [(_json(notice), [])])
    assignments = await until(lambda: _assignments(pool, procedure))
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
        parked = await until(lambda: _parked(pool, count=2))
        await until(lambda: _accepted(pool, by_structure[third]))

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
    assert await until(lambda: _passed(running, offsets[-1]))


async def _assignments(pool: asyncpg.Pool, procedure_id: uuid.UUID) -> list[repo.AssignmentRow]:
    async with pool.acquire() as conn:
        return await repo.procedure_assignments(conn, procedure_id)


async def _accepted(pool: asyncpg.Pool, assignment_id: uuid.UUID) -> bool:
    return await _status(pool, assignment_id) == "ACCEPTEE"


async def _passed(service: InProcess, offset: int) -> bool:
    return await service.committed(GROUP_ID, topics.ASSIGNMENT_STATUS) > offset


async def _parked(pool: asyncpg.Pool, *, count: int) -> list[asyncpg.Record] | None:
    rows = await pool.fetch('SELECT "offset", error, value, headers FROM dead_letter ORDER BY "offset"')
    return rows if len(rows) >= count else None


async def _status(pool: asyncpg.Pool, assignment_id: uuid.UUID) -> str | None:
    status: str | None = await pool.fetchval("SELECT status FROM assignment WHERE assignment_id = $1", assignment_id)
    return status
