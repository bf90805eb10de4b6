"""Orientation throughput on a large generated référentiel: matching alone, and through Kafka + PostgreSQL.

    .venv/bin/python -m benchmarks.orientation.bench_orientation [--decisions 2000] [--notices 5000] [--no-kafka]
                                                                  [--json F]

The référentiel: 500 structures and 2,000 offers over the 101 communes of the Territoire de Belfort (COG),
its 3 EPCI and the département — about half the offers on 1 to 5 communes, a third on an EPCI, the rest
département-wide — with random stage ranges, parc, debt / resources ceilings, allocataire filters,
exclusions and a weekly capacity on one offer in ten. Households are drawn uniformly over the communes
and the ranked stages. Everything is seeded: two runs see the same data.

Matching alone times ``Matcher.decide`` (what the service runs) and, for comparison, the same decision
with every rejection's reasons read (what an unmatched event or a simulation costs) and a full
evaluation of every offer (what matching cost before the stage and zone index).

Through Kafka + PostgreSQL starts a fresh broker (Tansu unless ``KAFKA_BOOTSTRAP_SERVERS``), a database
and the orientation service as a process with this référentiel, publishes ``--notices`` notices at once
and measures until the last decision is committed, then until the last ``orientation.decided`` record is
on the topic (outbox relay included). Not a test: nothing is asserted beyond the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import create_database, create_topics, drop_database, free_port, kafka_broker, postgres_server
from devtools.orientation_inputs import example_record, notice, notice_event
from devtools.stack import ServiceProcesses, StackConfig
from schemas import topics
from schemas.procedure import Allocataire, LandlordType, Parc, ProcedureNotification
from schemas.referential import Channels, Contact, StructureTypology
from schemas.stages import Stage, stage_rank
from services.ingest.domain.cog import Commune, CommuneDirectory
from services.orientation.domain import (
    Eligibility,
    Matcher,
    MatchFacts,
    Offer,
    ParcFilter,
    Referential,
    Structure,
    Zone,
    ZoneEntry,
    ZoneKind,
    dump_referential,
    facts_from_notice,
)
from services.orientation.domain.referential import AllocataireFilter, TypeService
from services.orientation.referential_store import SCHEMA
from services.platform.db import connect_pool

RANKED = sorted((s for s in Stage if stage_rank(s) is not None), key=lambda s: stage_rank(s) or 0)


@dataclass(frozen=True)
class Territory:
    communes: tuple[Commune, ...]
    epcis: tuple[str, ...]


def territory_90() -> Territory:
    directory = CommuneDirectory.from_packaged_data()
    communes = tuple(
        c for c in (directory.get(f"90{n:03}") for n in range(1, 200)) if c is not None and c.departement == "90"
    )
    return Territory(communes, tuple(sorted({c.epci_siren for c in communes if c.epci_siren})))


def generate_referential(
    territory: Territory, rnd: random.Random, structures: int = 500, offers: int = 2000
) -> Referential:
    """500 structures (one e-mail contact each) and 2,000 offers; structure S000 is the default referent."""
    built = [
        Structure(
            id=f"S{n:03}",
            nom=f"Structure partenaire {n}",
            typologie=rnd.choice(list(StructureTypology)),
            contacts=(
                Contact(
                    id=f"S{n:03}-C",
                    label="Accueil",
                    email=f"s{n}@partenaire.test",
                    channels_enabled=Channels(email=True),
                ),
            ),
        )
        for n in range(structures)
    ]
    codes = [c.insee for c in territory.communes]
    generated = []
    for n in range(offers):
        draw = rnd.random()
        if draw < 0.5:
            zone = Zone(
                include=tuple(ZoneEntry(kind=ZoneKind.COMMUNE, code=c) for c in rnd.sample(codes, rnd.randint(1, 5)))
            )
        elif draw < 0.85:
            zone = Zone(
                include=(ZoneEntry(kind=ZoneKind.EPCI, code=rnd.choice(territory.epcis)),),
                exclude_communes=frozenset(rnd.sample(codes, 1)) if rnd.random() < 0.2 else frozenset(),
            )
        else:
            zone = Zone(include=(ZoneEntry(kind=ZoneKind.DEPARTEMENT, code="90"),))
        first = rnd.randrange(len(RANKED))
        last = min(len(RANKED) - 1, first + rnd.randint(1, 6))
        generated.append(
            Offer(
                id=f"O{n:04}",
                structure_id=f"S{rnd.randrange(1, structures):03}",
                nom=f"Offre {n}",
                description="Offre générée pour le banc de mesure.",
                type=TypeService.ACCOMPAGNEMENT,
                priority=rnd.randint(0, 100),
                zone=zone,
                max_new_assignments_per_week=rnd.randint(5, 50) if rnd.random() < 0.1 else None,
                eligibility=Eligibility(
                    stages=frozenset(RANKED[first : last + 1]),
                    parc=rnd.choice([None, ParcFilter.ALL, ParcFilter.PRIVE, ParcFilter.SOCIAL]),
                    debt_max=rnd.choice([None, Decimal(3000), Decimal(6000), Decimal(10000)]),
                    resources_max=rnd.choice([None, None, Decimal(1500), Decimal(2000)]),
                    allocataire=rnd.choice([None, None, AllocataireFilter.OUI, AllocataireFilter.ANY]),
                ),
            )
        )
    return Referential(default_referent="S000", structures=tuple(built), offers=tuple(generated))


def generate_facts(territory: Territory, rnd: random.Random, count: int) -> list[MatchFacts]:
    facts = []
    for _ in range(count):
        commune = rnd.choice(territory.communes)
        facts.append(
            MatchFacts(
                stage=rnd.choice(RANKED),
                act_date=date(2026, 3, 2),
                commune_insee=commune.insee,
                departement="90",
                epci_siren=commune.epci_siren,
                parc=rnd.choice(list(Parc)),
                landlord_type=rnd.choice(list(LandlordType)),
                debt=Decimal(rnd.randint(0, 12000)),
                resources=rnd.choice([None, Decimal(rnd.randint(500, 3000))]),
                allocataire=rnd.choice(list(Allocataire)),
            )
        )
    return facts


def _rate(decide: Callable[[MatchFacts], object], sample: list[MatchFacts], repeats: int = 3) -> tuple[float, float]:
    """Median decisions/s over ``repeats`` passes over ``sample``, and the matching ms per decision."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for facts in sample:
            decide(facts)
        rates.append(len(sample) / (time.perf_counter() - started))
    rate = statistics.median(rates)
    return rate, 1000 / rate


