"""What the benchmarks share: the acts they publish, the bare relay they compare with, the SMTP server that
times each message, and where the machine's CPU and memory went (``/proc``, Linux).

The benchmarks run from the repository root as modules (``python -m benchmarks.<name>.bench_<name>``).
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import os
import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiosmtpd.controller import Controller

from devtools import free_port
from devtools.stack import FETCH_MAX_WAIT_MS
from schemas.sources.samples import example_document, variant

__all__ = [
    "PARTITIONS",
    "PG_BACKENDS",
    "PG_SERVER",
    "RELAY_IN",
    "RELAY_OUT",
    "TIMEOUT_S",
    "LightSink",
    "ProcessWatch",
    "Received",
    "act_payloads",
    "bare_relay",
    "consumer",
    "cpu_reference_ms",
    "emitter_ids",
    "percentiles",
    "producer",
    "publish",
    "read_records",
    "relay_hops_ms",
    "write_emitters",
]

RELAY_IN, RELAY_OUT = "bench.relay.in.v1", "bench.relay.out.v1"
CPU_REFERENCE_LOOP = 2_000_000
PARTITIONS = 4  # of every topic the benchmarks create
TIMEOUT_S = 600.0
IN_TS_HEADER = "bench_in_ts"
"""The bare relay copies the consumed record's timestamp into this header: its hop is out ts − in ts."""


# --- the acts ------------------------------------------------------------------------------------


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
    """An ingest emitters file registering each SIRET as an étude de commissaire de justice."""
    entries = "".join(f'  - id: "{s}"\n    type: COMMISSAIRE_JUSTICE\n    name: "Étude {s}"\n' for s in sirets)
    path.write_text(f"emitters:\n{entries}", encoding="utf-8")


def act_payloads(count: int, run: str, sirets: list[str], first: int = 0) -> list[tuple[str, bytes]]:
    """``count`` distinct valid CJ commandements de payer (S-01, Belfort), (emitter id, payload), spread over
    ``sirets`` in turn: one household each, numbered from ``first`` (give later batches of the same run
    higher numbers: the same household again would be the same procedure), so each creates its procedure;
    external refs ``BENCH-<run>-<i>``."""
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
        for i in range(first, first + count)
    ]


# --- Kafka ---------------------------------------------------------------------------------------


def producer(bootstrap: str, *, linger_ms: int = 5) -> AIOKafkaProducer:
    """A producer for large backlogs (big batches); ``linger_ms=0`` when each record's latency matters."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=1_048_576,
        max_request_size=8_388_608,
    )


async def publish(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    """Publish ``(key, value)`` records at once and wait for every acknowledgement."""
    sender = producer(bootstrap)
    await sender.start()
    try:
        futures = [await sender.send(topic, value, key=key.encode()) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await sender.stop()


def consumer(
    bootstrap: str, *topic_names: str, commit: bool = False, fetch_wait_ms: int = FETCH_MAX_WAIT_MS
) -> AIOKafkaConsumer:
    """A consumer of its own group from the topics' start, fetching like the services do on a local broker
    (``fetch_wait_ms``: theirs); ``commit``: the caller commits (the relay), else offsets are auto-committed."""
    return AIOKafkaConsumer(
        *topic_names,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=not commit,
        # As the services are configured on a local broker (devtools.stack): Tansu joins a group in
        # about half the session timeout, a hop costs about half the fetch wait.
        fetch_max_wait_ms=fetch_wait_ms,
        session_timeout_ms=1_000,
        heartbeat_interval_ms=300,
        max_partition_fetch_bytes=8_388_608,
    )


async def bare_relay(
    bootstrap: str,
    count: int,
    source: str = RELAY_IN,
    sink: str = RELAY_OUT,
    *,
    joined: asyncio.Event | None = None,
    within_s: float = TIMEOUT_S,
    fetch_wait_ms: int = FETCH_MAX_WAIT_MS,
) -> float:
    """Relay ``count`` records from ``source`` to ``sink`` (getmany → send all → gather → commit: the ceiling
    of any consume → produce service on this broker); records/s from the first record read to the last acked.
    Gives up (``TimeoutError``) after ``within_s`` seconds: a paced phase's relay waits for its whole duration.

    Each relayed record carries its source record's timestamp in :data:`IN_TS_HEADER` (see
    :func:`relay_hops_ms`). ``joined`` is set once the relay's consumer has its partitions: publish after
    it, or the hops measured include the group's join."""
    reader = consumer(bootstrap, source, commit=True, fetch_wait_ms=fetch_wait_ms)
    sender = producer(bootstrap, linger_ms=0)
    await reader.start()
    await sender.start()
    relayed, started = 0, 0.0
    try:
        async with asyncio.timeout(within_s):
            while joined is not None and not reader.assignment():  # noqa: ASYNC110 (aiokafka has no such event)
                await asyncio.sleep(0.05)
            if joined is not None:
                joined.set()
            while relayed < count:
                batches = await reader.getmany(timeout_ms=200, max_records=500)
                records = [record for batch in batches.values() for record in batch]
                if not records:
                    continue
                started = started or time.perf_counter()
                futures = [
                    await sender.send(sink, r.value, key=r.key, headers=[(IN_TS_HEADER, str(r.timestamp).encode())])
                    for r in records
                ]
                await asyncio.gather(*futures)
                await reader.commit()
                relayed += len(records)
        return relayed / (time.perf_counter() - started)
    finally:
        await sender.stop()
        await reader.stop()


