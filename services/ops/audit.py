"""The audit log of personal-data reads: the ``audit_log`` table of the ``ops`` schema.

Written *before* the data is shown: a read that could not be audited is not shown.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Sequence
from importlib.resources import files

from services.ops.readers import connect
from services.platform.db import apply_migrations, migration_files

__all__ = ["SCHEMA", "operator_name", "record_read"]

SCHEMA = "ops"
_MIGRATIONS = files("services.ops") / "migrations"


def operator_name(configured: str | None) -> str:
    """Who runs the command: ``PREVEX_OPS_OPERATOR`` when set, else the system user."""
    return configured or getpass.getuser()


async def record_read(url: str, *, operator: str, command: str, query: str, procedure_ids: Sequence[uuid.UUID]) -> int:
    """Append one read to the audit log (migrating the ``ops`` schema first if needed); its id."""
    conn = await connect(url, SCHEMA, read_only=False)
    try:
        await apply_migrations(conn, SCHEMA, migration_files(_MIGRATIONS))
        entry: int = await conn.fetchval(
            "INSERT INTO audit_log (operator, command, query, procedure_ids) VALUES ($1, $2, $3, $4) RETURNING id",
            operator,
            command,
            query,
            list(procedure_ids),
        )
    finally:
        await conn.close()
    return entry
