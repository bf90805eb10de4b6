"""SQL of the workspace's schema: the read model, sessions, partners' actions, the audit log, retention.

Every function runs on the caller's connection (and transaction); none opens one of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from schemas.assignment import AssignmentStatus
from schemas.procedure import EmitterType, ProcedureNotification, Urgency
from schemas.referential import StructureRecord
from schemas.stages import Stage
from services.platform.db import Conn
from services.workspace.domain.casefile import ReceivedStage

__all__ = [
    "ActionRow",
    "AssignmentRow",
    "CaseRow",
    "ProcedureRow",
    "SessionRow",
    "assignments_by_prefix",
    "assignments_of",
    "audit",
    "create_session",
    "end_session",
    "latest_actions",
    "my_cases",
    "procedure_by_ref",
    "purge_closed",
    "record_action",
    "referential",
    "session_by_hash",
    "stages_of",
    "structure",
    "touch_session",
]


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    """An assignment with its procedure's reference and its structure's name (the id when unknown)."""

    assignment_id: uuid.UUID
    procedure_id: uuid.UUID
    short_ref: str
    structure_id: str
    structure_name: str
    status: AssignmentStatus
    status_reason: str | None
    status_at: datetime
    explanation: str | None
    decided_at: datetime
    offer_ids: list[str]
    mandatory: bool
    over_capacity: bool


@dataclass(frozen=True, slots=True)
class ProcedureRow:
    """A procedure of the read model; ``record`` is ``None`` before its notice arrived or once purged."""

    procedure_id: uuid.UUID
    short_ref: str
    correlation_id: uuid.UUID | None
    record: ProcedureNotification | None
    stage: Stage | None
    urgency: Urgency | None
    commune: str | None
    earliest_expulsion_date: date | None
    closed_at: datetime | None
    purged_at: datetime | None


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One line of « mes dossiers »."""

    short_ref: str
    status: AssignmentStatus
    stage: Stage | None
    urgency: Urgency | None
    commune: str | None
    earliest_expulsion_date: date | None
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: uuid.UUID
    structure_id: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    role: str | None = None
    """Set for the CCAPEX secretariat's desk sessions (``desk_repository``), ``None`` for a partner's."""


@dataclass(frozen=True, slots=True)
class ActionRow:
    """A partner's last action on an assignment and what orientation's rules made of it (``None``: not yet back)."""

    assignment_id: uuid.UUID
    action: str
    reason: str | None
    comment: str | None
    requested_at: datetime
    outcome: str | None
    outcome_detail: str | None


# ------------------------------------------------------------------------------------------- read model

_ASSIGNMENT_COLUMNS = """a.assignment_id, a.procedure_id, p.short_ref, a.structure_id,
    coalesce(s.record->>'nom', a.structure_id) AS structure_name, a.status, a.status_reason, a.status_at,
    a.explanation, a.decided_at, a.offer_ids, a.mandatory, a.over_capacity
    FROM assignment a JOIN procedure p USING (procedure_id) LEFT JOIN structure s USING (structure_id)"""


def _assignment(row: Any) -> AssignmentRow:
    return AssignmentRow(**{**dict(row), "status": AssignmentStatus(row["status"])})


async def assignments_by_prefix(conn: Conn, prefix: bytes) -> list[AssignmentRow]:
    """The assignments whose id starts with a link token's ``prefix`` (almost always one)."""
    rows = await conn.fetch(f"SELECT {_ASSIGNMENT_COLUMNS} WHERE a.link_prefix = $1", prefix)
    return [_assignment(row) for row in rows]


async def assignments_of(conn: Conn, procedure_id: uuid.UUID) -> list[AssignmentRow]:
    """Every assignment of a procedure, oldest decision first."""
    rows = await conn.fetch(
        f"SELECT {_ASSIGNMENT_COLUMNS} WHERE a.procedure_id = $1 ORDER BY a.decided_at, a.structure_id", procedure_id
    )
    return [_assignment(row) for row in rows]


async def procedure_by_ref(conn: Conn, short_ref: str) -> ProcedureRow | None:
    """The procedure with this reference, if the read model has it."""
    row = await conn.fetchrow(
        "SELECT procedure_id, short_ref, correlation_id, case_file::text, stage, urgency, commune_name, commune_insee,"
        " earliest_expulsion_date, closed_at, purged_at FROM procedure WHERE short_ref = $1",
        short_ref,
    )
    if row is None:
        return None
    return ProcedureRow(
        procedure_id=row["procedure_id"],
        short_ref=row["short_ref"],
        correlation_id=row["correlation_id"],
        record=ProcedureNotification.model_validate_json(row["case_file"]) if row["case_file"] is not None else None,
        stage=Stage(row["stage"]) if row["stage"] else None,
        urgency=Urgency(row["urgency"]) if row["urgency"] else None,
        commune=row["commune_name"] or row["commune_insee"],
        earliest_expulsion_date=row["earliest_expulsion_date"],
        closed_at=row["closed_at"],
        purged_at=row["purged_at"],
    )


async def stages_of(conn: Conn, procedure_id: uuid.UUID) -> list[ReceivedStage]:
    """Every act received for the procedure."""
    rows = await conn.fetch(
        "SELECT stage, act_date, hearing_date, emitter_type, is_correction, is_late FROM stage_received"
        " WHERE procedure_id = $1",
        procedure_id,
    )
    return [
        ReceivedStage(
            Stage(r["stage"]),
            r["act_date"],
            r["hearing_date"],
            EmitterType(r["emitter_type"]),
            r["is_correction"],
            r["is_late"],
        )
        for r in rows
    ]


