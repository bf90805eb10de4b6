"""PostgreSQL access: a pool bound to one service's schema, and plain-SQL migrations.

Each service owns one schema (docs/architecture.md §3); its connections set
``search_path`` to that schema so SQL names stay unqualified. A service process opens its database with
:func:`open_schema` (the runtime and the services' CLIs alike): the platform's migrations, named here
only, then the service's own folder, which each service names once, in its ``bootstrap``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.platform.logging import get_logger

__all__ = [
    "Conn",
    "apply_migrations",
    "connect_pool",
    "migration_files",
    "open_schema",
    "schema_migrations",
    "warn_without_autovacuum",
]

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A plain connection or one borrowed from a pool: every repository function accepts both."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# One lock id for every service's migrations: they are quick, and serialising them avoids two
# replicas racing to create the same table on first start.
_MIGRATION_LOCK_ID = 0x70726576  # "prev"
_PLATFORM_MIGRATIONS = files("services.platform") / "migrations"

log = get_logger(__name__)


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The pool's reset: nothing sent to the server.

    asyncpg's default sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` at every
    release, one more round trip per transaction, for session state our code does not leave behind: whoever
    takes some gives it back before releasing (apply_migrations unlocks its advisory lock, the outbox relay
    and the notifier's listeners UNLISTEN), settings are only ``SET LOCAL``, cursors live in transactions.
    The pool still rolls back a transaction left open and drops client-side listeners before calling this.
    """


async def connect_pool(dsn: str, *, schema: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections use ``schema`` first in their ``search_path`` and decode jsonb.

    A released connection is not reset on the server: a holder that takes session state (a session
    advisory lock, ``LISTEN``, a ``SET`` without ``LOCAL``, a ``WITH HOLD`` cursor) gives it back before
    releasing, or closes the connection.
    """
    _check_schema(schema)
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={
            "search_path": f"{schema},public",
            "application_name": f"prevex-{schema}",
            # Short statements on indexed rows: compiling a plan (PostgreSQL's default jit=on) costs tens of ms
            # whenever an estimate passes jit_above_cost, as an unanalysed table's can (measured on ingest's
            # procedure lookup: 45–49 ms of JIT in a 500-key call), and never pays back here.
            "jit": "off",
        },
        init=_init_connection,
        reset=_keep_session,
    )
    return pool


def migration_files(*directories: Traversable) -> list[tuple[str, str]]:
    """``(version, sql)`` pairs from ``NNN_name.sql`` files, each directory in file-name order.

    The version is ``<directory name>/<file stem>`` so the platform's and a service's migrations
    can share one schema without clashing.
    """
    files: list[tuple[str, str]] = []
    for directory in directories:
        entries = sorted((e for e in directory.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name)
        files.extend((f"{directory.name}/{e.name[:-4]}", e.read_text("utf-8")) for e in entries)
    return files


def schema_migrations(service: Traversable) -> list[tuple[str, str]]:
    """What a service's schema is migrated with: the platform's migrations (outbox, inbox, dead letters),
    then the service's folder ``service``."""
    return migration_files(_PLATFORM_MIGRATIONS, service)


async def open_schema(
    dsn: str, *, schema: str, migrations: Traversable, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool on ``schema`` (:func:`connect_pool`), once the schema is migrated with
    :func:`schema_migrations` of the service's folder ``migrations``.

    The caller closes the pool; if migrating fails, it is closed here and the error propagates.
    """
    pool = await connect_pool(dsn, schema=schema, min_size=min_size, max_size=max_size)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema, schema_migrations(migrations))
            await warn_without_autovacuum(conn, schema)
    except BaseException:
        await pool.close()
        raise
    return pool


async def warn_without_autovacuum(conn: Conn, schema: str) -> None:
    """Log ``autovacuum_off`` (a warning naming ``schema``) when the server runs without autovacuum.

    Every service keeps queues in its tables (its outbox; the notifier's alerts and deliveries) whose rows
    are deleted or updated as fast as they come: without vacuum their dead rows only accumulate, and every
    relay batch and claim reads past more of them — the service slows down for as long as it runs, with no
    error to say why. The migrations tune autovacuum for those tables; with it off, nothing runs them.
    """
    if not await conn.fetchval("SELECT current_setting('autovacuum')::boolean"):
        log.warning("autovacuum_off", schema=schema, hint="set autovacuum = on, or VACUUM the queue tables")


async def apply_migrations(conn: Conn, schema: str, files: Sequence[tuple[str, str]]) -> list[str]:
    """Create ``schema`` if needed and apply the files not yet recorded there, in order.

    Each file runs in its own transaction together with its ``schema_migrations`` row, so a failed
    file leaves nothing half-applied. Returns the versions applied by this call.
    """
    _check_schema(schema)
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
        for version, sql in files:
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                await conn.execute(sql)
                await conn.execute(f"INSERT INTO {schema}.schema_migrations VALUES ($1)", version)
            applied.append(version)
            log.info("migration_applied", schema=schema, version=version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
    return applied


def _check_schema(schema: str) -> None:
    # The schema name is interpolated into DDL: only plain lowercase identifiers are allowed.
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
