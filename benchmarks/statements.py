"""Where PostgreSQL's time went during a phase: the statements of this run's database, from
``pg_stat_statements``, when the server loads it.

The CPU of PostgreSQL's backends is often the stack's largest share; which statement spends it is what
tells a plan gone wrong (a cached plan that scans a whole table costs nothing on a young database and a core
on one that has grown). The extension is optional: it must be in the server's ``shared_preload_libraries``
(a restart), which the benchmark never changes. Without it the phase reports ``available: false``.
Statements are normalised by the server (``$1`` for every value): no personal data is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

__all__ = ["Counters", "StatementStats"]

_TOP = 10
_QUERY_CHARS = 110


@dataclass(frozen=True)
class Counters:
    """One statement's cumulative counters in ``pg_stat_statements``."""

    calls: int
    total_ms: float
    rows: int
    query: str


@dataclass(frozen=True)
class StatementStats:
    """``pg_stat_statements`` of one database, read at a phase's start and end (:meth:`snapshot`, :meth:`between`)."""

    database_url: str

    async def snapshot(self) -> dict[int, Counters] | None:
        """The counters of every statement run in this database so far, or ``None`` when the server does not
        load ``pg_stat_statements``."""
        conn = await asyncpg.connect(self.database_url)
        try:
            preload = await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
            if "pg_stat_statements" not in preload:
                return None
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            rows = await conn.fetch(
                "SELECT queryid, calls, total_exec_time, rows, query FROM pg_stat_statements"
                " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND queryid IS NOT NULL"
            )
        finally:
            await conn.close()
        return {r["queryid"]: Counters(r["calls"], r["total_exec_time"], r["rows"], r["query"]) for r in rows}

    @staticmethod
    def between(before: dict[int, Counters] | None, after: dict[int, Counters] | None) -> dict[str, Any]:
        """What ran between two snapshots: total execution ms and calls, and the statements that took most."""
        if before is None or after is None:
            return {"available": False}
        spent = []
        for queryid, counters in after.items():
            earlier = before.get(queryid, Counters(0, 0.0, 0, counters.query))
            if (calls := counters.calls - earlier.calls) > 0:
                rows = counters.rows - earlier.rows
                spent.append((counters.total_ms - earlier.total_ms, calls, rows, counters.query))
        spent.sort(reverse=True)
        return {
            "available": True,
            "total_ms": sum(s[0] for s in spent),
            "calls": sum(s[1] for s in spent),
            "top": [
                {
                    "total_ms": total_ms,
                    "calls": calls,
                    "us_per_call": total_ms / calls * 1000,
                    "rows": rows,
                    "statement": " ".join(query.split())[:_QUERY_CHARS],
                }
                for total_ms, calls, rows, query in spent[:_TOP]
            ],
        }
