"""SQL of the ingest schema. Every function runs on the caller's connection and transaction.

The intake writes a whole batch with a handful of statements whatever its size: rows travel as arrays
(``INSERT … SELECT FROM unnest(…)``) and lookups take arrays of keys (``= ANY($1)``), so the number of
round trips per batch is constant (``services.ingest.intake`` lists them).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import asyncpg

from services.ingest.domain.linking import ProcedureStatus
from services.ingest.domain.procedures import LatestRevision, Procedure, Recorded
from services.platform.db import Conn

__all__ = [
    "RawRow",
    "RejectionDetail",
    "RejectionRow",
    "RejectionSummary",
    "StageEventRow",
    "count_duplicates",
    "get_rejection",
    "insert_procedures",
    "insert_raw",
    "insert_rejections",
    "insert_stage_events",
    "list_rejections",
    "load_procedures",
    "next_short_ref_numbers",
    "purge_raw_inbound",
    "stored_positions",
    "update_procedures",
]


@dataclass
class RawRow:
    """A ``raw_inbound`` row, written once its batch decided its ``outcome`` (set in place)."""

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
    corrects_rejection_id: uuid.UUID | None = None
    source_line: int | None = None
    kafka_key: bytes | None = None
    kafka_headers: str | None = None
    """JSON text of the Kafka headers (:func:`services.platform.kafka.header_entries`)."""
    outcome: str = "PENDING"


@dataclass(frozen=True)
class StageEventRow:
    notification_id: uuid.UUID
    procedure_id: uuid.UUID
    idempotency_key: str
    revision: int
    payload_sha256: str
    content_sha256: str
    stage: str
    act_date: date
    is_late: bool
    is_correction: bool
    event_json: bytes
    """The ``procedure.notification`` event, as published; its ``payload.notification`` is stored."""
    raw_id: uuid.UUID
    link_candidate_procedure_id: uuid.UUID | None

    @classmethod
    def of(cls, recorded: Recorded, raw_id: uuid.UUID, event_json: bytes) -> StageEventRow:
        """The row of a recorded act, whose raw input is ``raw_id`` and outgoing event ``event_json``."""
        record = recorded.record
        return cls(
            notification_id=record.notification_id,
            procedure_id=recorded.procedure.procedure_id,
            idempotency_key=recorded.accepted.idempotency_key,
            revision=recorded.revision,
            payload_sha256=record.source.payload_sha256,
            content_sha256=recorded.accepted.content_sha256,
            stage=record.act.stage.value,
            act_date=record.act.date,
            is_late=recorded.placement.is_late,
            is_correction=recorded.is_correction,
            event_json=event_json,
            raw_id=raw_id,
            link_candidate_procedure_id=recorded.link_candidate,
        )


@dataclass(frozen=True)
class RejectionRow:
    rejection_id: uuid.UUID
    raw_id: uuid.UUID
    emitter_id: str
    external_ref: str | None
    errors_json: str


@dataclass(frozen=True)
class RejectionSummary:
    """A rejection as listed for ops: references and codes only, no payload."""

    rejection_id: uuid.UUID
    created_at: datetime
    emitter_id: str
    external_ref: str | None
    codes: tuple[str, ...]
    channel: str
    source_line: int | None
    resolved_by: uuid.UUID | None
    """The raw input that corrected it and was accepted, if any."""


@dataclass(frozen=True)
class RejectionDetail:
    """One rejection with its errors and its raw input (``payload`` is empty once purged)."""

    summary: RejectionSummary
    errors: list[dict[str, Any]]
    raw_id: uuid.UUID
    source_system: str
    received_at: datetime
    payload_sha256: str
    payload: bytes


def _columns(rows: Sequence[Any], cls: type[Any]) -> list[list[Any]]:
    """Column-wise lists of dataclass rows, in field order: the arrays ``unnest`` takes."""
    return _attributes(rows, " ".join(f.name for f in fields(cls)))


def _attributes(items: Sequence[Any], names: str) -> list[list[Any]]:
    """Column-wise lists of the attributes ``names`` (space-separated) of ``items``, in that order."""
    return [[getattr(item, name) for item in items] for name in names.split()]


async def stored_positions(
    conn: Conn, rows: Sequence[RawRow], *, lock: Iterable[str] = ()
) -> set[tuple[str, int, int]]:
    """The Kafka positions among ``rows`` already stored: redelivered records, to skip; and first, in the same
    statement (one round trip), transaction-scoped advisory locks on the keys ``lock`` (idempotency, household,
    reference and address keys).

    Two transactions handling the same act or the same household (two consumers, an HTTP request) then run one
    after the other, so the second sees the first's procedure instead of creating another one; ids are locked
    in ascending order, so two batches cannot deadlock on them. The positions are read as of the statement's
    start, as if before the locks: a position another transaction stores meanwhile is caught by
    :func:`insert_raw`'s count.
    """
    positioned = [r for r in rows if r.kafka_topic is not None]
    ids = _lock_ids(lock)
    if not positioned and not ids:
        return set()
    found = await conn.fetch(
        # UNION ALL runs its branches in order: the locks, ascending, before the read.
        "SELECT NULL::text AS kafka_topic, NULL::int AS kafka_partition, count(locked)::bigint AS kafka_offset"
        " FROM (SELECT pg_advisory_xact_lock(id) AS locked FROM unnest($4::bigint[]) AS id ORDER BY id) AS l"
        " UNION ALL SELECT r.kafka_topic, r.kafka_partition, r.kafka_offset FROM raw_inbound r"
        " JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS k(topic, part, off)"
        " ON r.kafka_topic = k.topic AND r.kafka_partition = k.part AND r.kafka_offset = k.off",
        [r.kafka_topic for r in positioned],
        [r.kafka_partition for r in positioned],
        [r.kafka_offset for r in positioned],
        ids,
    )
    return {(row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) for row in found if row["kafka_topic"]}


async def insert_raw(conn: Conn, rows: Sequence[RawRow]) -> int:
    """Store raw inputs with their outcome; return how many were stored.

    Fewer than ``len(rows)`` means another transaction stored one of these Kafka positions since the
    caller checked (:func:`stored_positions`): the caller must roll back and let the batch come again.
    """
    if not rows:
        return 0
    inserted = await conn.fetch(
        "INSERT INTO raw_inbound (raw_id, source_system, channel, kafka_topic, kafka_partition, kafka_offset,"
        " emitter_key, payload, payload_sha256, received_at, corrects_rejection_id, source_line, kafka_key,"
        " kafka_headers, outcome)"
        # Headers come as JSON text, cast here: a jsonb[] parameter would read a list of lists as dimensions.
        " SELECT r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14::jsonb, r15"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[],"
        " $7::text[], $8::bytea[], $9::text[], $10::timestamptz[], $11::uuid[], $12::int[], $13::bytea[],"
        " $14::text[], $15::text[]) AS u(r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15)"
        " ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING RETURNING raw_id",
        *_columns(rows, RawRow),
    )
    return len(inserted)


def _lock_id(key: str) -> int:
    # A signed 64-bit advisory-lock id from the key's hash; a collision only serialises two transactions.
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def _lock_ids(keys: Iterable[str]) -> list[int]:
    return sorted({_lock_id(key) for key in keys})


_PROCEDURE_COLUMNS = (
    "procedure_id, short_ref, correlation_id, departement, procedure_ref, link_key, address_key, current_stage,"
    " current_rank, status, saisine_date, created_at"
)


def _procedure(row: asyncpg.Record) -> Procedure:
    return Procedure(
        procedure_id=row["procedure_id"],
        correlation_id=row["correlation_id"],
        departement=row["departement"],
        year=row["created_at"].year,
        short_ref=row["short_ref"],
        procedure_ref=row["procedure_ref"],
        link_key=row["link_key"],
        address_key=row["address_key"],
        current_stage=row["current_stage"],
        current_rank=row["current_rank"],
        status=ProcedureStatus(row["status"]),
        saisine_date=row["saisine_date"],
        is_new=False,
    )


async def load_procedures(
    conn: Conn,
    *,
    idempotency_keys: Collection[str],
    refs: Collection[str],
    link_keys: Collection[str],
    address_keys: Collection[str],
) -> tuple[dict[str, LatestRevision], list[Procedure]]:
    """In one round trip: the newest accepted revision of each act that has one, and every procedure one of the
    keys points at (the acts' own procedures, any status; by reference or household, any status; by address,
    open ones only), locked for update.

    Procedures are returned oldest first (by ``created_at``) so the caller's maps keep the most recent procedure
    per key; the rows are locked in ``procedure_id`` order, the same in every transaction, so concurrent
    batches cannot deadlock.
    """
    if not (idempotency_keys or refs or link_keys or address_keys):
        return {}, []
    rows = await conn.fetch(
        # Two row shapes in one result: revisions (kind 'r') and procedures ('p'), the other's columns NULL.
        # FOR UPDATE is refused beside UNION: the locking read is a CTE, which PostgreSQL runs in full.
        # Every key is looked up on its own, through an index, whatever the statistics: asyncpg prepares the
        # statement and PostgreSQL may keep a generic plan, chosen without the arrays. Tried before and dropped:
        # "= ANY($1)", which with a large array and young statistics was estimated to match most rows, and a
        # plain join on unnest, planned as a hash join over the whole table; either made each batch cost
        # O(table). A LATERAL subquery the planner cannot flatten into a join (a LIMIT, a UNION ALL) runs once
        # per key, as the inner side of a nested loop. The three-array unnest pads the shorter arrays with NULL,
        # which matches nothing. The locked set is read by primary key, where "= ANY" is safe: one row at most
        # per element, whatever the estimates.
        "WITH latest AS (SELECT e.* FROM unnest($1::text[]) AS k(key) CROSS JOIN LATERAL"
        " (SELECT e.idempotency_key, e.procedure_id, e.revision,"
        " coalesce(e.content_sha256, e.payload_sha256) AS content_sha256, e.notification_id,"
        " e.record -> 'warnings' AS warnings FROM procedure_stage_event e"
        " WHERE e.idempotency_key = k.key ORDER BY e.revision DESC LIMIT 1) AS e),"
        " wanted AS (SELECT procedure_id FROM latest"
        " UNION SELECT p.procedure_id FROM unnest($2::text[], $3::text[], $4::text[]) AS k(ref, link, address)"
        " CROSS JOIN LATERAL (SELECT procedure_id FROM procedure WHERE procedure_ref = k.ref"
        " UNION ALL SELECT procedure_id FROM procedure WHERE link_key = k.link"
        " UNION ALL SELECT procedure_id FROM procedure WHERE address_key = k.address AND status = 'OPEN') AS p),"
        f" locked AS (SELECT {_PROCEDURE_COLUMNS} FROM procedure"
        " WHERE procedure_id = ANY(ARRAY(SELECT procedure_id FROM wanted)) ORDER BY procedure_id FOR UPDATE)"
        " SELECT 'r' AS kind, idempotency_key, procedure_id, revision, content_sha256, notification_id, warnings,"
        " NULL AS short_ref, NULL::uuid AS correlation_id, NULL AS departement, NULL AS procedure_ref,"
        " NULL AS link_key, NULL AS address_key, NULL AS current_stage, NULL::int AS current_rank, NULL AS status,"
        " NULL::date AS saisine_date, NULL::timestamptz AS created_at FROM latest"
        " UNION ALL SELECT 'p', NULL, procedure_id, NULL, NULL, NULL, NULL, short_ref, correlation_id, departement,"
        " procedure_ref, link_key, address_key, current_stage, current_rank, status, saisine_date, created_at"
        " FROM locked",
        list(idempotency_keys),
        list(refs),
        list(link_keys),
        list(address_keys),
    )
    latest = {
        r["idempotency_key"]: LatestRevision(
            r["procedure_id"], r["revision"], r["content_sha256"], r["notification_id"], tuple(r["warnings"] or ())
        )
        for r in rows
        if r["kind"] == "r"
    }
    procedures = sorted((r for r in rows if r["kind"] == "p"), key=lambda r: (r["created_at"], r["procedure_id"]))
    return latest, [_procedure(row) for row in procedures]


async def next_short_ref_numbers(conn: Conn, count: int) -> list[int]:
    """``count`` fresh numbers of the short-reference sequence, in one round trip."""
    if count <= 0:
        return []
    rows = await conn.fetch("SELECT nextval('procedure_short_ref_seq') AS n FROM generate_series(1, $1)", count)
    return [row["n"] for row in rows]


async def insert_procedures(conn: Conn, procedures: Sequence[Procedure]) -> None:
    """Insert the procedures a batch created (numbered: :meth:`Procedure.number`)."""
    if procedures:
        await conn.execute(
            "INSERT INTO procedure (procedure_id, short_ref, correlation_id, departement, procedure_ref, link_key,"
            " address_key, current_stage, current_rank, status, reopened_count, saisine_date)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],"
            " $7::text[], $8::text[], $9::int[], $10::text[], $11::int[], $12::date[])",
            *_attributes(
                procedures,
                "procedure_id short_ref correlation_id departement procedure_ref link_key address_key current_stage"
                " current_rank status reopened saisine_date",
            ),
        )


async def update_procedures(conn: Conn, procedures: Sequence[Procedure]) -> None:
    """Write back the stage, status and saisine of procedures a batch changed; add the times it reopened
    them to ``reopened_count``."""
    if procedures:
        await conn.execute(
            "UPDATE procedure AS p SET current_stage = u.current_stage, current_rank = u.current_rank,"
            " status = u.status, reopened_count = p.reopened_count + u.reopened, saisine_date = u.saisine_date,"
            " updated_at = now()"
            " FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[], $6::date[])"
            " AS u(procedure_id, current_stage, current_rank, status, reopened, saisine_date)"
            " WHERE p.procedure_id = u.procedure_id",
            *_attributes(procedures, "procedure_id current_stage current_rank status reopened saisine_date"),
        )


async def insert_stage_events(conn: Conn, rows: Sequence[StageEventRow]) -> None:
    """Append accepted revisions (``procedure_stage_event`` is append-only).

    ``record`` is taken from the outgoing event's JSON (``payload.notification``), which the caller has
    serialised anyway: the record is serialised once per notification, not twice.
    """
    if rows:
        await conn.execute(
            "INSERT INTO procedure_stage_event (notification_id, procedure_id, idempotency_key, revision,"
            " payload_sha256, content_sha256, stage, act_date, is_late, is_correction, record, raw_id,"
            " link_candidate_procedure_id)"
            " SELECT e.n, e.p, e.k, e.rev, e.ps, e.cs, e.st, e.ad, e.late, e.corr,"
            " convert_from(e.ev, 'UTF8')::jsonb -> 'payload' -> 'notification', e.raw, e.cand"
            " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[],"
            " $8::date[], $9::bool[], $10::bool[], $11::bytea[], $12::uuid[], $13::uuid[])"
            " AS e(n, p, k, rev, ps, cs, st, ad, late, corr, ev, raw, cand)",
            *_columns(rows, StageEventRow),
        )


async def insert_rejections(conn: Conn, rows: Sequence[RejectionRow]) -> None:
    if rows:
        await conn.execute(
            "INSERT INTO rejection (rejection_id, raw_id, emitter_id, external_ref, errors)"
            " SELECT r.id, r.raw, r.emitter, r.ref, r.errors::jsonb"
            " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[])"
            " AS r(id, raw, emitter, ref, errors)",
            *_columns(rows, RejectionRow),
        )


async def count_duplicates(conn: Conn, increments: Mapping[str, int]) -> dict[str, int]:
    """Add ``increments`` to the duplicate counts of their acts; return each act's running total."""
    if not increments:
        return {}
    rows = await conn.fetch(
        "INSERT INTO duplicate_count (idempotency_key, count) SELECT * FROM unnest($1::text[], $2::int[])"
        " ON CONFLICT (idempotency_key) DO UPDATE SET count = duplicate_count.count + excluded.count,"
        " last_seen_at = now() RETURNING idempotency_key, count",
        list(increments),
        list(increments.values()),
    )
    return {row["idempotency_key"]: row["count"] for row in rows}


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


