"""The workspace on a real PostgreSQL, fed with what the real orientation publishes.

Orientation runs in-process on a schema of its own with the seed référentiel: its outbox rows (the
référentiel records, decisions) are handed to the workspace's fold as the consumer would hand them; the
workspace's own outbox rows (assignment.status) are handed to orientation's status handler and back.
The pages are served through httpx's ASGI transport.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord

from devtools.orientation_inputs import example_record, notice, notice_event
from schemas import topics
from schemas.assignment import AssignmentStatusEvent
from schemas.envelope import Envelope
from schemas.procedure import ProcedureNotificationEvent
from services.orientation.auth import Role, TokenRegistry, hash_token
from services.orientation.domain import load_referential
from services.orientation.lifecycle import StatusHandler
from services.orientation.orient import Orientation
from services.orientation.referential_store import ReferentialHolder, commit_referential
from services.platform.db import apply_migrations, connect_pool, migration_files
from services.platform.links import LinkKeys, mint_link
from services.workspace.domain.sessions import SessionPolicy
from services.workspace.http import WorkspaceServices, create_app
from services.workspace.readmodel import TOPICS, apply_batch

SEED_PATH = Path(__file__).resolve().parents[3] / "deploy" / "referential" / "seed-90.yaml"
PLATFORM = files("services.platform") / "migrations"
LINK_SECRET = "workspace-integration-tests-link-secret"
KEYS = LinkKeys.parse(LINK_SECRET)
DESK_ADMIN_TOKEN = "pvx_desk-admin-token-for-the-integration-tests"
DESK_VIEWER_TOKEN = "pvx_desk-viewer-token-for-the-integration-tests"
DESK_TOKENS = TokenRegistry(
    [
        ("secretariat-ccapex", hash_token(DESK_ADMIN_TOKEN), frozenset({Role.ADMIN})),
        ("lecteur-ccapex", hash_token(DESK_VIEWER_TOKEN), frozenset({Role.VIEWER})),
    ]
)


async def _schema(database_url: str, prefix: str, service: str) -> tuple[str, asyncpg.Pool]:
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    pool = await connect_pool(database_url, schema=schema)
    async with pool.acquire() as conn:
        await apply_migrations(conn, schema, migration_files(PLATFORM, files(f"services.{service}") / "migrations"))
    return schema, pool


async def _drop(schema: str, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await pool.close()


def record(topic: str, value: bytes, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    """A consumed record as aiokafka hands it to a batch handler."""
    return ConsumerRecord(topic, 0, offset, 0, 0, None, value, None, 0, len(value), ())


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 10, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """Orientation and the workspace, each on its schema; a settable clock; a client for the pages."""

    orientation_pool: asyncpg.Pool
    workspace_pool: asyncpg.Pool
    orientation: Orientation
    statuses: StatusHandler
    clock: Clock
    app: Any

    def client(self) -> httpx.AsyncClient:
        """A browser of its own (its own cookie jar)."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://workspace.test")

    async def fold(self, *records: ConsumerRecord[bytes, bytes]) -> None:
        async with self.workspace_pool.acquire() as conn, conn.transaction():
            await apply_batch(conn, records)

    async def fold_raw(self, *values: tuple[str, bytes]) -> None:
        """One consumed batch of these ``(topic, value)`` records, at offsets 1, 2…"""
        await self.fold(*(record(topic, value, offset) for offset, (topic, value) in enumerate(values, start=1)))

    async def fold_event(self, topic: str, event: Envelope) -> None:
        await self.fold(record(topic, event.model_dump_json().encode()))

    async def take_orientation_outbox(self) -> list[ConsumerRecord[bytes, bytes]]:
        """Empty orientation's outbox; return what the workspace subscribes to (not orientation.unmatched)."""
        async with self.orientation_pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch("DELETE FROM outbox RETURNING id, topic, value")
        return [
            record(r["topic"], r["value"], r["id"]) for r in sorted(rows, key=lambda r: r["id"]) if r["topic"] in TOPICS
        ]

    async def relay_orientation(self) -> None:
        """Move orientation's outbox into the workspace's read model."""
        await self.fold(*await self.take_orientation_outbox())

    async def orient(
        self, example: str, *, procedure_id: uuid.UUID, short_ref: str, **fields: Any
    ) -> ProcedureNotificationEvent:
        """Ingest's notice for ``example``, decided by orientation (its outbox holds the decision)."""
        found = example_record(example)
        assert found is not None
        event = notice_event(notice(found, procedure_id=procedure_id, short_ref=short_ref, **fields))
        async with self.orientation_pool.acquire() as conn, conn.transaction():
            await self.orientation.handle_batch(conn, [event], now=datetime.combine(found.act.date, time(10), UTC))
        return event

    async def notify(
        self, example: str, *, procedure_id: uuid.UUID, short_ref: str, **fields: Any
    ) -> ProcedureNotificationEvent:
        """``orient``, then the notice and the decision folded into the workspace."""
        event = await self.orient(example, procedure_id=procedure_id, short_ref=short_ref, **fields)
        await self.fold_event(topics.PROCEDURE_NOTIFICATION, event)
        await self.relay_orientation()
        return event

    async def apply_in_orientation(self, *events: AssignmentStatusEvent) -> None:
        async with self.orientation_pool.acquire() as conn, conn.transaction():
            await self.statuses.handle_batch(conn, events)

    async def relay_workspace(self) -> list[AssignmentStatusEvent]:
        """Move the workspace's outbox to orientation's status handler, then back into the read model."""
        async with self.workspace_pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch("DELETE FROM outbox RETURNING id, topic, value")
        events = [AssignmentStatusEvent.model_validate_json(r["value"]) for r in sorted(rows, key=lambda r: r["id"])]
        await self.apply_in_orientation(*events)
        await self.fold(*(record(topics.ASSIGNMENT_STATUS, e.model_dump_json().encode()) for e in events))
        return events

    async def assignment(self, procedure_id: uuid.UUID, structure_id: str) -> asyncpg.Record:
        async with self.workspace_pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM assignment WHERE procedure_id = $1 AND structure_id = $2", procedure_id, structure_id
            )
        assert row is not None, f"{structure_id} holds no assignment on {procedure_id}"
        return row

    async def orientation_status(self, assignment_id: uuid.UUID) -> str:
        async with self.orientation_pool.acquire() as conn:
            status: str = await conn.fetchval("SELECT status FROM assignment WHERE assignment_id = $1", assignment_id)
        return status

    def link(self, assignment_id: uuid.UUID, structure_id: str, *, expires_on: date | None = None) -> str:
        """The path of the link the notifier would send."""
        last_day = expires_on or (self.clock.now + timedelta(days=30)).date()
        token = mint_link(KEYS, assignment_id=assignment_id, structure_id=structure_id, expires_on=last_day)
        return f"/d/{token}"


@pytest.fixture(scope="session")
def link_secret() -> str:
    """The secret the tests' links are signed with, for a workspace started from its settings."""
    return LINK_SECRET


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    o_schema, o_pool = await _schema(database_url, "wo", "orientation")
    w_schema, w_pool = await _schema(database_url, "ws", "workspace")
    seed = load_referential(SEED_PATH.read_text("utf-8"))
    async with o_pool.acquire() as conn, conn.transaction():
        await commit_referential(conn, lambda _: seed, source="test seed", author="test")
    holder = ReferentialHolder()
    async with o_pool.acquire() as conn:
        await holder.refresh(conn)
    clock = Clock()
    services = WorkspaceServices(
        pool=lambda: w_pool,
        link_keys=KEYS,
        sessions=SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12)),
        cookie_secure=False,
        now=clock,
        desk_tokens=DESK_TOKENS,
        desk_overdue_days=5,
    )
    world = World(
        o_pool, w_pool, Orientation(holder, max_structures=3), StatusHandler(holder), clock, create_app(services)
    )
    await world.relay_orientation()  # the référentiel records
    try:
        yield world
    finally:
        await _drop(w_schema, w_pool)
        await _drop(o_schema, o_pool)
