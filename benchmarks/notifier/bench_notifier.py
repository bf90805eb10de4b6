"""Notifier throughput: alerts/s delivered to a local SMTP server from a backlog of decisions (not a test).

    .venv/bin/python -m benchmarks.notifier.bench_notifier [-n 10000] [--concurrency 1,8,16] [--per-procedure 4]
                                                            [--json F]

For each concurrency setting, on a fresh broker and database (``devtools``, as the tests do):

1. Publishes a référentiel of ``--structures`` structures (one email contact each) and N
   ``orientation.decided`` events: N / per-procedure procedures, each with ``--per-procedure`` successive
   decisions (stages in order), each assigning the procedure's structure anew → N alerts, every alert of a
   procedure to the same structure (the notifier keeps order per procedure and structure). Keyed by procedure
   as orientation does.
2. Starts the real notifier process (``python -m services.notifier``) on that backlog, with
   ``NOTIFIER_SEND_CONCURRENCY`` (and the SMTP pool) set to the concurrency under test.
3. Waits until the SMTP server (aiosmtpd, same machine) accepted all N messages; prints the rate from the
   first message to the last (steady state) and from the process start (including start-up, consumption
   and expansion), and checks the order: each procedure's alerts (all to one structure) arrive in stage order.

``--sink devenv`` uses the project's ``SmtpSink`` (parses every message: about one core at ~250 msgs/s on
our 2-core machine, which then caps the measure); ``--sink light`` (default) an aiosmtpd server that
only keeps the raw bytes, parsed after the clock stopped (``benchmarks.common.LightSink``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from aiokafka import AIOKafkaProducer

from benchmarks.common import PG_BACKENDS, LightSink, ProcessWatch
from devtools import (
    SmtpSink,
    create_database,
    create_topics,
    drop_database,
    kafka_broker,
    postgres_server,
)
from devtools.sms_emulator import decided_event, structure_event
from devtools.stack import ServiceProcesses, StackConfig
from schemas import topics
from schemas.orientation import OrientationDecidedEvent
from schemas.referential import Channels, Contact, ReferentialChangedEvent
from schemas.stages import Stage, stage_label

STAGES = (Stage.COMMANDEMENT_PAYER, Stage.ASSIGNATION, Stage.AUDIENCE, Stage.DECISION, Stage.COMMANDEMENT_QUITTER)
TIMEOUT_S = 900.0


class DevenvSink(SmtpSink):
    def count(self) -> int:
        return len(self.messages)

    def subjects(self) -> list[str]:
        return [str(mail.message["Subject"]) for mail in self.messages]


def referential(count: int) -> list[ReferentialChangedEvent]:
    """``count`` structures with one generic email contact each; the first is the default referent."""
    return [
        structure_event(
            f"BENCH-{i:03d}",
            [
                Contact(
                    id=f"BENCH-{i:03d}-MAIL",
                    label="Boîte générique",
                    email=f"structure{i}@bench.test",
                    channels_enabled=Channels(email=True),
                    is_generic_mailbox=True,
                )
            ],
            default_referent=i == 0,
        )
        for i in range(count)
    ]


def decisions(count: int, per_procedure: int, structures: int) -> list[OrientationDecidedEvent]:
    """``count`` decisions; procedure p gets ``per_procedure`` of them, stage after stage (publish order)."""
    events = []
    for p in range(count // per_procedure):
        procedure_id = uuid.uuid4()
        events += [
            decided_event(
                f"90-2026-{p:06d}",
                [f"BENCH-{p % structures:03d}"],
                stage=STAGES[step],
                procedure_id=procedure_id,
            )
            for step in range(per_procedure)
        ]
    return events


async def publish(bootstrap: str, structures: int, backlog: list[OrientationDecidedEvent]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1_048_576, max_request_size=8_388_608
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topics.REFERENTIAL_CHANGED, e.model_dump_json().encode(), key=e.key.encode())
            for e in referential(structures)
        ]
        futures += [
            await producer.send(
                topics.ORIENTATION_DECIDED, e.model_dump_json().encode(), key=str(e.payload.procedure_id).encode()
            )
            for e in backlog
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def trickle(bootstrap: str, sink: LightSink, count: int, structures: int) -> list[float]:
    """Once the backlog is sent: ``count`` decisions one at a time, each after the notifier went idle (0.5 s
    apart); returns each one's latency in ms, from its publication to its email accepted by the SMTP server.
    What an idle notifier adds (waking up) shows here, beside the broker's fetch wait."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    latencies = []
    try:
        for i in range(count):
            await asyncio.sleep(0.5)
            event = decided_event(f"90-2027-{i:06d}", [f"BENCH-{i % structures:03d}"])
            before = sink.count()
            sent_at = time.time()
            await producer.send_and_wait(
                topics.ORIENTATION_DECIDED,
                event.model_dump_json().encode(),
                key=str(event.payload.procedure_id).encode(),
            )
            deadline = time.perf_counter() + 60
            while sink.count() == before and time.perf_counter() < deadline:  # noqa: ASYNC110 (another thread's list)
                await asyncio.sleep(0.001)
            if sink.count() > before:
                latencies.append(1000 * (sink.received()[-1].at - sent_at))
    finally:
        await producer.stop()
    return latencies


def order_violations(subjects: list[str], per_procedure: int) -> int:
    """Procedures whose alerts did not arrive in stage order."""
    labels = {stage_label(stage): rank for rank, stage in enumerate(STAGES[:per_procedure])}
    seen: dict[str, list[int]] = defaultdict(list)
    for subject in subjects:
        ref = subject.split("Dossier ", 1)[1].split(" ", 1)[0]
        seen[ref].append(next(rank for label, rank in labels.items() if f"– {label} –" in subject))
    return sum(1 for ranks in seen.values() if ranks != sorted(ranks))