# Resolved = a corrected payload re-submitted for it (``corrects_rejection_id``) was accepted.
_REJECTION_COLUMNS = (
    "j.rejection_id, j.created_at, j.emitter_id, j.external_ref,"
    " ARRAY(SELECT e ->> 'code' FROM jsonb_array_elements(j.errors) AS e) AS codes,"
    " r.channel, r.source_line,"
    " (SELECT c.raw_id FROM raw_inbound c WHERE c.corrects_rejection_id = j.rejection_id"
    "  AND c.outcome IN ('ACCEPTED', 'CORRECTION', 'DUPLICATE_IGNORED') ORDER BY c.received_at LIMIT 1)"
    " AS resolved_by"
)
_REJECTION_FROM = "FROM rejection j JOIN raw_inbound r ON r.raw_id = j.raw_id"


def _summary(row: asyncpg.Record) -> RejectionSummary:
    return RejectionSummary(
        rejection_id=row["rejection_id"],
        created_at=row["created_at"],
        emitter_id=row["emitter_id"],
        external_ref=row["external_ref"],
        codes=tuple(row["codes"]),
        channel=row["channel"],
        source_line=row["source_line"],
        resolved_by=row["resolved_by"],
    )


async def list_rejections(
    conn: Conn,
    *,
    emitter_id: str | None = None,
    since: datetime | None = None,
    code: str | None = None,
    unresolved: bool = False,
    limit: int = 100,
) -> list[RejectionSummary]:
    """Rejections, newest first. ``code`` matches a code or its prefix before ``:`` (``REQUIRED_FOR_STAGE_MISSING``)."""
    rows = await conn.fetch(
        f"SELECT * FROM (SELECT {_REJECTION_COLUMNS} {_REJECTION_FROM}"
        " WHERE ($1::text IS NULL OR j.emitter_id = $1) AND ($2::timestamptz IS NULL OR j.created_at >= $2)"
        " AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements(j.errors) AS e"
        "  WHERE e ->> 'code' = $3 OR e ->> 'code' LIKE $3 || ':%'))) AS found"
        " WHERE NOT $4::bool OR resolved_by IS NULL ORDER BY created_at DESC, rejection_id LIMIT $5",
        emitter_id,
        since,
        code,
        unresolved,
        limit,
    )
    return [_summary(row) for row in rows]


async def get_rejection(conn: Conn, rejection_id: uuid.UUID) -> RejectionDetail | None:
    row = await conn.fetchrow(
        f"SELECT {_REJECTION_COLUMNS}, j.errors, r.raw_id, r.source_system, r.received_at, r.payload_sha256,"
        f" r.payload {_REJECTION_FROM} WHERE j.rejection_id = $1",
        rejection_id,
    )
    if row is None:
        return None
    return RejectionDetail(
        summary=_summary(row),
        errors=list(row["errors"]),
        raw_id=row["raw_id"],
        source_system=row["source_system"],
        received_at=row["received_at"],
        payload_sha256=row["payload_sha256"],
        payload=bytes(row["payload"]),
    )
