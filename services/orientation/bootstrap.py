"""Composition root of orientation: référentiel in PostgreSQL, matching of notices, assignment lifecycle,
expiry, escalation of unanswered assignments, sortie-de-trêve reminders, admin API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files

import asyncpg
from aiokafka import ConsumerRecord

from schemas import topics
from schemas.assignment import AssignmentStatusEvent
from schemas.procedure import ProcedureNotificationEvent
from services.orientation import referential_repository as ref_repo
from services.orientation import repository as repo
from services.orientation.auth import load_tokens
from services.orientation.domain.referential_yaml import load_referential
from services.orientation.escalation import escalate_assignments
from services.orientation.group_merge import LEGACY_STATUS_GROUP_ID, carry_over_offsets
from services.orientation.http import AdminServices, create_app
from services.orientation.lifecycle import StatusHandler, expire_assignments
from services.orientation.orient import Orientation
from services.orientation.referential_store import SCHEMA, ReferentialHolder, commit_referential, publish_current
from services.orientation.settings import OrientationSettings, ReferentialImport
from services.orientation.truce import remind_truce_end
from services.platform.clock import announce_clock
from services.platform.consume import decode_topic, parking
from services.platform.db import Conn
from services.platform.kafka import subscribe_batch
from services.platform.logging import get_logger
from services.platform.runtime import BackgroundLoop, Runtime

__all__ = ["GROUP_ID", "MIGRATIONS", "build", "import_at_start"]

GROUP_ID = "prevex-orientation"
MIGRATIONS = files("services.orientation") / "migrations"
"""The orientation schema's own migrations (the platform adds its own: ``services.platform.db.open_schema``)."""
SWEEP_BATCH = 500

log = get_logger(__name__)


def build(settings: OrientationSettings) -> Runtime:
    """Wire orientation: référentiel at start, notices and assignment statuses consumed by one consumer (the
    statuses' offsets of the former group carried over first: :mod:`services.orientation.group_merge`),
    expiry, escalation and reminder sweeps, admin API."""
    runtime = Runtime("orientation", settings, schema=SCHEMA, migrations=MIGRATIONS)
    holder = ReferentialHolder()
    orientation = Orientation(
        holder,
        max_structures=settings.max_structures,
        response_working_days=settings.escalation_reminder_working_days,
    )
    clock = settings.make_clock()
    statuses = StatusHandler(holder, clock=clock, response_working_days=settings.escalation_reminder_working_days)
    # Read before anything starts: a broken tokens file stops the service at once.
    tokens = load_tokens(settings.admin_tokens_path)

    async def load(rt: Runtime) -> None:
        async with rt.pool.acquire() as conn, conn.transaction():
            imported = await import_at_start(conn, settings)
            active = await holder.refresh(conn)
            # A new version was published by its import; otherwise republish: it heals a lost topic.
            published = 0 if imported is not None else await publish_current(conn, active)
        log.info("referential_ready", version=active.version, imported=imported is not None, republished=published)

    async def on_records(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        # One transaction for the batch, notices first: a status change for an assignment decided in the
        # same batch finds it. A failure rolls the batch back whole, as its offsets are committed whole:
        # isolation then handles its halves, where what committed before comes again as a no-op (inbox).
        async with runtime.pool.acquire() as conn, conn.transaction():
            notices = await decode_topic(conn, records, topics.PROCEDURE_NOTIFICATION, ProcedureNotificationEvent)
            changes = await decode_topic(conn, records, topics.ASSIGNMENT_STATUS, AssignmentStatusEvent)
            if notices and changes:
                # Each handler locks its procedures in one sorted pass; two passes in one transaction would
                # not be sorted together, so every procedure of the batch is locked first, in one.
                procedures = [notice.payload.procedure_id for notice in notices]
                await repo.lock_procedures(conn, procedures + [change.payload.procedure_id for change in changes])
            await orientation.handle_batch(conn, notices, now=clock.now())
            if changes:
                await statuses.handle_batch(conn, changes)

    async def carry_over(_: Runtime) -> None:
        await carry_over_offsets(
            settings, topics.ASSIGNMENT_STATUS, from_group=LEGACY_STATUS_GROUP_ID, to_group=GROUP_ID
        )

    async def expire(conn: Conn) -> int:
        return await expire_assignments(conn, days=settings.assignment_expiry_days, now=clock.now(), limit=SWEEP_BATCH)

    async def escalate(conn: Conn) -> int:
        return await escalate_assignments(
            conn,
            now=clock.now(),
            reminder_days=settings.escalation_reminder_working_days,
            secretariat_days=settings.escalation_secretariat_working_days,
            limit=SWEEP_BATCH,
        )

    async def remind(conn: Conn) -> int:
        return await remind_truce_end(conn, holder, now=clock.now(), limit=SWEEP_BATCH)

    runtime.add_startup(announce_clock)
    runtime.add_startup(load)
    runtime.add_startup(carry_over)
    runtime.add_loop(_sweeping(expire, "assignment_expiry", settings.assignment_expiry_interval_s))
    runtime.add_loop(_sweeping(escalate, "assignment_escalation", settings.escalation_interval_s))
    runtime.add_loop(_sweeping(remind, "truce_end_reminder", settings.truce_reminder_interval_s))
    # One consumer for both topics: each consumer fetches every KAFKA_FETCH_MAX_WAIT_MS and heartbeats, idle
    # or not, a cost in this process and in the broker that two consumers paid twice.
    subscribe_batch(
        runtime.broker,
        topics.PROCEDURE_NOTIFICATION,
        topics.ASSIGNMENT_STATUS,
        group_id=GROUP_ID,
        settings=settings,
        handler=on_records,
        on_poison=parking(lambda: runtime.pool),
    )
    if settings.http_enabled:
        # Bound at start by the runtime: a taken port stops the service with a clear error.
        services = AdminServices(
            pool=lambda: runtime.pool,
            holder=holder,
            tokens=tokens,
            max_structures=settings.max_structures,
            clock=clock,
        )
        runtime.add_http(create_app(services), host=settings.http_host, port=settings.http_port)
    return runtime


async def import_at_start(conn: Conn, settings: OrientationSettings) -> int | None:
    """Import ``settings.referential_path`` as ``settings.referential_import`` says; return the new version
    or ``None`` when nothing was imported. In the caller's transaction, under the référentiel lock, so
    replicas starting together import once."""
    await ref_repo.lock_referential(conn)
    if settings.referential_import is ReferentialImport.IF_EMPTY and await ref_repo.latest_version(conn) is not None:
        return None
    # Read and validated only when needed: a broken file then stops the service at once.
    referential = load_referential(settings.referential_path.read_text("utf-8"))
    commit = await commit_referential(
        conn, lambda _: referential, source=f"start {settings.referential_path.name}", author="orientation"
    )
    return commit.active.version if commit.created else None


def _sweeping(sweep: Callable[[Conn], Awaitable[int]], name: str, interval_s: float) -> BackgroundLoop:
    """A loop running ``sweep`` in a transaction of its own, batch after batch while it returns a full
    batch, then every ``interval_s``. A database away is logged and retried at the next interval."""

    async def run(rt: Runtime) -> None:
        while True:
            try:
                while await _in_transaction(rt.pool, sweep) == SWEEP_BATCH:
                    pass
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("sweep_failed", sweep=name, error=type(error).__name__)
            await asyncio.sleep(interval_s)

    return run


async def _in_transaction(pool: asyncpg.Pool, sweep: Callable[[Conn], Awaitable[int]]) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await sweep(conn)
