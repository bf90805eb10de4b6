"""SQL of the ingest schema. Every function runs on the caller's connection and transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.platform.db import Conn

__all__ = [
    "LatestRevision",
    "ProcedureRow",
    "RawRow",
    "count_duplicate",
    "create_procedure",
    "find_open_procedure_by_address",
    "find_open_procedure_by_link",
    "find_procedure_by_ref",
    "get_procedure",
    "insert_raw",
    "insert_rejection",
    "insert_stage_event",
    "latest_revision",
    "purge_raw_inbound",
    "set_raw_outcome",
    "update_procedure_stage",
]


@dataclass(frozen=True)
class RawRow:
    raw_id: uuid.UUID
    source_system: str
    channel: str
    kafka_topic: str | None
    kafka_partition: int | None
    kafka_offset: int | None
    emitter_key: str | None
    payload: bytes
    payload_sha256: str
    received_at: datetime


@dataclass(frozen=True)
class ProcedureRow:
    procedure_id: uuid.UUID
    short_ref: str
    correlation_id: uuid.UUID
    current_rank: int
    status: str


@dataclass(frozen=True)
class LatestRevision:
    procedure_id: uuid.UUID
    revision: int
    payload_sha256: str


_PROCEDURE_COLUMNS = "procedure_id, short_ref, correlation_id, current_rank, status"


async def insert_raw(conn: Conn, raw: RawRow) -> bool:
    """Store a raw input; ``False`` if this Kafka position was already stored (a redelivery)."""
    inserted = await conn.fetchval(
        "INSERT INTO raw_inbound (raw_id, source_system, channel, kafka_topic, kafka_partition, kafka_offset,"
        " emitter_key, payload, payload_sha256, received_at, outcome)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'PENDING')"
        " ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING RETURNING true",
        raw.raw_id,
        raw.source_system,
        raw.channel,
        raw.kafka_topic,
        raw.kafka_partition,
        raw.kafka_offset,
        raw.emitter_key,
        raw.payload,
        raw.payload_sha256,
        raw.received_at,
    )
    return bool(inserted)


async def set_raw_outcome(conn: Conn, raw_id: uuid.UUID, outcome: str) -> None:
    await conn.execute("UPDATE raw_inbound SET outcome = $2 WHERE raw_id = $1", raw_id, outcome)


async def insert_rejection(
    conn: Conn,
    *,
    rejection_id: uuid.UUID,
    raw_id: uuid.UUID,
    emitter_id: str,
    external_ref: str | None,
    errors: list[dict[str, Any]],
) -> None:
    await conn.execute(
        "INSERT INTO rejection (rejection_id, raw_id, emitter_id, external_ref, errors) VALUES ($1, $2, $3, $4, $5)",
        rejection_id,
        raw_id,
        emitter_id,
        external_ref,
        errors,
    )


async def latest_revision(conn: Conn, idempotency_key: str) -> LatestRevision | None:
    """The newest accepted revision of an act, if any."""
    row = await conn.fetchrow(
        "SELECT procedure_id, revision, payload_sha256 FROM procedure_stage_event"
        " WHERE idempotency_key = $1 ORDER BY revision DESC LIMIT 1",
        idempotency_key,
    )
    return LatestRevision(row["procedure_id"], row["revision"], row["payload_sha256"]) if row else None


async def count_duplicate(conn: Conn, idempotency_key: str) -> int:
    """Count one more duplicate of an act; return the running count."""
    count: int = await conn.fetchval(
        "INSERT INTO duplicate_count (idempotency_key, count) VALUES ($1, 1)"
        " ON CONFLICT (idempotency_key) DO UPDATE SET count = duplicate_count.count + 1, last_seen_at = now()"
        " RETURNING count",
        idempotency_key,
    )
    return count


async def get_procedure(conn: Conn, procedure_id: uuid.UUID) -> ProcedureRow:
    row = await conn.fetchrow(
        f"SELECT {_PROCEDURE_COLUMNS} FROM procedure WHERE procedure_id = $1 FOR UPDATE",
        procedure_id,
    )
    if row is None:
        raise LookupError(f"procedure {procedure_id} does not exist")
    return ProcedureRow(**dict(row))


async def find_procedure_by_ref(conn: Conn, procedure_ref: str) -> ProcedureRow | None:
    return await _one(conn, "procedure_ref = $1 ORDER BY created_at DESC", procedure_ref)


async def find_open_procedure_by_link(conn: Conn, link_key: str) -> ProcedureRow | None:
    return await _one(conn, "link_key = $1 AND status = 'OPEN' ORDER BY created_at DESC", link_key)


async def find_open_procedure_by_address(conn: Conn, address_key: str) -> ProcedureRow | None:
    return await _one(conn, "address_key = $1 AND status = 'OPEN' ORDER BY created_at DESC", address_key)


async def _one(conn: Conn, where: str, value: str) -> ProcedureRow | None:
    row = await conn.fetchrow(
        f"SELECT {_PROCEDURE_COLUMNS} FROM procedure WHERE {where} LIMIT 1 FOR UPDATE",
        value,
    )
    return ProcedureRow(**dict(row)) if row else None


async def create_procedure(
    conn: Conn,
    *,
    departement: str,
    year: int,
    procedure_ref: str | None,
    link_key: str,
    address_key: str,
    stage: str,
    rank: int,
) -> ProcedureRow:
    """A new procedure with a short reference like ``90-2026-000042`` and a fresh correlation id."""
    row = await conn.fetchrow(
        "INSERT INTO procedure (procedure_id, short_ref, correlation_id, departement, procedure_ref, link_key,"
        " address_key, current_stage, current_rank)"
        " VALUES ($1, $2 || '-' || $3 || '-' || lpad(nextval('procedure_short_ref_seq')::text, 6, '0'),"
        " $4, $2, $5, $6, $7, $8, $9)"
        f" RETURNING {_PROCEDURE_COLUMNS}",
        uuid.uuid4(),
        departement,
        str(year),
        uuid.uuid4(),
        procedure_ref,
        link_key,
        address_key,
        stage,
        rank,
    )
    assert row is not None  # INSERT … RETURNING always yields the row  # noqa: S101
    return ProcedureRow(**dict(row))


async def update_procedure_stage(
    conn: Conn, procedure_id: uuid.UUID, *, stage: str | None, rank: int | None, status: str, reopened: bool
) -> None:
    """Advance the current stage (when ``stage`` is given) and set the status."""
    await conn.execute(
        "UPDATE procedure SET current_stage = coalesce($2, current_stage),"
        " current_rank = coalesce($3, current_rank), status = $4,"
        " reopened_count = reopened_count + $5::int, updated_at = now() WHERE procedure_id = $1",
        procedure_id,
        stage,
        rank,
        status,
        int(reopened),
    )


async def insert_stage_event(
    conn: Conn,
    *,
    notification_id: uuid.UUID,
    procedure_id: uuid.UUID,
    idempotency_key: str,
    revision: int,
    payload_sha256: str,
    stage: str,
    act_date: date,
    is_late: bool,
    is_correction: bool,
    record: dict[str, Any],
    raw_id: uuid.UUID,
) -> None:
    await conn.execute(
        "INSERT INTO procedure_stage_event (notification_id, procedure_id, idempotency_key, revision,"
        " payload_sha256, stage, act_date, is_late, is_correction, record, raw_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        notification_id,
        procedure_id,
        idempotency_key,
        revision,
        payload_sha256,
        stage,
        act_date,
        is_late,
        is_correction,
        record,
        raw_id,
    )


async def purge_raw_inbound(conn: Conn, older_than: datetime) -> int:
    """Blank the payload of raw inputs received before ``older_than``; return how many.

    The row itself stays (its hash and outcome are the audit trail the rejections point to); only
    the bytes, which hold personal data, go.
    """
    result: str = await conn.execute(
        "UPDATE raw_inbound SET payload = ''::bytea WHERE received_at < $1 AND payload <> ''::bytea",
        older_than,
    )
    return int(result.rsplit(maxsplit=1)[-1])
