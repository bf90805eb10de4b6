"""Ingest throughput beside a bare Kafka relay, on the same broker in the same run (not a test).

    .venv/bin/python -m benchmarks.ingest.bench_ingest [-n 20000] [--runs 1] [--emitters 1] [--replicas 1] [--json F]

1. Starts a broker and a PostgreSQL database as the tests do (``devtools``: ``KAFKA_BOOTSTRAP_SERVERS``
   / ``DATABASE_URL`` if set, else a fresh Tansu and the local or an embedded PostgreSQL).
2. Makes N valid commandements de payer (distinct households) from ``--emitters`` études of commissaires
   de justice (registered in a scratch emitters file; the record key is the emitter id, so one emitter
   fills one partition, and several are chosen to fill distinct partitions).
3. Bare relay: publishes them to a scratch topic; an aiokafka consumer reads them (``getmany``), sends each
   to another scratch topic, awaits the acknowledgements, commits: the ceiling of any consume → produce
   service on this broker.
4. Ingest: starts ``--replicas`` real service processes (``python -m services.ingest``, one consumer group),
   lets them join (``--settle-s``), publishes the same records to ``exp.raw.cj.v1`` and counts the
   canonical events on ``exp.procedure.notification.v1``, i.e. out of the outbox.
5. Prints both rates and their ratio: the relay's from the first record read to the last acknowledged,
   ingest's from the timestamps of the first and last events it sent (its start-up is not counted). The
   issue's target: ingest ≥ 20 % of the bare relay. Then the CPU time the ingest processes, PostgreSQL and
   Tansu used per notification meanwhile (from ``/proc``, this run's processes only: where the machine's
   cores went; ``benchmarks.common.ProcessWatch``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.common import (
    PARTITIONS,
    RELAY_IN,
    RELAY_OUT,
    TIMEOUT_S,
    ProcessWatch,
    act_payloads,
    bare_relay,
    consumer,
    emitter_ids,
    publish,
    write_emitters,
)
from devtools import create_database, create_topics, drop_database, kafka_broker, postgres_server
from devtools.stack import ServiceProcesses, StackConfig
from schemas import topics


async def count_events(bootstrap: str, count: int) -> tuple[float, float]:
    """(events/s from the first event sent to the last, seconds from publishing the acts to the last event seen)."""
    reader = consumer(bootstrap, topics.PROCEDURE_NOTIFICATION)
    started = time.perf_counter()  # about when the acts are published
    await reader.start()
    seen: set[bytes] = set()  # event ids: the relay may publish a record twice, a rate counts it once
    first_ms, last_ms = 0, 0
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while len(seen) < count:
                for batch in (await reader.getmany(timeout_ms=200, max_records=5_000)).values():
                    # The records' own timestamps (set by the outbox relay's producer when it sent them):
                    # the counter's lag in joining its group does not inflate the rate.
                    first_ms = min(first_ms or batch[0].timestamp, *(record.timestamp for record in batch))
                    last_ms = max(last_ms, *(record.timestamp for record in batch))
                    seen.update(dict(record.headers)["event_id"] for record in batch)
        return (len(seen) - 1) / max((last_ms - first_ms) / 1000, 0.001), time.perf_counter() - started
    finally:
        await reader.stop()


@dataclass(frozen=True)
class Run:
    relay_rate: float
    ingest_rate: float
    total_s: float
    cpu_us: dict[str, float]
    """CPU µs per notification of each process group, from publishing to the last event."""


async def measure(args: argparse.Namespace, bootstrap: str, database_url: str, tmp: Path) -> Run:
    sirets = emitter_ids(args.emitters)
    write_emitters(tmp / "emitters.yaml", sirets)
    records = act_payloads(args.count, uuid.uuid4().hex[:6], sirets)
    watch = ProcessWatch(("ingest",), bootstrap, database_url.rsplit("/", 1)[1])
    await publish(bootstrap, RELAY_IN, records)
    relay_rate = await bare_relay(bootstrap, args.count)
    config = StackConfig(bootstrap, database_url, "127.0.0.1", 1, tmp / "sms")
    settings = {"INGEST_HTTP_ENABLED": "false", "INGEST_EMITTERS_PATH": str(tmp / "emitters.yaml")}
    replicas = [ServiceProcesses(config, tmp / f"replica-{n}", extra_env=settings) for n in range(args.replicas)]
    for replica in replicas:
        replica.start("ingest")
    try:
        # The replicas join their group before the acts arrive: the rate is the steady state's, not that of
        # one replica working while the others join and the group rebalances.
        await asyncio.sleep(args.settle_s)
        counter = asyncio.create_task(count_events(bootstrap, args.count))
        before = watch.snapshot()
        await publish(bootstrap, topics.RAW_CJ, records)
        ingest_rate, total_s = await counter
        after = watch.snapshot()
    finally:
        for replica in replicas:
            replica.stop()
    cpu_us = {group: s / args.count * 1e6 for group, s in ProcessWatch.cpu_between(before, after).items()}
    return Run(relay_rate, ingest_rate, total_s, cpu_us)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=20_000, help="notifications per run")
    parser.add_argument("--runs", type=int, default=1, help="runs, each on a fresh broker and database")
    parser.add_argument("--emitters", type=int, default=1, help="emitters (record keys) the acts come from")
    parser.add_argument("--replicas", type=int, default=1, help="ingest processes in the consumer group")
    parser.add_argument("--settle-s", type=float, default=5.0, help="wait for the replicas to join before publishing")
    parser.add_argument("--json", type=Path, help="also write each run's results there")
    args = parser.parse_args()
    results = []
    runs: list[Run] = []
    for run in range(args.runs):
        with kafka_broker() as broker, postgres_server() as server, tempfile.TemporaryDirectory() as tmp:
            name = f"prevex_bench_{uuid.uuid4().hex[:10]}"
            database_url = asyncio.run(create_database(server, name))
            try:
                names = [*topics.ALL_TOPICS, RELAY_IN, RELAY_OUT]
                asyncio.run(create_topics(broker.bootstrap_servers, names, PARTITIONS))
                result = asyncio.run(measure(args, broker.bootstrap_servers, database_url, Path(tmp)))
            finally:
                asyncio.run(drop_database(server, name))
        relay, ingest = result.relay_rate, result.ingest_rate
        results.append((relay, ingest))
        runs.append(result)
        print(
            f"run {run + 1}: N={args.count} emitters={args.emitters} replicas={args.replicas} broker={broker.kind}"
            f" | bare relay {relay:,.0f} msg/s"
            f" | ingest {ingest:,.0f} events/s ({result.total_s:.1f} s from publishing to the last event)"
            f" | ratio {ingest / relay:.1%}"
        )
        cpu = ", ".join(f"{group} {us:,.0f}" for group, us in result.cpu_us.items())
        print(f"       CPU µs per notification: {cpu}")
    if args.runs > 1:
        relay = statistics.median(r for r, _ in results)
        ingest = statistics.median(i for _, i in results)
        print(f"median of {args.runs}: bare relay {relay:,.0f} msg/s | ingest {ingest:,.0f} events/s", end="")
        print(f" | ratio {ingest / relay:.1%}")
    if args.json:
        summary = {"notifications": args.count, "emitters": args.emitters, "replicas": args.replicas}
        report = summary | {
            f"run {n + 1}": asdict(r) | {"ratio": r.ingest_rate / r.relay_rate} for n, r in enumerate(runs)
        }
        args.json.write_text(json.dumps(report, indent=2), "utf-8")


if __name__ == "__main__":
    main()
