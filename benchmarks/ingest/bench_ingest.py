"""Ingest throughput beside a bare Kafka relay, on the same broker in the same run (not a test).

    .venv/bin/python benchmarks/ingest/bench_ingest.py [-n 20000] [--runs 1]

1. Starts a broker and a PostgreSQL database as the tests do (``services.devenv``: ``KAFKA_BOOTSTRAP_SERVERS``
   / ``DATABASE_URL`` if set, else a fresh Tansu and the local or an embedded PostgreSQL).
2. Publishes N valid commandements de payer (distinct households) to ``exp.raw.cj.v1``.
3. Bare relay: an aiokafka consumer reads them (``getmany``), sends each to a scratch topic, awaits the
   acknowledgements, commits: the ceiling of any consume → produce service on this broker.
4. Ingest: starts the real service process (``python -m services.ingest``) on the same records and counts
   the canonical events on ``exp.procedure.notification.v1``, i.e. out of the outbox.
5. Prints both rates (from the first record out to the last) and their ratio. The issue's target:
   ingest ≥ 20 % of the bare relay.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import topics
from schemas.sources.samples import example_document, variant
from services.devenv import create_database, create_topics, drop_database, kafka_broker, postgres_server
from services.devenv.stack import ServiceProcesses, StackConfig

CJ_SIRET = "12345678900011"
RELAY_OUT = "bench.relay.out.v1"
TIMEOUT_S = 600.0


def payloads(count: int, run: str) -> list[bytes]:
    """``count`` distinct valid CJ acts: one household each, so each creates its procedure."""
    address = example_document("s01-cj-commandement-payer")["dwelling"]["address"]
    return [
        variant(
            "s01-cj-commandement-payer",
            external_ref=f"BENCH-{run}-{i:07d}",
            tenants=[{"last_name": f"Banc{i}", "first_name": "Léa"}],
            dwelling__address=address | {"line1": f"{i} rue du Banc d'Essai"},
        )
        for i in range(count)
    ]


async def publish(bootstrap: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1_048_576, max_request_size=8_388_608
    )
    await producer.start()
    try:
        futures = [await producer.send(topics.RAW_CJ, value, key=CJ_SIRET.encode()) for value in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def bare_relay(bootstrap: str, count: int) -> float:
    """Records/s of getmany → send all → gather → commit, from the first record read to the last acked."""
    consumer = AIOKafkaConsumer(
        topics.RAW_CJ,
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
    """(events/s from the first event to the last, seconds from subscribing to the last event)."""
    consumer = AIOKafkaConsumer(
        topics.PROCEDURE_NOTIFICATION,
        bootstrap_servers=bootstrap,
        group_id=f"bench-count-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=8_388_608,
    )
    await consumer.start()
    subscribed = time.perf_counter()
    seen: set[bytes] = set()  # event ids: the relay may publish a record twice, a rate counts it once
    first = 0.0
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while len(seen) < count:
                for batch in (await consumer.getmany(timeout_ms=200, max_records=5_000)).values():
                    first = first or time.perf_counter()
                    seen.update(dict(record.headers)["event_id"] for record in batch)
        last = time.perf_counter()
        return (len(seen) - 1) / (last - first), last - subscribed
    finally:
        await consumer.stop()


async def measure(count: int, bootstrap: str, database_url: str, logs: Path) -> tuple[float, float, float]:
    await publish(bootstrap, payloads(count, uuid.uuid4().hex[:6]))
    relay_rate = await bare_relay(bootstrap, count)
    os.environ["INGEST_HTTP_ENABLED"] = "false"  # ServiceProcesses passes this process's environment on
    services = ServiceProcesses(StackConfig(bootstrap, database_url, "127.0.0.1", 1, logs / "sms"), logs)
    counter = asyncio.create_task(count_events(bootstrap, count))
    services.start("ingest")
    try:
        ingest_rate, total_s = await counter
    finally:
        services.stop()
    return relay_rate, ingest_rate, total_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=20_000, help="notifications per run")
    parser.add_argument("--runs", type=int, default=1, help="runs, each on a fresh broker and database")
    args = parser.parse_args()
    results = []
    for run in range(args.runs):
        with kafka_broker() as broker, postgres_server() as server, tempfile.TemporaryDirectory() as tmp:
            name = f"prevex_bench_{uuid.uuid4().hex[:10]}"
            database_url = asyncio.run(create_database(server, name))
            try:
                asyncio.run(create_topics(broker.bootstrap_servers, [*topics.ALL_TOPICS, RELAY_OUT]))
                relay, ingest, total = asyncio.run(
                    measure(args.count, broker.bootstrap_servers, database_url, Path(tmp))
                )
            finally:
                asyncio.run(drop_database(server, name))
        results.append((relay, ingest))
        print(
            f"run {run + 1}: N={args.count} broker={broker.kind} | bare relay {relay:,.0f} msg/s"
            f" | ingest {ingest:,.0f} events/s ({total:.1f} s with start-up) | ratio {ingest / relay:.1%}"
        )
    if args.runs > 1:
        relay = statistics.median(r for r, _ in results)
        ingest = statistics.median(i for _, i in results)
        print(f"median of {args.runs}: bare relay {relay:,.0f} msg/s | ingest {ingest:,.0f} events/s", end="")
        print(f" | ratio {ingest / relay:.1%}")


if __name__ == "__main__":
    main()
