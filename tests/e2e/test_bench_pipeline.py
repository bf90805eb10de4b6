"""The whole-pipeline benchmark, run tiny: its JSON has every field ``make bench`` tables, and it lost or
duplicated nothing. Not a benchmark — no figure is asserted, only that the instrument measures.

It starts its own broker, database, SMTP server and services (as ``make bench`` does), so it shares nothing
with the session's stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import results_markdown

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ACTS, RATE, DURATION_S = 20, 10, 2
GROUPS = {
    "ingest",
    "orientation",
    "notifier",
    "Tansu",
    "PostgreSQL backends",
    "PostgreSQL server processes",
    "benchmark harness",
}
PHASE_FIELDS = {
    "acts",
    "wall_s",
    "relay_msgs_per_s",
    "cpu_ms_per_act",
    "cpu_ms_per_act_stack",
    "cores_busy_stack",
    "rss_mib",
    "load_start",
    "load_end",
    "delivery",
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "pipeline.json"
    command = [sys.executable, "-m", "benchmarks.pipeline.bench_pipeline", "--acts", str(ACTS)]
    command += ["--rate", str(RATE), "--duration", str(DURATION_S), "--idle-s", "2", "--json", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    loaded: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return loaded


def test_every_act_gets_one_email_per_matched_structure_nothing_lost_or_duplicated(result: dict[str, Any]) -> None:
    for phase, acts in (("backlog", ACTS), ("latency", RATE * DURATION_S)):
        delivery = result[phase]["delivery"]
        assert delivery == delivery | {
            "acts": acts,
            "acts_without_notification": 0,
            "acts_without_decision": 0,
            "emails_expected": 3 * acts,  # S-01 in Belfort: CCAS, point-justice, Département
            "emails_received": 3 * acts,
            "emails_lost": 0,
            "emails_duplicated": 0,
            "emails_unexpected": 0,
        }, phase


def test_both_phases_report_rates_cpu_per_process_rss_and_load(result: dict[str, Any]) -> None:
    backlog, latency = result["backlog"], result["latency"]
    assert backlog.keys() >= PHASE_FIELDS
    assert latency.keys() >= PHASE_FIELDS
    for rate in ("acts_per_s_end_to_end", "notifications_per_s", "decisions_per_s", "emails_per_s"):
        assert backlog[rate] > 0, rate
    for phase in (backlog, latency):
        assert set(phase["cpu_ms_per_act"]) == GROUPS
        # Each service, the broker and this run's database backends were found and did some work.
        assert all(phase["cpu_ms_per_act"][g] > 0 for g in ("ingest", "orientation", "notifier", "Tansu"))
        assert set(phase["rss_mib"]) == GROUPS - {"benchmark harness"}
        assert all(phase["rss_mib"][g]["peak"] > 0 for g in ("ingest", "orientation", "notifier", "Tansu"))
        assert len(phase["load_start"]) == len(phase["load_end"]) == 3


def test_the_paced_phase_times_every_hop_beside_the_relay(result: dict[str, Any]) -> None:
    latency = result["latency"]
    assert set(latency["hops_ms"]) == {"ingest", "orientation", "notifier", "end_to_end", "bare_relay"}
    for hop, cuts in latency["hops_ms"].items():
        assert cuts["p50"] is not None, hop
        assert 0 <= cuts["p50"] <= cuts["p95"] <= cuts["p99"] <= cuts["max"], hop
    ends = latency["hops_ms"]["end_to_end"]
    assert ends["p50"] >= latency["hops_ms"]["ingest"]["p50"]
    assert set(latency["growth_ms"]) == {"first_third_p50", "last_third_p50", "first_third_p99", "last_third_p99"}
    assert set(latency["hop_p50_over_relay_p50"]) == {"ingest", "orientation"}


def test_the_idle_floor_is_measured_per_process(result: dict[str, Any]) -> None:
    idle = result["idle"]
    assert idle["wall_s"] >= 2
    assert set(idle["cores_busy"]) == GROUPS
    # Idle, the services still fetch and heartbeat: each costs some CPU, and none a whole core.
    assert all(0 < idle["cores_busy"][g] < 1 for g in ("ingest", "orientation", "notifier", "Tansu"))
    assert len(idle["load_start"]) == len(idle["load_end"]) == 3


def test_the_results_table_renders_it(result: dict[str, Any]) -> None:
    table = results_markdown({"pipeline": result})
    # The machine's speed beside its figures: the same tree's CPU per act differs from one host to another.
    assert result["cpu_reference_ms"] > 0
    assert f"(CPU reference {result['cpu_reference_ms']:.0f} ms: lower is faster)" in table
    assert "| emails lost | 0 | 0 |" in table
    assert "| emails duplicated | 0 | 0 |" in table
    assert "act → last email (end to end)" in table
    assert "Idle 2" in table


def test_postgres_statements_of_each_phase_are_reported_when_the_server_counts_them(result: dict[str, Any]) -> None:
    # pg_stat_statements is optional (the server must preload it): either each phase names the statements of
    # this run's database that took the most, or the table says they were not measured.
    table = results_markdown({"pipeline": result})
    for phase in ("backlog", "idle", "latency"):
        statements = result[phase]["statements"]
        if not statements["available"]:
            assert "not measured (pg_stat_statements is not loaded" in table
            continue
        top = statements["top"]
        assert top, phase
        assert [s["total_ms"] for s in top] == sorted((s["total_ms"] for s in top), reverse=True)
        assert all(s["calls"] > 0 and s["statement"] for s in top)
        assert statements["calls"] >= sum(s["calls"] for s in top)
    # The backlog's statements are the services' own (this run's database only): storing, orienting and
    # alerting its acts took more statements than there were acts.
    if result["backlog"]["statements"]["available"]:
        assert result["backlog"]["statements"]["calls"] > ACTS
        assert "| total ms | calls | µs per call | rows | statement |" in table
