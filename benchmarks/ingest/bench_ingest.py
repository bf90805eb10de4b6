"""Ingest throughput beside a bare Kafka relay, on the same broker in the same run (not a test).

    .venv/bin/python benchmarks/ingest/bench_ingest.py [-n 20000] [--runs 1] [--emitters 1] [--replicas 1]

1. Starts a broker and a PostgreSQL database as the tests do (``services.devenv``: ``KAFKA_BOOTSTRAP_SERVERS``
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
   Tansu used per notification meanwhile (from ``/proc``: where the machine's cores went).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from schemas import topics
from schemas.sources.samples import example_document, variant
from services.devenv import create_database, create_topics, drop_database, kafka_broker, postgres_server
from services.devenv.stack import ServiceProcesses, StackConfig

RELAY_IN, RELAY_OUT = "bench.relay.in.v1", "bench.relay.out.v1"
PARTITIONS = 4  # of every topic the benchmark creates
TIMEOUT_S = 600.0


def emitter_ids(count: int) -> list[str]:
    """``count`` SIRET-shaped ids whose records land on distinct partitions, as far as there are partitions."""
    partition_of = DefaultPartitioner()
    chosen: list[str] = []
    used: set[int] = set()
    for number in range(100_000):
        siret = f"9999{number:010d}"
        partition = partition_of(siret.encode(), list(range(PARTITIONS)), list(range(PARTITIONS)))
        if partition not in used or len(used) == PARTITIONS:
            chosen.append(siret)
            used.add(partition)
        if len(chosen) == count:
            break
    return chosen


def write_emitters(path: Path, sirets: list[str]) -> None:
    entries = "".join(f'  - id: "{s}"\n    type: COMMISSAIRE_JUSTICE\n    name: "Étude {s}"\n' for s in sirets)
    path.write_text(f"emitters:\n{entries}", encoding="utf-8")


def payloads(count: int, run: str, sirets: list[str]) -> list[tuple[str, bytes]]:
    """``count`` distinct valid CJ acts, (emitter id, payload), spread over ``sirets`` in turn: one household
    each, so each creates its procedure."""
    address = example_document("s01-cj-commandement-payer")["dwelling"]["address"]
    return [
        (
            siret := sirets[i % len(sirets)],
            variant(
                "s01-cj-commandement-payer",
                external_ref=f"BENCH-{run}-{i:07d}",
                emitter__siret=siret,
                tenants=[{"last_name": f"Banc{i}", "first_name": "Léa"}],
                dwelling__address=address | {"line1": f"{i} rue du Banc d'Essai"},
            ),
        )
        for i in range(count)
    ]


async def publish(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1_048_576, max_request_size=8_388_608
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key.encode()) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def bare_relay(bootstrap: str, count: int) -> float:
    """Records/s of getmany → send all → gather → commit, from the first record read to the last acked."""
    consumer = AIOKafkaConsumer(
        RELAY_IN,
        bootstrap_servers=bootstrap,
        group_id=f"bench-relay-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=8_388_608,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1_048_576, max_request_size=8_388_608
    )
    await consumer.start()
    await producer.start()
    relayed, started = 0, 0.0
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while relayed < count:
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                records = [record for batch in batches.values() for record in batch]
                if not records:
                    continue
                started = started or time.perf_counter()
                futures = [await producer.send(RELAY_OUT, r.value, key=r.key) for r in records]
                await asyncio.gather(*futures)
                await consumer.commit()
                relayed += len(records)
        return relayed / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


async def count_events(bootstrap: str, count: int) -> tuple[float, float]:
    """(events/s from the first event sent to the last, seconds from publishing the acts to the last event seen)."""
    consumer = AIOKafkaConsumer(
        topics.PROCEDURE_NOTIFICATION,
        bootstrap_servers=bootstrap,
        group_id=f"bench-count-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=8_388_608,
    )
    started = time.perf_counter()  # about when the acts are published
    await consumer.start()
    seen: set[bytes] = set()  # event ids: the relay may publish a record twice, a rate counts it once
    first_ms, last_ms = 0, 0
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while len(seen) < count:
                for batch in (await consumer.getmany(timeout_ms=200, max_records=5_000)).values():
                    # The records' own timestamps (set by the outbox relay's producer when it sent them):
                    # the counter's lag in joining its group does not inflate the rate.
                    first_ms = min(first_ms or batch[0].timestamp, *(record.timestamp for record in batch))
                    last_ms = max(last_ms, *(record.timestamp for record in batch))
                    seen.update(dict(record.headers)["event_id"] for record in batch)
        return (len(seen) - 1) / max((last_ms - first_ms) / 1000, 0.001), time.perf_counter() - started
    finally:
        await consumer.stop()


CPU_GROUPS = {"ingest": b"services.ingest", "PostgreSQL": b"postgres", "Tansu": b"tansu"}
"""Processes whose CPU time is reported, by a string their command line contains."""


def cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds used so far by the live processes of each of :data:`CPU_GROUPS` (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys(CPU_GROUPS, 0.0)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes()
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        for group, marker in CPU_GROUPS.items():
            if marker in command:
                used[group] += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return used


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
    records = payloads(args.count, uuid.uuid4().hex[:6], sirets)
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
        before = cpu_seconds()
        await publish(bootstrap, topics.RAW_CJ, records)
        ingest_rate, total_s = await counter
        after = cpu_seconds()
    finally:
        for replica in replicas:
            replica.stop()
    cpu_us = {group: (after[group] - before[group]) / args.count * 1e6 for group in CPU_GROUPS}
    return Run(relay_rate, ingest_rate, total_s, cpu_us)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=20_000, help="notifications per run")
    parser.add_argument("--runs", type=int, default=1, help="runs, each on a fresh broker and database")
    parser.add_argument("--emitters", type=int, default=1, help="emitters (record keys) the acts come from")
    parser.add_argument("--replicas", type=int, default=1, help="ingest processes in the consumer group")
    parser.add_argument("--settle-s", type=float, default=5.0, help="wait for the replicas to join before publishing")
    args = parser.parse_args()
    results = []
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


if __name__ == "__main__":
    main()
