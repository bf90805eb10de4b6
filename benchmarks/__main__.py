"""``make bench``: every benchmark of the project in turn, one results table (Markdown + JSON).

    .venv/bin/python -m benchmarks [--quick] [--only ingest,orientation,notifier,pipeline] [--out var/bench]
                                   [pipeline options: --acts N --rate R --duration S]

Each benchmark runs as its own process (``python -m benchmarks.<name>.bench_<name> … --json F``) on a fresh
broker and database, its own output shown as it goes; a benchmark that fails is reported as such and the
others still run. Writes ``<out>/results.json`` and ``<out>/results.md`` (docs/benchmarks.md explains them),
with the machine's load average before and after. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_reference_ms
from benchmarks.report import results_markdown

ROOT = Path(__file__).resolve().parents[1]

# name → (module, arguments by default, arguments with --quick); bounded so that the whole stays within
# ~15 min by default (a couple of minutes with --quick) on our 2-core machine.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "ingest": ("benchmarks.ingest.bench_ingest", ["-n", "10000", "--emitters", "4"], ["-n", "1000"]),
    "orientation": (
        "benchmarks.orientation.bench_orientation",
        ["--decisions", "2000", "--notices", "3000"],
        ["--decisions", "300", "--notices", "300"],
    ),
    "notifier": (
        "benchmarks.notifier.bench_notifier",
        ["-n", "5000", "--concurrency", "8"],
        ["-n", "500", "--concurrency", "8"],
    ),
    "pipeline": ("benchmarks.pipeline.bench_pipeline", [], ["--quick"]),
}


def run_one(module: str, arguments: list[str]) -> dict[str, Any]:
    """Run one benchmark process; its JSON results, or ``{"error": …}`` when it failed."""
    with tempfile.TemporaryDirectory(prefix="prevex-bench-") as tmp:
        out = Path(tmp) / "result.json"
        started = time.monotonic()
        command = [sys.executable, "-m", module, *arguments, "--json", str(out)]
        code = subprocess.call(command, cwd=ROOT)  # noqa: S603 (our own modules, our own arguments)
        if code != 0 or not out.exists():
            return {"error": f"exit code {code} after {time.monotonic() - started:.0f} s (its output is above)"}
        result: dict[str, Any] = json.loads(out.read_text("utf-8"))
        return result | {"seconds": time.monotonic() - started, "arguments": " ".join(arguments)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs: a smoke test of every benchmark")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks to run")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench", help="where the results go")
    args, pipeline_extra = parser.parse_known_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := set(chosen) - set(BENCHMARKS):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}")
    machine: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    machine["load_start"] = os.getloadavg()
    machine["cpu_reference_ms"] = cpu_reference_ms()
    results: dict[str, dict[str, Any]] = {}
    for name in chosen:
        module, default, quick = BENCHMARKS[name]
        arguments = (quick if args.quick else default) + (pipeline_extra if name == "pipeline" else [])
        print(f"\n=== {name}: python -m {module} {' '.join(arguments)}", flush=True)
        results[name] = run_one(module, arguments)
    machine["load_end"] = os.getloadavg()
    machine["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"machine": machine} | results, indent=2), "utf-8")
    (args.out / "results.md").write_text(results_markdown({"machine": machine} | results), "utf-8")
    print(f"\nresults: {args.out / 'results.md'} and results.json")
    sys.exit(1 if any("error" in result for result in results.values()) else 0)


if __name__ == "__main__":
    main()
