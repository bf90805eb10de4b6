"""Orientation on a real PostgreSQL: each test gets a fresh, migrated schema of its own.

The project runs pytest with ``--import-mode=importlib``: helpers reach the tests as fixtures.
Notices are built from the source examples through ingest's normaliser (``devtools.orientation_inputs``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time
from importlib.resources import files
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devtools.orientation_inputs import example_record, notice, notice_event
from schemas.assignment import AssignmentStatus, AssignmentStatusChange, AssignmentStatusEvent, StatusActor
from schemas.envelope import new_envelope_fields
from schemas.procedure import ProcedureNotice, ProcedureNotificationEvent
from services.orientation.domain import Referential, load_referential
from services.orientation.lifecycle import StatusHandler
from services.orientation.orient import Orientation
from services.orientation.referential_store import ReferentialHolder, commit_referential
from services.platform.db import apply_migrations, connect_pool, migration_files

SEED_PATH = Path(__file__).resolve().parents[3] / "deploy" / "referential" / "seed-90.yaml"
MIGRATIONS = migration_files(files("services.platform") / "migrations", files("services.orientation") / "migrations")

MakeEvent = Callable[..., ProcedureNotificationEvent]


@pytest.fixture(scope="session")
def seed() -> Referential:
    return load_referential(SEED_PATH.read_text("utf-8"))


@pytest.fixture
async def schema_pool(database_url: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A migrated schema of this test's own (the session database is shared)."""
    schema = f"o_{uuid.uuid4().hex[:10]}"
    pool = await connect_pool(database_url, schema=schema)
    async with pool.acquire() as conn:
        await apply_migrations(conn, schema, MIGRATIONS)
    yield schema, pool
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await pool.close()


@pytest.fixture
def pool(schema_pool: tuple[str, asyncpg.Pool]) -> asyncpg.Pool:
    return schema_pool[1]


@pytest.fixture
async def seeded(pool: asyncpg.Pool, seed: Referential) -> ReferentialHolder:
    """The seed stored as version 1; a holder of this "process" that uses it."""
    async with pool.acquire() as conn, conn.transaction():
        await commit_referential(conn, lambda _: seed, source="test seed", author="test")
    holder = ReferentialHolder()
    async with pool.acquire() as conn:
        await holder.refresh(conn)
    return holder


@pytest.fixture
def orientation(seeded: ReferentialHolder) -> Orientation:
    return Orientation(seeded, max_structures=3)


@pytest.fixture
def statuses(seeded: ReferentialHolder) -> StatusHandler:
    return StatusHandler(seeded)


@pytest.fixture(scope="session")
def make_event() -> MakeEvent:
    """``make_event("s01-cj-commandement-payer", procedure_id=…, **notice fields)``: the event ingest publishes."""

    def build(example: str, *, procedure_id: uuid.UUID | None = None, **fields: Any) -> ProcedureNotificationEvent:
        record = example_record(example)
        assert record is not None, f"{example} is rejected by ingest"
        payload: ProcedureNotice = notice(record, procedure_id=procedure_id or uuid.uuid4(), **fields)
        return notice_event(payload)

    return build


@pytest.fixture
def orient(pool: asyncpg.Pool, orientation: Orientation) -> Callable[..., Any]:
    """``await orient(*events)``: one consumed batch, committed."""

    async def run(*events: ProcedureNotificationEvent) -> None:
        async with pool.acquire() as conn, conn.transaction():
            act_day = events[0].payload.notification.act.date
            await orientation.handle_batch(conn, events, now=datetime.combine(act_day, time(12), UTC))

    return run


def status_event(
    procedure_id: uuid.UUID, structure_id: str, status: AssignmentStatus, by: StatusActor, **fields: Any
) -> AssignmentStatusEvent:
    """A change of ``procedure_id``'s assignment of ``structure_id``, as the workspace publishes it (``fields``:
    the change's other fields, e.g. ``assignment_id``, ``override``)."""
    payload = AssignmentStatusChange(
        procedure_id=procedure_id, structure_id=structure_id, status=status, by=by, **fields
    )
    return AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=payload)