async def read_records(
    bootstrap: str, topic_names: tuple[str, ...], done: Callable[[int], bool], stall_s: float
) -> list[Any]:
    """Every record of ``topic_names`` from the beginning until ``done(records read)``, or until none came for
    ``stall_s`` seconds (a stalled pipeline: the caller counts what is missing)."""
    reader = consumer(bootstrap, *topic_names)
    await reader.start()
    records: list[Any] = []
    last_progress = time.monotonic()
    try:
        while not done(len(records)) and time.monotonic() - last_progress < stall_s:
            batches = await reader.getmany(timeout_ms=200, max_records=5_000)
            for batch in batches.values():
                records += batch
                last_progress = time.monotonic()
    finally:
        await reader.stop()
    return records


async def relay_hops_ms(bootstrap: str, count: int, sink: str = RELAY_OUT) -> list[float]:
    """The hop of each of the first ``count`` records the bare relay wrote to ``sink``: its timestamp minus its
    source record's, in ms."""
    records = await read_records(bootstrap, (sink,), lambda n: n >= count, stall_s=30.0)
    return [r.timestamp - int(dict(r.headers)[IN_TS_HEADER]) for r in records]


# --- SMTP ----------------------------------------------------------------------------------------

_REF = re.compile(r"Dossier (\S+)")


@dataclass(frozen=True)
class Received:
    """One message the :class:`LightSink` accepted: when (epoch s), to whom, raw bytes."""

    at: float
    rcpt_tos: tuple[str, ...]
    raw: bytes

    def subject(self) -> str:
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(self.raw)
        return str(headers["Subject"])

    def procedure_ref(self) -> str | None:
        """The procedure's short reference the alert's subject names (``Dossier <ref>``)."""
        found = _REF.search(self.subject())
        return found.group(1) if found else None