async def my_cases(conn: Conn, structure_id: str, statuses: Sequence[AssignmentStatus]) -> list[CaseRow]:
    """The structure's assignments in ``statuses`` with their procedure's summary (unsorted)."""
    rows = await conn.fetch(
        "SELECT p.short_ref, a.status, p.stage, p.urgency, coalesce(p.commune_name, p.commune_insee) AS commune,"
        " p.earliest_expulsion_date, a.decided_at FROM assignment a JOIN procedure p USING (procedure_id)"
        " WHERE a.structure_id = $1 AND a.status = ANY($2::text[])",
        structure_id,
        [s.value for s in statuses],
    )
    return [
        CaseRow(
            short_ref=r["short_ref"],
            status=AssignmentStatus(r["status"]),
            stage=Stage(r["stage"]) if r["stage"] else None,
            urgency=Urgency(r["urgency"]) if r["urgency"] else None,
            commune=r["commune"],
            earliest_expulsion_date=r["earliest_expulsion_date"],
            decided_at=r["decided_at"],
        )
        for r in rows
    ]


async def structure(conn: Conn, structure_id: str) -> StructureRecord | None:
    """The structure's last record from the référentiel topic, if one came."""
    text = await conn.fetchval("SELECT record::text FROM structure WHERE structure_id = $1", structure_id)
    return StructureRecord.model_validate_json(text) if text is not None else None


async def referential(conn: Conn) -> list[StructureRecord]:
    """Every structure the référentiel topic published, as last published."""
    # As text: the contracts are strict, their dates and enums are read from JSON, not from Python values.
    rows = await conn.fetch("SELECT record::text FROM structure")
    return [StructureRecord.model_validate_json(r["record"]) for r in rows]


# ------------------------------------------------------------------------------------------- sessions


async def create_session(
    conn: Conn,
    *,
    session_id: uuid.UUID,
    secret_hash: bytes,
    structure_id: str,
    csrf_token: str,
    now: datetime,
    role: str | None = None,
    principal: str | None = None,
) -> None:
    """Store a new session (the cookie's hash only); ``role`` and ``principal`` (the token's name) for the
    CCAPEX secretariat's desk, both or neither."""
    await conn.execute(
        "INSERT INTO session (session_id, token_hash, structure_id, csrf_token, created_at, last_seen_at, role,"
        " principal) VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
        session_id,
        secret_hash,
        structure_id,
        csrf_token,
        now,
        role,
        principal,
    )


async def session_by_hash(conn: Conn, secret_hash: bytes) -> SessionRow | None:
    """The session whose cookie hashes to ``secret_hash``, unless it was ended."""
    row = await conn.fetchrow(
        "SELECT session_id, structure_id, csrf_token, created_at, last_seen_at, role FROM session"
        " WHERE token_hash = $1 AND ended_at IS NULL",
        secret_hash,
    )
    return SessionRow(**dict(row)) if row else None


async def touch_session(conn: Conn, session_id: uuid.UUID, now: datetime) -> None:
    await conn.execute("UPDATE session SET last_seen_at = $2 WHERE session_id = $1", session_id, now)


async def end_session(conn: Conn, session_id: uuid.UUID, now: datetime) -> None:
    await conn.execute("UPDATE session SET ended_at = $2 WHERE session_id = $1 AND ended_at IS NULL", session_id, now)


# ------------------------------------------------------------------------------------ actions and audit


async def record_action(
    conn: Conn,
    *,
    event_id: uuid.UUID,
    assignment_id: uuid.UUID,
    session_id: uuid.UUID,
    action: str,
    reason: str | None,
    comment: str | None,
    now: datetime,
) -> None:
    """Remember what the partner asked; ``event_id`` is the ``assignment.status`` event it published."""
    await conn.execute(
        "INSERT INTO partner_action (event_id, assignment_id, session_id, action, reason, comment, requested_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event_id,
        assignment_id,
        session_id,
        action,
        reason,
        comment,
        now,
    )


async def latest_actions(conn: Conn, assignment_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ActionRow]:
    """Each assignment's last partner action, if any."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (assignment_id) assignment_id, action, reason, comment, requested_at, outcome,"
        " outcome_detail FROM partner_action WHERE assignment_id = ANY($1::uuid[])"
        " ORDER BY assignment_id, requested_at DESC",
        list(assignment_ids),
    )
    return {r["assignment_id"]: ActionRow(**dict(r)) for r in rows}


async def audit(
    conn: Conn,
    *,
    at: datetime,
    action: str,
    outcome: str,
    session_id: uuid.UUID | None = None,
    structure_id: str | None = None,
    procedure_id: uuid.UUID | None = None,
) -> None:
    """Append one line to the audit log: who (session, structure), when, which procedure, what, how it ended."""
    await conn.execute(
        "INSERT INTO audit_log (at, session_id, structure_id, procedure_id, action, outcome)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        at,
        session_id,
        structure_id,
        procedure_id,
        action,
        outcome,
    )


# ------------------------------------------------------------------------------------------- retention


async def purge_closed(conn: Conn, *, closed_before: datetime, now: datetime) -> int:
    """Blank the personal data of procedures closed before ``closed_before``: the case file, the
    explanations (they quote household amounts) and the partners' comments. Returns how many."""
    purged = await conn.fetch(
        "UPDATE procedure SET case_file = NULL, purged_at = $2"
        " WHERE closed_at < $1 AND purged_at IS NULL RETURNING procedure_id",
        closed_before,
        now,
    )
    ids = [r["procedure_id"] for r in purged]
    if ids:
        await conn.execute("UPDATE assignment SET explanation = NULL WHERE procedure_id = ANY($1::uuid[])", ids)
        await conn.execute(
            "UPDATE partner_action SET comment = NULL WHERE assignment_id IN"
            " (SELECT assignment_id FROM assignment WHERE procedure_id = ANY($1::uuid[]))",
            ids,
        )
    return len(ids)
