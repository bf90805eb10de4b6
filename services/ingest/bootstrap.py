"""Composition root of ingest: settings → adapters → intake → Kafka subscriptions and loops."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib.resources import files

from aiokafka import ConsumerRecord

from schemas import topics
from schemas.procedure import SourceSystem
from services.ingest import repository as repo
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.emitters import load_emitters
from services.ingest.intake import SCHEMA, Intake, RawInput
from services.ingest.settings import IngestSettings
from services.platform.kafka import subscribe_batch
from services.platform.logging import get_logger
from services.platform.runtime import Runtime

__all__ = ["build"]

GROUP_ID = "prevex-ingest"
_RAW_SOURCES = {topics.RAW_CJ: SourceSystem.CJ_API, topics.RAW_BAILLEUR: SourceSystem.BAILLEUR_API}
_PURGE_EVERY_S = 3_600.0

log = get_logger(__name__)


def build(settings: IngestSettings) -> Runtime:
    """Wire ingest: one batch subscription per raw topic, a raw-payload retention loop."""
    runtime = Runtime("ingest", settings, schema=SCHEMA, migrations=files("services.ingest") / "migrations")
    intake = Intake(
        emitters=load_emitters(settings.emitters_path),
        communes=CommuneDirectory.from_packaged_data(),
        territory=Territory(settings.departements),
        max_payload_bytes=settings.max_payload_bytes,
    )

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        received_at = datetime.now(UTC)
        inputs = [_raw_input(record, received_at) for record in records]
        async with runtime.pool.acquire() as conn, conn.transaction():
            await intake.process(conn, inputs, clock=received_at.date())

    for topic in _RAW_SOURCES:
        subscribe_batch(runtime.broker, topic, group_id=GROUP_ID, settings=settings, handler=handle)

    async def purge_raw(rt: Runtime) -> None:
        while True:
            cutoff = datetime.now(UTC) - timedelta(days=settings.raw_retention_days)
            async with rt.pool.acquire() as conn:
                purged = await repo.purge_raw_inbound(conn, cutoff)
            log.info("raw_inbound_purged", count=purged, retention_days=settings.raw_retention_days)
            await asyncio.sleep(_PURGE_EVERY_S)

    runtime.add_loop(purge_raw)
    return runtime


def _raw_input(record: ConsumerRecord[bytes, bytes], received_at: datetime) -> RawInput:
    # The record key is the emitter id: on a real cluster, ACLs bind it to the producing principal.
    key = record.key.decode("utf-8", "replace") if record.key else None
    return RawInput(
        payload=record.value or b"",
        source_system=_RAW_SOURCES[record.topic],
        channel=f"kafka:{record.topic}",
        emitter_key=key,
        received_at=received_at,
        kafka_topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
    )
