"""Read-only connections to the services' schemas.

Ops tooling may read every schema; the services never read each other's (docs/operations.md). Each
connection is opened read-only (``default_transaction_read_only``), so a query here cannot change a
service's rows; the commands that do change them (dead-letter replay) open their own, named, connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg

from services.ops.settings import SCHEMAS, OpsSettings

__all__ = ["Schemas", "connect", "open_schemas"]

Schemas = dict[str, "asyncpg.Connection[asyncpg.Record]"]
"""One connection per service whose schema exists, by service name."""


async def connect(url: str, schema: str, *, read_only: bool) -> asyncpg.Connection[asyncpg.Record]:
    """A connection whose ``search_path`` is ``schema``, decoding jsonb; read-only when asked."""
    settings = {"search_path": schema, "application_name": "prevex-ops"}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url, server_settings=settings)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


@asynccontextmanager
async def open_schemas(settings: OpsSettings, *, read_only: bool = True) -> AsyncIterator[Schemas]:
    """A connection to each service's schema that exists (a deployment without the workspace has none
    for it); every service's URL must be set (:meth:`OpsSettings.url_of`). Closed on exit."""
    async with AsyncExitStack() as stack:
        found: Schemas = {}
        for service, schema in SCHEMAS.items():
            conn = await connect(settings.url_of(service), schema, read_only=read_only)
            stack.push_async_callback(conn.close)
            if await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", schema):
                found[service] = conn
        yield found
