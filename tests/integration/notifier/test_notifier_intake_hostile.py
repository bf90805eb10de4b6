"""The notifier's consumer of ``exp.orientation.decided.v1`` (the real ``bootstrap.build`` wiring) on a broker
and a database of its own, fed hostile records: a body that is not an event under headers that are not
text, and a decision whose processing raises. Both are parked in ``dead_letter``; the decisions around
them become alerts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from unittest import mock

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from structlog.testing import capture_logs

from devtools import free_port
from devtools.sms_emulator import decided_event
from schemas import topics
from schemas.orientation import OrientationDecidedEvent
from services.notifier import bootstrap, intake
from services.notifier.dispatch import SCHEMA
from services.notifier.settings import NotifierSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def running(serve_in_process: Callable[..., Any]) -> AsyncIterator[Any]:
    """The notifier's runtime started in-process (no SMTP server: nothing here is sent)."""
    # Ports of its own: another notifier (a developer's, another test run's) may hold the default ones.
    settings = {
        "smtp_port": free_port(),
        "http_port": free_port(),
        "link_secrets": "notifier-hostile-tests-link-secret",
    }
    async with serve_in_process(bootstrap.build, NotifierSettings, SCHEMA, **settings) as service:
        yield service


async def _alerted(pool: asyncpg.Pool, refs: set[str]) -> bool:
    rows = await pool.fetch("SELECT DISTINCT procedure_short_ref FROM alert")
    return {row["procedure_short_ref"] for row in rows} >= refs


async def _parked(pool: asyncpg.Pool) -> list[asyncpg.Record] | None:
    rows = await pool.fetch('SELECT "offset", error, headers FROM dead_letter ORDER BY "offset"')
    return rows if len(rows) >= 2 else None


async def test_hostile_decisions_are_parked_and_the_others_alerted(running: Any, until: Callable[..., Any]) -> None:
    bootstrap_servers, pool = running.bootstrap_servers, running.pool
    before, poison, after = (decided_event(f"90-2026-00090{n}", ["CD90"]) for n in range(3))

    async def record_decisions(conn: Any, events: Sequence[OrientationDecidedEvent], topic: str) -> int:
        if any(event.event_id == poison.event_id for event in events):
            raise IndexError("a bug reached by one decision")
        return await intake.record_decisions(conn, events, topic)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        with mock.patch.object(bootstrap, "record_decisions", record_decisions), capture_logs() as logs:
            records = [
                (b"not json", [("x-bin", b"\x00\xff\x80"), ("x-null", None)]),
                (before.model_dump_json().encode(), [("x-bin", b"\x00\xff\x80")]),
                (poison.model_dump_json().encode(), []),
                (after.model_dump_json().encode(), []),
            ]
            futures = [
                await producer.send(topics.ORIENTATION_DECIDED, value, key=b"k", partition=0, headers=headers)
                for value, headers in records
            ]
            offsets = [metadata.offset for metadata in await asyncio.gather(*futures)]
            parked = await until(lambda: _parked(pool))
            await until(lambda: _alerted(pool, {"90-2026-000900", "90-2026-000902"}))
    finally:
        await producer.stop()

    assert [row["offset"] for row in parked] == [offsets[0], offsets[2]]
    assert parked[0]["headers"] == [{"name": "x-bin", "base64": "AP+A"}, {"name": "x-null", "value": None}]
    assert parked[1]["error"].startswith("processing failed: IndexError at test_notifier_intake_hostile.py:")
    assert not await pool.fetchval("SELECT count(*) FROM alert WHERE procedure_short_ref = '90-2026-000901'")
    assert [line["offset"] for line in logs if line["event"] == "record_set_aside"] == [offsets[2]]
