"""The results table: each benchmark's JSON results as Markdown (docs/benchmarks.md explains the columns)."""

from __future__ import annotations

from typing import Any

__all__ = ["flat_markdown", "pipeline_markdown", "results_markdown"]

HOPS = ("ingest", "orientation", "notifier", "end_to_end", "bare_relay")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, list | tuple):
        return " / ".join(_fmt(v) for v in value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _row(label: str, *cells: Any) -> str:
    return "| " + " | ".join([label, *(_fmt(c) for c in cells)]) + " |"


def pipeline_markdown(result: dict[str, Any]) -> str:
    """The whole-pipeline benchmark's two phases side by side, then the latency phase's hops."""
    backlog, latency = result["backlog"], result["latency"]
    phases = (backlog, latency)
    paced = f"{_fmt(latency['rate'])} acts/s × {_fmt(latency['duration_s'])} s"
    lines = [
        f"Broker {result['broker']}, PostgreSQL {result['postgres']}, {result['cpus']} CPUs"
        f" (CPU reference {result['cpu_reference_ms']:.0f} ms: lower is faster); the services'"
        f" fetch wait {result['fetch_wait_ms']} ms.",
        "",
        f"| | backlog drain | {paced} |",
        "|---|---|---|",
        _row("acts", *(p["acts"] for p in phases)),
        _row("load average (1, 5, 15 min) at start", *(p["load_start"] for p in phases)),
        _row("load average at end", *(p["load_end"] for p in phases)),
        _row("wall time, s (services started / first act sent → last email)", *(p["wall_s"] for p in phases)),
        _row("acts/s end to end", backlog["acts_per_s_end_to_end"], latency["acts"] / latency["wall_s"]),
        _row(
            "acts/s end to end after start-up (first canonical notification → last email)",
            backlog["acts_per_s_after_startup"],
            None,
        ),
        _row("start-up s (services started → first canonical notification)", backlog["startup_s"], None),
        _row("canonical notifications/s (ingest)", backlog["notifications_per_s"], None),
        _row("decisions/s (orientation)", backlog["decisions_per_s"], None),
        _row("emails/s (notifier)", backlog["emails_per_s"], None),
        _row("bare relay msgs/s (same broker)", *(p["relay_msgs_per_s"] for p in phases)),
    ]
    lines += [
        _row(f"CPU ms per act: {g}", *(p["cpu_ms_per_act"][g] for p in phases)) for g in backlog["cpu_ms_per_act"]
    ]
    lines += [
        _row("CPU ms per act: stack (services, Tansu, PostgreSQL)", *(p["cpu_ms_per_act_stack"] for p in phases)),
        _row("cores busy: stack", *(p["cores_busy_stack"] for p in phases)),
        _row(
            "CPU ms per act: stack without PostgreSQL's server processes",
            *(p["cpu_ms_per_act_stack_without_pg_server"] for p in phases),
        ),
        _row("cores busy: stack without them", *(p["cores_busy_stack_without_pg_server"] for p in phases)),
    ]
    for group, rss in backlog["rss_mib"].items():
        paced_rss = latency["rss_mib"][group]
        lines.append(
            _row(
                f"RSS MiB {group}: peak (first → last sample)",
                f"{_fmt(rss['peak'])} ({_fmt(rss['first'])} → {_fmt(rss['last'])})",
                f"{_fmt(paced_rss['peak'])} ({_fmt(paced_rss['first'])} → {_fmt(paced_rss['last'])})",
            )
        )
    for key in backlog["delivery"]:
        lines.append(_row(key.replace("_", " "), *(p["delivery"][key] for p in phases)))
    lines += [
        "",
        f"Latency at {paced}, ms (record timestamps; the email's is the SMTP server's receive time):",
        "",
        "| hop | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "ingest": "act → canonical notification (ingest)",
        "orientation": "notification → decision (orientation)",
        "notifier": "decision → last email accepted (notifier)",
        "end_to_end": "act → last email (end to end)",
        "bare_relay": "bare aiokafka relay hop",
    }
    for hop in HOPS:
        cuts = latency["hops_ms"][hop]
        lines.append(_row(labels[hop], cuts["p50"], cuts["p95"], cuts["p99"], cuts["max"]))
    growth = latency["growth_ms"]
    ratio = latency["hop_p50_over_relay_p50"]
    idle = result["idle"]
    floor = ", ".join(f"{group} {_fmt(cores)}" for group, cores in idle["cores_busy"].items())
    lines += [
        "",
        f"End to end, first third of the acts → last third: p50 {_fmt(growth['first_third_p50'])} →"
        f" {_fmt(growth['last_third_p50'])} ms, p99 {_fmt(growth['first_third_p99'])} →"
        f" {_fmt(growth['last_third_p99'])} ms. Hop p50 over the bare relay's: ingest {_fmt(ratio['ingest'])}×,"
        f" orientation {_fmt(ratio['orientation'])}×.",
        "",
        f"Idle {_fmt(idle['wall_s'])} s between the phases (no act coming), cores busy: {floor}; the stack without"
        f" PostgreSQL's server processes {_fmt(idle['cores_busy_stack_without_pg_server'])}.",
    ]
    for title, phase in (("backlog drain", backlog), ("idle", idle), (paced, latency)):
        lines += ["", *_statements_markdown(title, phase.get("statements"))]
    return "\n".join(lines)


def _statements_markdown(phase: str, statements: dict[str, Any] | None) -> list[str]:
    """A phase's most expensive statements (``benchmarks.statements``), or why there are none."""
    if not statements or not statements["available"]:
        return [f"PostgreSQL statements, {phase}: not measured (pg_stat_statements is not loaded by the server)."]
    return [
        f"PostgreSQL statements, {phase}: {_fmt(statements['total_ms'])} ms of execution in"
        f" {_fmt(statements['calls'])} calls; the most expensive:",
        "",
        "| total ms | calls | µs per call | rows | statement |",
        "|---|---|---|---|---|",
        *(
            _row(_fmt(s["total_ms"]), s["calls"], s["us_per_call"], s["rows"], f"`{s['statement']}`")
            for s in statements["top"]
        ),
    ]


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _flatten(f"{prefix}{key} ".lstrip(), item)]
    return [(prefix.strip(), value)]


def flat_markdown(result: dict[str, Any]) -> str:
    """Any benchmark's results as a two-column table, nested keys joined."""
    return "\n".join(["| measure | value |", "|---|---|", *(_row(k, v) for k, v in _flatten("", result))])


def results_markdown(results: dict[str, dict[str, Any]]) -> str:
    """One section per benchmark run, the pipeline's with its own tables."""
    sections = ["# Benchmark results", ""]
    for name, result in results.items():
        sections += [f"## {name}", ""]
        if "error" in result:
            sections.append(f"Failed: {result['error']}")
        elif name == "pipeline":
            sections.append(pipeline_markdown(result))
        else:
            sections.append(flat_markdown(result))
        sections.append("")
    return "\n".join(sections)
