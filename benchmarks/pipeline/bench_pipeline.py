"""Whole pipeline: raw CJ acts on Kafka → ingest → orientation → notifier → emails at an SMTP server (not a test).

    .venv/bin/python -m benchmarks.pipeline.bench_pipeline [--acts 10000] [--rate 50 --duration 60] [--quick]
                                                            [--json PATH]

One run, on a fresh Tansu broker (unless ``KAFKA_BOOTSTRAP_SERVERS``) and a fresh database, with the three
services as real processes started as ``make run`` and tests/e2e do (``devtools.stack``), sending to a
local SMTP server that only timestamps what it accepts (``benchmarks.common.LightSink``):

1. Backlog drain: publishes ``--acts`` commandements de payer (scenario S-01 in Belfort, one household each:
   three structures, one email each), and the same records to a scratch topic that a bare aiokafka relay
   drains first (msgs/s, the ceiling of any consume → produce on this broker); then starts the services and
   waits for every email. Acts/s end to end (services started → last email) and per stage (canonical
   notifications, decisions, emails: first to last of each).
2. Latency at a fixed rate: ``--rate`` acts/s for ``--duration`` s on the running services, each act also sent
   to the bare relay, running meanwhile. Per act, from the records' timestamps and the SMTP server's receive
   time: act → canonical notification (ingest), → decision (orientation), → last of its emails (notifier), and
   end to end; p50/p95/p99/max, and end to end over the first third of the acts against the last third.
Between the two, the services idle ``--idle-s`` seconds: the cores each process keeps busy with nothing to do
(fetches, heartbeats, polls), the floor under the paced phase's CPU per act.

3. Each phase reports CPU ms per act of each process (ingest, orientation, notifier, Tansu, PostgreSQL, and
   this benchmark's own process) from ``/proc``, the cores they kept busy, their RSS (peak, first and last
   sample), the machine's load average at start and end, and what was lost or duplicated: emails counted per
   expected (procedure, recipient), expected being the email contacts of the structures each decision names.
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PARTITIONS,
    PG_SERVER,
    RELAY_IN,
    RELAY_OUT,
    TIMEOUT_S,
    LightSink,
    ProcessWatch,
    Received,
    act_payloads,
    bare_relay,
    consumer,
    cpu_reference_ms,
    emitter_ids,
    percentiles,
    producer,
    publish,
    relay_hops_ms,
    write_emitters,
)
from benchmarks.report import pipeline_markdown
from benchmarks.statements import StatementStats
from devtools import create_database, create_topics, drop_database, kafka_broker, postgres_server
from devtools.stack import FETCH_MAX_WAIT_MS, ServiceProcesses, StackConfig
from schemas import topics
from services.orientation.domain.referential_yaml import load_referential

SERVICES = ("ingest", "orientation", "notifier")
PACED_IN, PACED_OUT = "bench.relay.paced.in.v1", "bench.relay.paced.out.v1"
STARTUP_S = 180.0  # the services' start-up on a busy machine (imports, migrations, joining their groups)
EMITTERS = PARTITIONS  # one emitter (record key) per partition: ingest's partitions all work


def recipients_by_structure(referential_path: Path) -> dict[str, frozenset[str]]:
    """Each structure's email addresses, as the notifier alerts them (contacts with the email channel on)."""
    referential = load_referential(referential_path.read_text("utf-8"))
    return {
        s.id: frozenset(str(c.email) for c in s.contacts if c.email is not None and c.channels_enabled.email)
        for s in referential.structures
    }