def bench_matching(referential: Referential, facts: list[MatchFacts]) -> dict[str, float]:
    """Print and return decisions/s of each way of matching, and the index's build time."""
    started = time.perf_counter()
    matcher = Matcher(referential)
    index_ms = (time.perf_counter() - started) * 1000
    print(f"index built in {index_ms:.1f} ms (once per référentiel version)")
    tenth = facts[: max(1, len(facts) // 10)]
    # Each result is dropped at once, as in the service: keeping thousands alive would time the GC instead.
    cases: list[tuple[str, list[MatchFacts], Callable[[MatchFacts], object]]] = [
        ("Matcher.decide (the service)", facts, matcher.decide),
        ("decide + every rejection's reasons", tenth, lambda f: [r.reasons for r in matcher.decide(f).rejected]),
        ("full evaluation of every offer", tenth, matcher.evaluate_all),
    ]
    print(f"{'matching alone':<38} {'decisions/s':>12} {'ms/decision':>12}")
    measured = {"index build ms": index_ms}
    for label, sample, run in cases:
        rate, ms = _rate(run, sample)
        print(f"{label:<38} {rate:>12,.0f} {ms:>12.2f}")
        measured[f"{label}, decisions/s"] = rate
    results = [matcher.decide(f) for f in facts]
    assigned = statistics.mean(len(r.assignments) for r in results)
    fallbacks = sum(r.fallback_used for r in results)
    print(f"(mean {assigned:.1f} assignments per decision, {fallbacks} of {len(facts)} on fallback F1)")
    return measured


def _notice_records(territory: Territory, rnd: random.Random, count: int) -> list[bytes]:
    template = example_record("s01-cj-commandement-payer")
    if template is None:
        raise RuntimeError("the S-01 example no longer normalises")
    records = []
    for _ in range(count):
        commune = rnd.choice(territory.communes)
        record: ProcedureNotification = template.model_copy(
            update={
                "notification_id": uuid.uuid4(),
                "act": template.act.model_copy(update={"stage": rnd.choice(RANKED)}),
                "dwelling": template.dwelling.model_copy(
                    update={
                        "address": template.dwelling.address.model_copy(
                            update={
                                "commune_insee": commune.insee,
                                "commune_name": commune.name,
                                "postal_code": commune.postal_codes[0],
                                "epci_siren": commune.epci_siren,
                            }
                        ),
                        "parc": rnd.choice(list(Parc)),
                    }
                ),
            }
        )
        event = notice_event(notice(record, procedure_id=uuid.uuid4()))
        facts_from_notice(event.payload)  # the service reads these: fail here, not there
        records.append(event.model_dump_json().encode())
    return records


async def bench_kafka(
    referential: Referential, territory: Territory, rnd: random.Random, count: int
) -> dict[str, float]:
    """Print and return the rates through Kafka + PostgreSQL (published, committed, on the topic)."""
    payloads = _notice_records(territory, rnd, count)
    with tempfile.TemporaryDirectory(prefix="prevex-bench-") as tmp, kafka_broker() as broker, postgres_server() as pg:
        work = Path(tmp)
        referential_file = work / "referential.yaml"
        referential_file.write_text(dump_referential(referential), "utf-8")
        await create_topics(broker.bootstrap_servers, topics.ALL_TOPICS)
        name = f"prevex_bench_{uuid.uuid4().hex[:8]}"
        url = await create_database(pg, name)
        port = free_port()
        config = StackConfig(
            broker.bootstrap_servers,
            url,
            "127.0.0.1",
            1,
            work / "sms",
            referential_path=referential_file,
            orientation_http_port=port,
        )
        processes = ServiceProcesses(config, work / "logs")
        processes.start("orientation")
        pool = await connect_pool(url, schema=SCHEMA, max_size=2)
        try:
            await _until_ready(f"http://127.0.0.1:{port}", processes)
            producer = AIOKafkaProducer(
                bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5, max_batch_size=262_144
            )
            await producer.start()
            started = time.perf_counter()
            sends = [await producer.send(topics.PROCEDURE_NOTIFICATION, payload) for payload in payloads]
            await asyncio.gather(*sends)
            await producer.stop()
            published = time.perf_counter() - started
            while (done := await pool.fetchval("SELECT count(*) FROM inbox")) < count:
                if not processes.running("orientation"):
                    raise RuntimeError(f"orientation died: see {processes.log_path('orientation')}")
                await asyncio.sleep(0.05)
            committed = time.perf_counter() - started
            await _read(broker.bootstrap_servers, topics.ORIENTATION_DECIDED, count)
            on_topic = time.perf_counter() - started
            assignments = await pool.fetchval("SELECT count(*) FROM assignment")
        finally:
            await pool.close()
            processes.stop()
            await drop_database(pg, name)
    print(f"{'through Kafka + PostgreSQL':<38} {'decisions/s':>12} {'seconds':>12}")
    print(f"{'notices published (producer)':<38} {count / published:>12,.0f} {published:>12.2f}")
    print(f"{'decisions committed (inbox rows)':<38} {done / committed:>12,.0f} {committed:>12.2f}")
    print(f"{'decided events on the topic':<38} {count / on_topic:>12,.0f} {on_topic:>12.2f}")
    print(f"({assignments} assignments for {count} notices; broker {broker.kind})")
    return {
        "notices published/s": count / published,
        "decisions committed/s": done / committed,
        "decided events on the topic/s": count / on_topic,
        "notices": count,
        "assignments": assignments,
    }


async def _until_ready(admin_url: str, processes: ServiceProcesses) -> None:
    async with httpx.AsyncClient(base_url=admin_url) as client:
        while True:
            if not processes.running("orientation"):
                raise RuntimeError(f"orientation died: see {processes.log_path('orientation')}")
            try:
                if (await client.get("/health")).json()["referentiel_version"] is not None:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)


async def _read(bootstrap: str, topic: str, count: int) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex}", auto_offset_reset="earliest"
    )
    await consumer.start()
    seen = 0
    try:
        while seen < count:
            seen += sum(len(batch) for batch in (await consumer.getmany(timeout_ms=200, max_records=5000)).values())
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=2000, help="households for matching alone")
    parser.add_argument("--notices", type=int, default=5000, help="notices through Kafka + PostgreSQL")
    parser.add_argument("--no-kafka", action="store_true", help="matching alone only")
    parser.add_argument("--seed", type=int, default=90)
    parser.add_argument("--json", type=Path, help="also write the results there")
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    territory = territory_90()
    started = time.perf_counter()
    referential = generate_referential(territory, rnd)
    print(
        f"référentiel: {len(referential.structures)} structures, {len(referential.offers)} offers, "
        f"{len(territory.communes)} communes, {len(territory.epcis)} EPCI"
        f" (generated in {time.perf_counter() - started:.2f} s)"
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU")
    report = {"matching alone": bench_matching(referential, generate_facts(territory, rnd, args.decisions))}
    if not args.no_kafka:
        report["through Kafka + PostgreSQL"] = asyncio.run(bench_kafka(referential, territory, rnd, args.notices))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), "utf-8")


if __name__ == "__main__":
    main()
