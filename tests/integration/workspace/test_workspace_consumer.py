"""The running workspace on a real broker: its consumer builds the read model from what orientation publishes,
a redelivered event changes nothing, a record that is no event is parked, and an acceptance made on its pages
travels through its outbox to the topic, comes back folded, and is applied by orientation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import PostgresEndpoint, create_topics, free_port, kafka_broker, temporary_database
from schemas import topics
from schemas.assignment import AssignmentStatusEvent
from services.platform.runtime import Runtime
from services.workspace.bootstrap import build
from services.workspace.settings import WorkspaceSettings

if TYPE_CHECKING:
    from tests.integration.workspace.conftest import World

pytestmark = pytest.mark.integration

REF = "90-2026-000001"


class Running:
    """The workspace process's runtime in this event loop, its database, broker and pages."""

    def __init__(self, runtime: Runtime, bootstrap: str, database_url: str, url: str) -> None:
        self.runtime, self.bootstrap, self.database_url, self.url = runtime, bootstrap, database_url, url

    async def publish(self, *records: tuple[str, bytes]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            for topic, value in records:
                await producer.send_and_wait(topic, value, key=b"procedure")
        finally:
            await producer.stop()

    async def until(self, query: str, check: Callable[[Any], bool], *args: Any, timeout_s: float = 60) -> Any:
        """Poll ``query`` until ``check`` holds for its value: a state to wait for, not a duration."""
        conn = await asyncpg.connect(self.database_url, server_settings={"search_path": "workspace"})
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    value = await conn.fetchval(query, *args)
                    if check(value):
                        return value
                    await asyncio.sleep(0.1)
        finally:
            await conn.close()

    async def published_statuses(self) -> list[AssignmentStatusEvent]:
        """The ``assignment.status`` events the workspace published, once there is one (the topic also holds
        the record this test put there that is no event)."""
        consumer = AIOKafkaConsumer(
            topics.ASSIGNMENT_STATUS, bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        found: list[AssignmentStatusEvent] = []
        try:
            async with asyncio.timeout(60):
                while not found:
                    for batch in (await consumer.getmany(timeout_ms=200)).values():
                        values = [r.value or b"" for r in batch]
                        found += [AssignmentStatusEvent.model_validate_json(v) for v in values if b'"producer"' in v]
        finally:
            await consumer.stop()
        return found


@pytest.fixture
async def running(pg_server: PostgresEndpoint, link_secret: str) -> AsyncIterator[Running]:
    # A broker of its own: the e2e stack's workspace, in the same consumer group, may run on the session's.
    with kafka_broker() as broker:
        await create_topics(broker.bootstrap_servers, topics.ALL_TOPICS)
        async with temporary_database(pg_server, "prevex_ws_consumer") as database_url:
            port = free_port()
            settings = WorkspaceSettings(
                kafka_bootstrap_servers=broker.bootstrap_servers,
                database_url=database_url,
                link_secrets=link_secret,
                http_port=port,
                cookie_secure=False,
                kafka_session_timeout_ms=1000,
                kafka_heartbeat_interval_ms=100,
                outbox_poll_interval_s=0.2,
            )
            runtime = build(settings)
            await runtime.start()
            await runtime.broker.start()
            try:
                yield Running(runtime, broker.bootstrap_servers, database_url, f"http://127.0.0.1:{port}")
            finally:
                await runtime.broker.stop()
                await runtime.stop()


async def test_the_consumer_builds_the_read_model_and_an_action_comes_back_applied(
    running: Running, world: World
) -> None:
    procedure_id = uuid.uuid4()
    notice = await world.orient("s01-cj-commandement-payer", procedure_id=procedure_id, short_ref=REF)
    decided = await world.take_orientation_outbox()
    records = [(topics.PROCEDURE_NOTIFICATION, notice.model_dump_json().encode())]
    records += [(r.topic, r.value or b"") for r in decided]
    await running.publish(*records)
    count_assignments = "SELECT count(*) FROM assignment WHERE procedure_id = $1"
    assert await running.until(count_assignments, lambda n: n == 3, procedure_id) == 3

    # The same events again (a producer's retry) and a record that is no event.
    await running.publish(*records, (topics.ASSIGNMENT_STATUS, b'{"not": "an event"}'))
    await running.until("SELECT count(*) FROM dead_letter", lambda n: n == 1)
    assert await running.until(count_assignments, lambda n: n is not None, procedure_id) == 3
    assert await running.until("SELECT count(*) FROM stage_received", lambda n: n is not None) == 1

    ccas: uuid.UUID = await running.until(
        "SELECT assignment_id FROM assignment WHERE structure_id = 'CCAS-BELFORT'", lambda v: v is not None
    )
    async with httpx.AsyncClient(base_url=running.url) as browser:
        # The running service reads the system clock, not the world's.
        last_day = datetime.now(UTC).date() + timedelta(days=30)
        assert (await browser.get(world.link(ccas, "CCAS-BELFORT", expires_on=last_day))).status_code == 303
        page = (await browser.get(f"/dossiers/{REF}")).text
        assert "Léa Durand" in page
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert (await browser.post(f"/dossiers/{REF}/accepter", data={"csrf": csrf})).status_code == 303
        # Through the outbox relay to the topic, and back through the consumer: folded, the outcome known.
        await running.until("SELECT status FROM assignment WHERE assignment_id = $1", lambda s: s == "ACCEPTEE", ccas)
        assert await running.until("SELECT outcome FROM partner_action", lambda o: o is not None) == "APPLIED"
        assert 'id="statut-courant">Acceptée<' in (await browser.get(f"/dossiers/{REF}")).text

    [published] = await running.published_statuses()
    assert (published.producer, published.payload.status, published.payload.by) == ("workspace", "ACCEPTEE", "PARTNER")
    await world.apply_in_orientation(published)
    assert await world.orientation_status(ccas) == "ACCEPTEE"
