"""What PostgreSQL would run for a repository's statements once its tables are large.

A statement that reads a whole table costs nothing on a test's ten rows and a core in production after
months of acts; a benchmark shows it only once its tables have grown. These helpers let a test record the
statements a repository function really sends (:func:`recorded_statements`) and read the plan PostgreSQL
caches for each (:func:`generic_plan`): asyncpg prepares every statement, and after five executions the
server may keep one plan for every value, chosen without the values (``plan_cache_mode``). A test then
asserts that plan reaches its rows through an index (:func:`full_scans`), with the tables made large
and analysed first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import asyncpg

from services.platform.db import Conn

__all__ = ["full_scans", "full_scans_of", "generic_plan", "recorded_statements"]

_PARAMETER = re.compile(r"\$(\d+)")
_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
"""What asyncpg sends around a ``conn.transaction()``: nothing PostgreSQL plans."""


@contextmanager
def recorded_statements(conn: Conn) -> Iterator[list[str]]:
    """The text of every statement ``conn`` executes inside the block, in order (asyncpg's query logger)."""
    statements: list[str] = []

    def record(query: asyncpg.connection.LoggedQuery) -> None:
        statements.append(query.query)

    conn.add_query_logger(record)
    try:
        yield statements
    finally:
        conn.remove_query_logger(record)


async def generic_plan(conn: Conn, sql: str) -> str:
    """``EXPLAIN`` of the generic plan of ``sql`` (a statement with ``$n`` parameters), as text.

    The plan PostgreSQL keeps for a prepared statement whatever its parameters: it is chosen without their
    values, so they are passed as NULL. Runs outside any transaction the caller holds open on ``conn``.
    """
    count = max((int(n) for n in _PARAMETER.findall(sql)), default=0)
    await conn.execute(f"PREPARE plan_probe AS {sql}")
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        arguments = f"({', '.join(['NULL'] * count)})" if count else ""
        rows = await conn.fetch(f"EXPLAIN EXECUTE plan_probe{arguments}")
        return "\n".join(row[0] for row in rows)
    finally:
        await conn.execute("RESET plan_cache_mode")
        await conn.execute("DEALLOCATE plan_probe")


def full_scans(plan: str, tables: set[str]) -> set[str]:
    """Which of ``tables`` ``plan`` reads whole (a sequential scan)."""
    return {table for table in _SEQ_SCAN.findall(plan) if table in tables}


async def full_scans_of(conn: Conn, statements: Iterable[str], tables: set[str]) -> dict[str, str]:
    """Each distinct statement of ``statements`` whose generic plan reads one of ``tables`` whole, with that plan
    (``{}`` when every one reaches its rows through an index). Transaction control is left out."""
    found = {}
    for sql in dict.fromkeys(statements):
        if sql.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            continue
        plan = await generic_plan(conn, sql)
        if full_scans(plan, tables):
            found[sql] = plan
    return found