@dataclass
class Tap:
    """Reads the canonical notifications and the decisions from the start of their topics as they come.

    A record the outbox relay sent twice (at-least-once) is kept at its first timestamp."""

    bootstrap: str
    notifications: dict[str, tuple[float, str]] = field(default_factory=dict)
    """external ref of the act → (record timestamp s, procedure short ref)"""
    decisions: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    """procedure short ref → (record timestamp s, structure ids)"""

    async def run(self) -> None:
        reader = consumer(self.bootstrap, topics.PROCEDURE_NOTIFICATION, topics.ORIENTATION_DECIDED)
        await reader.start()
        try:
            while True:
                for batch in (await reader.getmany(timeout_ms=200, max_records=5_000)).values():
                    for record in batch:
                        self._add(record.topic, record.timestamp / 1000, json.loads(record.value)["payload"])
        finally:
            await reader.stop()

    def _add(self, topic: str, at: float, payload: dict[str, Any]) -> None:
        if topic == topics.PROCEDURE_NOTIFICATION:
            external_ref = payload["notification"]["source"]["external_ref"]
            self.notifications.setdefault(external_ref, (at, payload["procedure_short_ref"]))
        else:
            structures = frozenset(a["structure_id"] for a in payload["assignments"])
            self.decisions.setdefault(payload["procedure_short_ref"], (at, structures))


@dataclass(frozen=True)
class Stack:
    """One run's broker, database, SMTP server and services, and how to tell their processes apart."""

    bootstrap: str
    tap: Tap
    sink: LightSink
    watch: ProcessWatch
    recipients: dict[str, frozenset[str]]
    statements: StatementStats
    fetch_wait_ms: int
    """the services' and the bare relay's: the relay is measured with the services' own settings"""


def expected_pairs(stack: Stack, external_refs: Iterable[str]) -> set[tuple[str, str]]:
    """(procedure ref, recipient) each act's decision calls for, as far as the tap has seen them."""
    pairs = set()
    for external_ref in external_refs:
        if (notification := stack.tap.notifications.get(external_ref)) is None:
            continue
        if (decision := stack.tap.decisions.get(notification[1])) is None:
            continue
        pairs |= {(notification[1], rcpt) for s in decision[1] for rcpt in stack.recipients.get(s, ())}
    return pairs


async def until_delivered(
    stack: Stack, external_refs: list[str], emails_before: int, stall_s: float, startup_s: float = 0.0
) -> None:
    """Wait until every act has its decision and the SMTP server as many emails (since ``emails_before``) as
    those decisions call for, or until nothing moved for ``stall_s`` s (plus ``startup_s`` the first time:
    services just started) — the caller counts what is missing."""
    last, last_change = (len(stack.tap.notifications), -1, -1), time.monotonic() + startup_s
    while True:
        decided = sum(
            1
            for ref in external_refs
            if (n := stack.tap.notifications.get(ref)) is not None and n[1] in stack.tap.decisions
        )
        emails = stack.sink.count() - emails_before
        if decided == len(external_refs) and emails >= len(expected_pairs(stack, external_refs)):
            return
        progress = (len(stack.tap.notifications), len(stack.tap.decisions), emails)
        if progress != last:
            last, last_change = progress, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            return
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Delivery:
    """What the pipeline made of a batch of acts, and each act's hop times (s) when it got all its emails."""

    counts: dict[str, int]
    hops: dict[str, dict[str, float]]
    """external ref → hop name → seconds (only acts with a decision and every expected email)"""


def delivery(stack: Stack, external_refs: list[str], mails: list[Received], sent: dict[str, float]) -> Delivery:
    """Count per expected (procedure, recipient) the emails received: lost (none), duplicated (one too many
    each), unexpected (a pair no decision asked for); and time each complete act's hops."""
    received: dict[tuple[str | None, str], list[float]] = defaultdict(list)
    for mail in mails:
        for rcpt in mail.rcpt_tos:
            received[(mail.procedure_ref(), rcpt)].append(mail.at)
    expected = expected_pairs(stack, external_refs)
    counts = {
        "acts": len(external_refs),
        "acts_without_notification": sum(ref not in stack.tap.notifications for ref in external_refs),
        "acts_without_decision": sum(
            (n := stack.tap.notifications.get(ref)) is None or n[1] not in stack.tap.decisions for ref in external_refs
        ),
        "emails_expected": len(expected),
        "emails_received": sum(len(times) for times in received.values()),
        "emails_lost": sum(1 for pair in expected if not received.get(pair)),
        "emails_duplicated": sum(len(received[pair]) - 1 for pair in expected if len(received.get(pair, ())) > 1),
        "emails_unexpected": sum(len(times) for pair, times in received.items() if pair not in expected),
    }
    hops: dict[str, dict[str, float]] = {}
    for ref in external_refs:
        notification = stack.tap.notifications.get(ref)
        decision = stack.tap.decisions.get(notification[1]) if notification else None
        if notification is None or decision is None or ref not in sent:
            continue
        rcpts = [(notification[1], r) for s in decision[1] for r in stack.recipients.get(s, ())]
        if not rcpts or any(not received.get(pair) for pair in rcpts):
            continue
        last_email = max(min(received[pair]) for pair in rcpts)
        hops[ref] = {
            "ingest": notification[0] - sent[ref],
            "orientation": decision[0] - notification[0],
            "notifier": last_email - decision[0],
            "end_to_end": last_email - sent[ref],
        }
    return Delivery(counts, hops)


