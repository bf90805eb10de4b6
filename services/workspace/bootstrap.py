"""Composition root of the workspace: the read model consumed from four topics, the pages, the retention purge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.resources import files

import asyncpg
from aiokafka import ConsumerRecord

from services.orientation.auth import load_tokens
from services.platform.clock import announce_clock
from services.platform.consume import parking
from services.platform.kafka import subscribe_batch
from services.platform.logging import get_logger
from services.platform.runtime import BackgroundLoop, Runtime
from services.workspace import repository as repo
from services.workspace.domain.sessions import SessionPolicy
from services.workspace.http import SCHEMA, WorkspaceServices, create_app
from services.workspace.readmodel import TOPICS, apply_batch
from services.workspace.referential_admin import ReferentialAdmin
from services.workspace.settings import WorkspaceSettings

__all__ = ["GROUP_ID", "build", "purge_loop"]

GROUP_ID = "prevex-workspace"

log = get_logger(__name__)


def build(settings: WorkspaceSettings) -> Runtime:
    """Wire the workspace: one consumer for the four topics, the pages, the retention purge.

    The link secrets are read here: none configured stops the service at start. Time is read from the
    settings' clock only (``PREVEX_CLOCK`` sets it, ``services/platform/clock.py``).
    """
    now = settings.make_clock().now
    runtime = Runtime("workspace", settings, schema=SCHEMA, migrations=files("services.workspace") / "migrations")
    services = WorkspaceServices(
        pool=lambda: runtime.pool,
        link_keys=settings.link_keys(),
        sessions=SessionPolicy(idle=settings.session_idle, absolute=settings.session_absolute),
        cookie_secure=settings.cookie_secure,
        now=now,
        desk_tokens=load_tokens(settings.desk_tokens_path),
        desk_overdue_days=settings.desk_overdue_working_days,
        referential_admin=_referential_admin(settings),
        link_request_interval=settings.link_request_interval,
    )

    async def on_records(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        async with runtime.pool.acquire() as conn, conn.transaction():
            await apply_batch(conn, records)

    subscribe_batch(
        runtime.broker,
        *TOPICS,
        group_id=GROUP_ID,
        settings=settings,
        handler=on_records,
        on_poison=parking(lambda: runtime.pool),
    )
    runtime.add_startup(announce_clock)
    runtime.add_loop(purge_loop(settings, now))
    # The partners' pages face the internet: health, metrics and docs only on the internal port.
    runtime.add_http(create_app(services), host=settings.http_host, port=settings.http_port, health=False)
    runtime.add_health_http(host=settings.ops_http_host, port=settings.ops_http_port)
    return runtime


def _referential_admin(settings: WorkspaceSettings) -> ReferentialAdmin | None:
    """Orientation's admin API for the desk's référentiel forms, when configured."""
    token = settings.orientation_token()
    if token is None or settings.orientation_url is None:
        return None
    return ReferentialAdmin.over_http(settings.orientation_url, token)


def purge_loop(settings: WorkspaceSettings, now: Callable[[], datetime]) -> BackgroundLoop:
    """Every ``retention_interval_s``, blank the personal data of procedures closed ``retention_days`` ago."""

    async def run(rt: Runtime) -> None:
        while True:
            try:
                async with rt.pool.acquire() as conn, conn.transaction():
                    at = now()
                    purged = await repo.purge_closed(conn, closed_before=at - settings.retention, now=at)
                if purged:
                    log.info("personal_data_purged", procedures=purged, after_days=settings.retention_days)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("purge_failed", error=type(error).__name__)
            await asyncio.sleep(settings.retention_interval_s)

    return run