def run_once(
    n: int, *, per_procedure: int, structures: int, concurrency: int, workdir: Path, sink_kind: str, trickles: int
) -> dict[str, float]:
    backlog = decisions(n, per_procedure, structures)
    expected = len(backlog)
    name = f"prevex_bench_notifier_{uuid.uuid4().hex[:8]}"
    with (
        kafka_broker() as broker,
        postgres_server() as server,
        LightSink() if sink_kind == "light" else DevenvSink() as sink,
    ):
        database_url = asyncio.run(create_database(server, name))
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL_TOPICS))
        asyncio.run(publish(broker.bootstrap_servers, structures, backlog))
        os.environ |= {
            "NOTIFIER_SEND_CONCURRENCY": str(concurrency),
            "NOTIFIER_SMTP_POOL_SIZE": str(concurrency),
            "NOTIFIER_LOG_LEVEL": "WARNING",
        }
        config = StackConfig(broker.bootstrap_servers, database_url, sink.host, sink.port, workdir / "sms")
        services = ServiceProcesses(config, workdir / f"logs-{concurrency}")
        watch = ProcessWatch(("notifier",), broker.bootstrap_servers, name)
        before, harness_before = watch.snapshot(), time.process_time()
        started = time.perf_counter()
        services.start("notifier")
        try:
            first = None
            deadline = started + TIMEOUT_S
            while (count := sink.count()) < expected:
                if first is None and count:
                    first = time.perf_counter()
                if time.perf_counter() > deadline or not services.running("notifier"):
                    raise RuntimeError(f"{count}/{expected} alerts after {time.perf_counter() - started:.0f} s")
                time.sleep(0.01)
            done = time.perf_counter()
            cpu = ProcessWatch.cpu_between(before, watch.snapshot())
            harness_s = time.process_time() - harness_before
            subjects = sink.subjects()
            if isinstance(sink, LightSink) and trickles:
                latencies = sorted(asyncio.run(trickle(broker.bootstrap_servers, sink, trickles, structures)))
            else:
                latencies = []
        finally:
            services.stop()
            asyncio.run(drop_database(server, name))
        first = first or done
        return {
            "alerts": expected,
            "first_s": first - started,
            "total_s": done - started,
            "steady_rate": expected / max(done - first, 1e-9),
            "overall_rate": expected / (done - started),
            "order_violations": order_violations(subjects, per_procedure),
            "duplicates": len(subjects) - expected,
            # CPU per email over the whole run (start-up included: ~1-2 s of imports and migrations).
            "notifier_cpu_ms": 1000 * cpu["notifier"] / expected,
            "postgres_cpu_ms": 1000 * cpu[PG_BACKENDS] / expected,
            "tansu_cpu_ms": 1000 * cpu["Tansu"] / expected,
            # This process: mostly the SMTP server, which shares the machine with the notifier.
            "harness_cpu_ms": 1000 * harness_s / expected,
            "notifier_cores": cpu["notifier"] / (done - started),
            "load_1min": os.getloadavg()[0],
            "trickle_p50_ms": latencies[len(latencies) // 2] if latencies else float("nan"),
            "trickle_max_ms": latencies[-1] if latencies else float("nan"),
            "trickle_lost": trickles - len(latencies) if isinstance(sink, LightSink) else 0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000, help="decisions in the backlog (one alert each)")
    parser.add_argument("--per-procedure", type=int, default=4, choices=range(1, len(STAGES) + 1))
    parser.add_argument("--structures", type=int, default=50)
    parser.add_argument("--concurrency", default="1,8,16", help="comma-separated NOTIFIER_SEND_CONCURRENCY values")
    parser.add_argument("--sink", choices=("light", "devenv"), default="light", help="SMTP server (see above)")
    parser.add_argument("--json", type=Path, help="also write the results there, by concurrency")
    parser.add_argument(
        "--trickle", type=int, default=20, help="decisions sent one at a time after the backlog (light sink only)"
    )
    args = parser.parse_args()
    report: dict[str, dict[str, float]] = {}
    print(
        f"backlog: {args.n} decisions, {args.per_procedure} per procedure, {args.structures} structures;"
        f" SMTP server: {args.sink}"
    )
    print(
        "concurrency  alerts  first(s)  total(s)  steady alerts/s  overall alerts/s  order violations  duplicates"
        "  CPU ms/email: notifier  PG backends  Tansu  SMTP server (harness)  notifier cores  load"
        "  trickle ms: p50  max  lost"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            r = run_once(
                args.n,
                per_procedure=args.per_procedure,
                structures=args.structures,
                concurrency=concurrency,
                workdir=Path(tmp),
                sink_kind=args.sink,
                trickles=args.trickle,
            )
            print(
                f"{concurrency:>11}  {r['alerts']:>6.0f}  {r['first_s']:>8.1f}  {r['total_s']:>8.1f}"
                f"  {r['steady_rate']:>15.0f}  {r['overall_rate']:>16.0f}  {r['order_violations']:>16.0f}"
                f"  {r['duplicates']:>10.0f}  {r['notifier_cpu_ms']:>22.2f}  {r['postgres_cpu_ms']:>11.2f}"
                f"  {r['tansu_cpu_ms']:>5.2f}  {r['harness_cpu_ms']:>21.2f}  {r['notifier_cores']:>14.2f}"
                f"  {r['load_1min']:>4.1f}  {r['trickle_p50_ms']:>15.0f}  {r['trickle_max_ms']:>4.0f}"
                f"  {r['trickle_lost']:>4.0f}",
                flush=True,
            )
            report[f"concurrency {concurrency}"] = r
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), "utf-8")


if __name__ == "__main__":
    main()