def span_rate(times: list[float]) -> float | None:
    """Events/s from the first to the last of ``times`` (None under two events)."""
    if len(times) < 2:
        return None
    return (len(times) - 1) / max(max(times) - min(times), 1e-3)


def usage(before: dict[str, Any], after: dict[str, Any], acts: int, wall_s: float, harness_s: float) -> dict[str, Any]:
    """CPU ms per act of each process group (and this benchmark's process), and the cores the stack kept busy:
    with PostgreSQL's server processes, and without them (on a shared server they work for every database)."""
    cpu = ProcessWatch.cpu_between(before, after) | {"benchmark harness": harness_s}
    stack_s = sum(seconds for group, seconds in cpu.items() if group != "benchmark harness")
    own_s = stack_s - cpu[PG_SERVER]
    return {
        "cpu_ms_per_act": {group: seconds / acts * 1000 for group, seconds in cpu.items()},
        "cpu_ms_per_act_stack": stack_s / acts * 1000,
        "cores_busy_stack": stack_s / wall_s,
        "cpu_ms_per_act_stack_without_pg_server": own_s / acts * 1000,
        "cores_busy_stack_without_pg_server": own_s / wall_s,
    }


async def backlog_phase(
    stack: Stack, services: ServiceProcesses, count: int, run: str, stall_s: float
) -> dict[str, Any]:
    sirets = emitter_ids(EMITTERS)
    records = act_payloads(count, run, sirets)
    external_refs = [f"BENCH-{run}-{i:07d}" for i in range(count)]
    await publish(stack.bootstrap, RELAY_IN, records)
    relay_rate = await bare_relay(stack.bootstrap, count, fetch_wait_ms=stack.fetch_wait_ms)
    await publish(stack.bootstrap, topics.RAW_CJ, records)
    load_start = os.getloadavg()
    statements = await stack.statements.snapshot()
    before, harness_before = stack.watch.snapshot(), time.process_time()
    started = time.time()
    services.start(*SERVICES)
    stack.watch.start_sampling()
    await until_delivered(stack, external_refs, 0, stall_s, STARTUP_S)
    mails = stack.sink.received()
    done = max((m.at for m in mails), default=time.time())
    after, harness_s = stack.watch.snapshot(), time.process_time() - harness_before
    found = delivery(stack, external_refs, mails, {})
    notified = [stack.tap.notifications[r][0] for r in external_refs if r in stack.tap.notifications]
    decided = [d[0] for d in stack.tap.decisions.values()]
    return {
        "acts": count,
        "wall_s": done - started,
        "startup_s": (min(notified) - started) if notified else None,
        "acts_per_s_end_to_end": count / (done - started),
        "acts_per_s_after_startup": count / (done - min(notified)) if notified else None,
        "notifications_per_s": span_rate(notified),
        "decisions_per_s": span_rate(decided),
        "emails_per_s": span_rate([m.at for m in mails]),
        "relay_msgs_per_s": relay_rate,
        **usage(before, after, count, done - started, harness_s),
        "rss_mib": stack.watch.rss_mib(started, done),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "delivery": found.counts,
        "statements": StatementStats.between(statements, await stack.statements.snapshot()),
    }


