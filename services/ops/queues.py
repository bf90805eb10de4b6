"""What waits: each schema's outbox, the notifier's retry queue, and each consumer group's lag.

Lag is the partition's end offset minus the group's committed offset. On Tansu (the local broker) end
offsets are wrong after multi-record batches (docs/architecture.md §7): the figure is then not to be
trusted; on Kafka it is the usual measure.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas import topics
from services.ingest.bootstrap import GROUP_ID as INGEST_GROUP
from services.notifier.bootstrap import GROUP_ID as NOTIFIER_GROUP
from services.ops.readers import Schemas
from services.orientation.bootstrap import GROUP_ID as ORIENTATION_GROUP
from services.workspace.bootstrap import GROUP_ID as WORKSPACE_GROUP

__all__ = ["GROUPS", "consumer_lag", "queue_status"]

# Orientation's former status group (services.orientation.group_merge) is left out: nothing consumes in it
# any more, and its lag would only grow.
GROUPS = (INGEST_GROUP, ORIENTATION_GROUP, NOTIFIER_GROUP, WORKSPACE_GROUP)


def _counted(row: asyncpg.Record | None) -> dict[str, Any]:
    # An aggregate without GROUP BY always returns its one row.
    return {"waiting": 0, "oldest_s": 0.0} if row is None else {"waiting": row["waiting"], "oldest_s": row["oldest_s"]}


async def queue_status(schemas: Schemas) -> list[dict[str, Any]]:
    """One line per queue: each schema's outbox (pending events, oldest age) and the notifier's retry
    queue (deliveries waiting for another attempt, the most overdue one's delay)."""
    lines: list[dict[str, Any]] = []
    for service, conn in schemas.items():
        if await conn.fetchval("SELECT to_regclass('outbox') IS NOT NULL"):
            row = await conn.fetchrow(
                "SELECT count(*) AS waiting,"
                " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float AS oldest_s FROM outbox"
            )
            lines.append({"service": service, "queue": "outbox", **_counted(row)})
    if (notifier := schemas.get("notifier")) is not None:
        row = await notifier.fetchrow(
            "SELECT count(*) AS waiting,"
            " greatest(coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0), 0)::float AS oldest_s"
            " FROM delivery WHERE state = 'retrying'"
        )
        lines.append({"service": "notifier", "queue": "retry", **_counted(row)})
    return lines


async def consumer_lag(bootstrap_servers: str) -> list[dict[str, Any]]:
    """Per group, topic and partition it committed on: committed offset, end offset, lag."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    await admin.start()
    try:
        available = await consumer.topics()
        # Tansu answers list_consumer_group_offsets only for partitions named explicitly.
        partitions = [
            TopicPartition(topic, p)
            for topic in topics.ALL_TOPICS
            if topic in available
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        lines: list[dict[str, Any]] = []
        for group in GROUPS:
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            for tp, meta in sorted(committed.items()):
                if meta is None or meta.offset < 0:
                    continue
                end = ends.get(tp, meta.offset)
                lines.append(
                    {
                        "group": group,
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "committed": meta.offset,
                        "end": end,
                        "lag": max(end - meta.offset, 0),
                    }
                )
        return lines
    finally:
        await admin.close()
        await consumer.stop()
