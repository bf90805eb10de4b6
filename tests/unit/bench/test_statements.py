"""The benchmark's account of PostgreSQL statements: what ran between two snapshots, the costliest first."""

from __future__ import annotations

from benchmarks.statements import Counters, StatementStats


def test_between_counts_only_what_ran_during_the_phase_costliest_first() -> None:
    before = {1: Counters(10, 100.0, 10, "SELECT 1"), 2: Counters(5, 50.0, 5, "UPDATE t SET x = $1")}
    after = {
        1: Counters(10, 100.0, 10, "SELECT 1"),  # did not run during the phase
        2: Counters(9, 90.0, 9, "UPDATE t  SET x = $1"),
        3: Counters(2, 300.0, 0, "DELETE FROM outbox\n WHERE id = $1"),  # first seen during the phase
    }
    phase = StatementStats.between(before, after)
    assert phase["available"] is True
    assert phase["total_ms"] == 340.0
    assert phase["calls"] == 6
    assert [(s["statement"], s["calls"], s["rows"]) for s in phase["top"]] == [
        ("DELETE FROM outbox WHERE id = $1", 2, 0),
        ("UPDATE t SET x = $1", 4, 4),
    ]
    assert phase["top"][0]["us_per_call"] == 150_000.0


def test_without_pg_stat_statements_the_phase_says_it_was_not_measured() -> None:
    assert StatementStats.between(None, None) == {"available": False}
    assert StatementStats.between({}, None) == {"available": False}