async def idle_phase(stack: Stack, seconds: float) -> dict[str, Any]:
    """The cores each process group keeps busy with nothing to do (services running, no act coming): the
    polling floor under the paced phase's CPU per act — fetch requests, heartbeats, the notifier's dispatch
    poll. Tansu's share includes serving this benchmark's own readers (the tap)."""
    load_start = os.getloadavg()
    statements = await stack.statements.snapshot()
    before, harness_before = stack.watch.snapshot(), time.process_time()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    wall_s = time.monotonic() - started
    cpu = ProcessWatch.cpu_between(before, stack.watch.snapshot())
    cpu["benchmark harness"] = time.process_time() - harness_before
    stack_s = sum(seconds for group, seconds in cpu.items() if group not in {"benchmark harness", PG_SERVER})
    return {
        "wall_s": wall_s,
        "cores_busy": {group: seconds / wall_s for group, seconds in cpu.items()},
        "cores_busy_stack_without_pg_server": stack_s / wall_s,
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "statements": StatementStats.between(statements, await stack.statements.snapshot()),
    }


async def paced_publish(
    bootstrap: str, records: list[tuple[str, bytes]], refs: list[str], rate: float
) -> dict[str, float]:
    """Publish each act at its time (``rate`` per second) to the raw topic and to the relay's, both with the
    same timestamp; returns each act's timestamp (epoch s)."""
    sender = producer(bootstrap, linger_ms=0)
    await sender.start()
    sent: dict[str, float] = {}
    futures = []
    try:
        t0 = time.monotonic()
        for i, ((key, value), ref) in enumerate(zip(records, refs, strict=True)):
            if (delay := t0 + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            ms = int(time.time() * 1000)
            futures.append(await sender.send(topics.RAW_CJ, value, key=key.encode(), timestamp_ms=ms))
            futures.append(await sender.send(PACED_IN, value, key=key.encode(), timestamp_ms=ms))
            sent[ref] = ms / 1000
        await asyncio.gather(*futures)
    finally:
        await sender.stop()
    return sent


def growth(hops: dict[str, dict[str, float]], sent: dict[str, float]) -> dict[str, float | None]:
    """End-to-end p50 / p99 (ms) of the first third of the acts (by send time) and of the last third."""
    ordered = sorted(hops, key=sent.__getitem__)
    third = len(ordered) // 3
    first = percentiles([hops[r]["end_to_end"] * 1000 for r in ordered[:third]])
    last = percentiles([hops[r]["end_to_end"] * 1000 for r in ordered[len(ordered) - third :]])
    return {
        "first_third_p50": first["p50"],
        "last_third_p50": last["p50"],
        "first_third_p99": first["p99"],
        "last_third_p99": last["p99"],
    }


async def latency_phase(  # noqa: PLR0917
    stack: Stack, rate: float, duration_s: float, run: str, first: int, stall_s: float
) -> dict[str, Any]:
    count = max(1, round(rate * duration_s))
    records = act_payloads(count, run, emitter_ids(EMITTERS), first=first)
    external_refs = [f"BENCH-{run}-{i:07d}" for i in range(first, first + count)]
    emails_before = stack.sink.count()
    load_start = os.getloadavg()
    statements = await stack.statements.snapshot()
    before, harness_before = stack.watch.snapshot(), time.process_time()
    started = time.time()
    joined = asyncio.Event()
    relay = asyncio.create_task(
        bare_relay(
            stack.bootstrap,
            count,
            PACED_IN,
            PACED_OUT,
            joined=joined,
            within_s=duration_s + TIMEOUT_S,
            fetch_wait_ms=stack.fetch_wait_ms,
        )
    )
    await joined.wait()
    sent = await paced_publish(stack.bootstrap, records, external_refs, rate)
    await until_delivered(stack, external_refs, emails_before, stall_s)
    mails = stack.sink.received()[emails_before:]
    done = max((m.at for m in mails), default=time.time())
    after, harness_s = stack.watch.snapshot(), time.process_time() - harness_before
    relay_rate = await relay
    relay_hops = await relay_hops_ms(stack.bootstrap, count, PACED_OUT)
    found = delivery(stack, external_refs, mails, sent)
    hops_ms = {
        hop: percentiles([times[hop] * 1000 for times in found.hops.values()])
        for hop in ("ingest", "orientation", "notifier", "end_to_end")
    }
    hops_ms["bare_relay"] = percentiles(relay_hops)
    relay_p50 = hops_ms["bare_relay"]["p50"]
    return {
        "rate": rate,
        "duration_s": duration_s,
        "acts": count,
        "wall_s": done - started,
        "hops_ms": hops_ms,
        "hop_p50_over_relay_p50": {
            hop: (hops_ms[hop]["p50"] or 0) / relay_p50 if relay_p50 else None for hop in ("ingest", "orientation")
        },
        "relay_msgs_per_s": relay_rate,
        "growth_ms": growth(found.hops, sent),
        **usage(before, after, count, done - started, harness_s),
        "rss_mib": stack.watch.rss_mib(started, done),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "delivery": found.counts,
        "statements": StatementStats.between(statements, await stack.statements.snapshot()),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both phases on one fresh broker, database and set of services; the results as a JSON-able dict."""
    tag = uuid.uuid4().hex[:6]
    reference_ms = cpu_reference_ms()  # before anything of ours runs: the machine as the run found it
    with (
        tempfile.TemporaryDirectory(prefix="prevex-bench-") as tmp,
        kafka_broker() as broker,
        postgres_server() as server,
        LightSink() as sink,
    ):
        work = Path(tmp)
        write_emitters(work / "emitters.yaml", emitter_ids(EMITTERS))
        name = f"prevex_bench_{tag}"
        database_url = await create_database(server, name)
        names = [*topics.ALL_TOPICS, RELAY_IN, RELAY_OUT, PACED_IN, PACED_OUT]
        await create_topics(broker.bootstrap_servers, names, PARTITIONS)
        config = StackConfig(
            broker.bootstrap_servers,
            database_url,
            sink.host,
            sink.port,
            work / "sms",
            emitters_path=work / "emitters.yaml",
            kafka_fetch_max_wait_ms=args.fetch_wait_ms,
        )
        services = ServiceProcesses(config, work / "logs")
        stack = Stack(
            broker.bootstrap_servers,
            Tap(broker.bootstrap_servers),
            sink,
            ProcessWatch(SERVICES, broker.bootstrap_servers, name),
            recipients_by_structure(config.referential_path),
            StatementStats(database_url),
            args.fetch_wait_ms,
        )
        tap = asyncio.create_task(stack.tap.run())
        try:
            backlog = await backlog_phase(stack, services, args.acts, tag, args.stall_s)
            await asyncio.sleep(2)  # the services back to idle: the paced phase starts from a steady state
            idle = await idle_phase(stack, args.idle_s)
            latency = await latency_phase(stack, args.rate, args.duration, tag, args.acts, args.stall_s)
        finally:
            tap.cancel()
            stack.watch.stop_sampling()
            services.stop()
            await drop_database(server, name)
    return {
        "broker": broker.kind,
        "postgres": server.kind,
        "cpus": os.cpu_count(),
        "cpu_reference_ms": reference_ms,
        "fetch_wait_ms": args.fetch_wait_ms,
        "backlog": backlog,
        "idle": idle,
        "latency": latency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acts", type=int, help="acts in the backlog (default 10,000; 1,000 with --quick)")
    parser.add_argument("--rate", type=float, default=50.0, help="acts/s in the latency phase")
    parser.add_argument("--duration", type=float, help="seconds of the latency phase (default 60; 20 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: smaller defaults (explicit values stand)")
    parser.add_argument("--idle-s", type=float, default=10.0, help="seconds idle between the phases (CPU floor)")
    parser.add_argument("--stall-s", type=float, default=60.0, help="give up after this long without progress")
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=FETCH_MAX_WAIT_MS,
        help=f"the services' and the bare relay's Kafka fetch wait (default: the local stack's, {FETCH_MAX_WAIT_MS})",
    )
    parser.add_argument("--json", type=Path, help="also write the results there")
    args = parser.parse_args()
    args.acts = args.acts or (1_000 if args.quick else 10_000)
    args.duration = args.duration or (20.0 if args.quick else 60.0)
    result = asyncio.run(run(args))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), "utf-8")
    print(pipeline_markdown(result))


if __name__ == "__main__":
    main()