class LightSink:
    """An aiosmtpd server that accepts and keeps raw messages with their receive time, nothing else (the
    project's ``SmtpSink`` parses each message: about one core at ~250 msgs/s, which would cap the measure)."""

    def __init__(self) -> None:
        self.host, self.port = "127.0.0.1", free_port("127.0.0.1")
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook)
        mail = Received(time.time(), tuple(envelope.rcpt_tos), envelope.original_content or envelope.content)
        with self._lock:
            self._received.append(mail)
        return "250 OK"

    def count(self) -> int:
        return len(self._received)

    def subjects(self) -> list[str]:
        """The subjects of the messages accepted so far (parsed now, not while the clock runs)."""
        return [mail.subject() for mail in self.received()]

    def received(self) -> list[Received]:
        """A copy of the messages accepted so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._controller.stop()


# --- where the CPU and memory went ---------------------------------------------------------------

PG_BACKENDS, PG_SERVER = "PostgreSQL backends", "PostgreSQL server processes"
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    cpu_s: float
    rss: int
    cmdline: bytes


def _processes() -> Iterator[_Proc]:
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            rss_pages = int((proc / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        # Fields after the command: state, ppid, …, utime (12th), stime (13th).
        yield _Proc(
            int(proc.name), int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, rss_pages * _PAGE, cmdline
        )


def _environ_has(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


@dataclass
class ProcessWatch:
    """The processes of one stack, told apart from whatever else runs on a shared machine.

    ``services``: the ``python -m services.<name>`` processes whose environment names ``database`` (this
    run's own database); Tansu: the broker listening on ``bootstrap``; PostgreSQL: the backends connected
    to ``database`` (:data:`PG_BACKENDS`), and apart (:data:`PG_SERVER`) their postmaster and its server
    processes (checkpointer, WAL writer…; on a server other users share, those also work for them).
    :meth:`start_sampling` records each group's resident memory (sum over its processes: PostgreSQL's
    shared buffers count once per process that touched them) every ``interval_s``.
    """

    services: tuple[str, ...]
    bootstrap: str
    database: str
    interval_s: float = 1.0
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def groups(self) -> tuple[str, ...]:
        return (*self.services, "Tansu", PG_BACKENDS, PG_SERVER)

    def snapshot(self) -> dict[str, dict[int, _Proc]]:
        """The live processes of each group, by pid."""
        procs = list(_processes())
        found: dict[str, dict[int, _Proc]] = {group: {} for group in self.groups}
        database = f" {self.database} ".encode()
        backends = [p for p in procs if p.cmdline.startswith(b"postgres:") and database in p.cmdline]
        backend_pids = {p.pid for p in backends}
        postmasters = {p.ppid for p in backends}
        for p in procs:
            if p.pid in backend_pids:
                found[PG_BACKENDS][p.pid] = p
            elif p.pid in postmasters or (
                p.ppid in postmasters and b"(" not in p.cmdline and b"[local]" not in p.cmdline
            ):
                found[PG_SERVER][p.pid] = p  # the postmaster or a server process, not another database's backend
            elif b"tansu" in p.cmdline and self.bootstrap.encode() in p.cmdline:
                found["Tansu"][p.pid] = p
            else:
                for name in self.services:
                    if f"services.{name}".encode() in p.cmdline and _environ_has(p.pid, self.database.encode()):
                        found[name][p.pid] = p
        return found

    @staticmethod
    def cpu_between(before: dict[str, dict[int, _Proc]], after: dict[str, dict[int, _Proc]]) -> dict[str, float]:
        """CPU seconds each group used between two snapshots (a process started meanwhile counts whole; one
        that ended meanwhile is lost: the services and their pools live through a run)."""
        return {
            group: sum(
                p.cpu_s - (before[group][p.pid].cpu_s if p.pid in before[group] else 0.0) for p in procs.values()
            )
            for group, procs in after.items()
        }

    def start_sampling(self) -> None:
        """Sample each group's RSS every ``interval_s`` in a thread until :meth:`stop_sampling`."""

        def sample() -> None:
            while not self._stop.wait(self.interval_s):
                rss = {group: sum(p.rss for p in procs.values()) for group, procs in self.snapshot().items()}
                self.samples.append((time.time(), rss))

        self._thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop_sampling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def rss_mib(self, since: float, until: float) -> dict[str, dict[str, float]]:
        """Per group, over the samples taken in [since, until]: peak, first and last RSS in MiB."""
        window = [rss for at, rss in self.samples if since <= at <= until] or [self.samples[-1][1]]
        return {
            group: {
                "peak": max(rss[group] for rss in window) / 2**20,
                "first": window[0][group] / 2**20,
                "last": window[-1][group] / 2**20,
            }
            for group in self.groups
        }


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 / max of ``values`` (``None`` each when empty)."""
    if len(values) < 2:  # quantiles needs two points
        only = values[0] if values else None
        return {"p50": only, "p95": only, "p99": only, "max": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def cpu_reference_ms() -> float:
    """The machine's speed as one figure: the best of five timings, in ms, of a fixed pure-Python loop (integer
    additions). Two runs' CPU per act compare only on machines that give about the same figure: the same VM
    size gave results 1.3–3× apart from one host to another (docs/benchmarks.md)."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for n in range(CPU_REFERENCE_LOOP):
            total += n
        timings.append((time.perf_counter() - started) * 1000)
    return min(timings)
