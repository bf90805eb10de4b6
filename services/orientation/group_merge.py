"""The upgrade that merged orientation's two consumer groups into one.

Orientation once read ``exp.assignment.status.v1`` in a group of its own, ``prevex-orientation-status``; it
now reads it with the notices in ``prevex-orientation`` (one consumer: half the idle fetches and heartbeats).
A deployed orientation holds its status offsets under the old group only: the merged group would start
that topic at ``auto_offset_reset``, re-reading all of it or skipping what arrived during the upgrade.
:func:`carry_over_offsets` copies them across once, before the merged consumer joins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.platform.logging import get_logger
from services.platform.settings import ServiceSettings

__all__ = ["LEGACY_STATUS_GROUP_ID", "GroupNotEmptyError", "carry_over_offsets"]

LEGACY_STATUS_GROUP_ID = "prevex-orientation-status"
"""The group that read the status topic before the merge; nothing joins it any more."""
JOIN_TIMEOUT_S = 120.0
"""Bound of the wait for the group's assignment: a broker that never answers stops the start."""

log = get_logger(__name__)


class GroupNotEmptyError(RuntimeError):
    """Partitions to carry over are assigned to another member of the merged group: the service stops at
    start (its restart tries again) rather than leave them at ``auto_offset_reset``."""


async def carry_over_offsets(settings: ServiceSettings, topic: str, *, from_group: str, to_group: str) -> int:
    """Commit, under ``to_group``, ``from_group``'s committed offset of every partition of ``topic`` on which
    ``to_group`` has none; return how many partitions were carried over.

    Idempotent: a partition ``to_group`` already committed on is left alone, so a fresh install (nothing
    under ``from_group``) and every start after the first are no-ops that do not join ``to_group``. Runs
    before ``to_group``'s consumer joins; raises :class:`GroupNotEmptyError` when a partition to carry over
    is held by another member of ``to_group``.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        # No partition (the topic not created yet): nothing was consumed from it.
        if not partitions or not await _missing(admin, partitions, from_group=from_group, to_group=to_group):
            return 0
        # A commit from outside the group (generation -1) is refused once the group has had members: by Kafka
        # while it has some, by Tansu still 40 s after the last one left (measured). A member's commit is not.
        async with _member(settings, topic, group=to_group) as assigned:
            # Read again as a member: another replica may have carried them over meanwhile.
            missing = await _missing(admin, partitions, from_group=from_group, to_group=to_group)
            if not missing.keys() <= assigned.assignment():
                raise GroupNotEmptyError(f"{topic} partitions of {to_group} held by another member")
            if missing:
                await assigned.commit(missing)
                log.info(
                    "offsets_carried_over", topic=topic, from_group=from_group, to_group=to_group, count=len(missing)
                )
            return len(missing)
    finally:
        await admin.close()


async def _missing(
    admin: AIOKafkaAdminClient, partitions: list[TopicPartition], *, from_group: str, to_group: str
) -> dict[TopicPartition, int]:
    # Partitions named explicitly: Tansu answers list_consumer_group_offsets only for those.
    merged = await admin.list_consumer_group_offsets(to_group, partitions=partitions)
    legacy = await admin.list_consumer_group_offsets(from_group, partitions=partitions)
    return {
        tp: meta.offset
        for tp, meta in legacy.items()
        if meta.offset >= 0 and (tp not in merged or merged[tp].offset < 0)
    }


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.event.clear()

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.event.set()


@asynccontextmanager
async def _member(settings: ServiceSettings, topic: str, *, group: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer that joined ``group`` subscribed to ``topic`` (its assignment received); it leaves the
    group at the end without committing anything itself."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    listener = _Assigned()
    consumer.subscribe([topic], listener=listener)
    await consumer.start()
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            await listener.event.wait()
        yield consumer
    finally:
        await consumer.stop()
