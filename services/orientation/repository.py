"""SQL of orientation's assignments, decisions, status history and CCAPEX overrides.

The référentiel's own tables are in ``referential_repository``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from schemas.orientation import OrientationDecidedEvent
from services.platform.db import Conn
from services.platform.inbox import AdvisoryLocks

__all__ = [
    "AssignmentRow",
    "DecisionRow",
    "EscalationDue",
    "NewAssignment",
    "ProcedureState",
    "RefusedStatus",
    "StatusChange",
    "TruceEndDue",
    "assignment_for_update",
    "escalation_due",
    "expire_due",
    "history",
    "insert_assignments",
    "insert_decisions",
    "insert_escalations",
    "insert_history",
    "insert_truce_reminders",
    "last_decision",
    "lock_procedures",
    "procedure_assignments",
    "procedure_header",
    "procedure_locks",
    "procedure_state",
    "procedure_states",
    "record_refused",
    "set_override",
    "set_status",
    "store_notice_headers",
    "truce_end_due",
    "unannounced_overrides",
    "weekly_assignment_counts",
]

# Two-key advisory lock class of procedures (see referential_repository.REFERENTIAL_LOCK_CLASS).
PROCEDURE_LOCK_CLASS = 0x4F52_0002
_ASSIGNMENT_COLUMNS = (
    "assignment_id, procedure_id, structure_id, offer_ids, status, origin, mandatory, explanation,"
    " referentiel_version, correlation_id, status_reason, status_by, created_at, status_changed_at"
)


def _of_procedures(parameter: int, table: str) -> str:
    """``table`` (``"name alias"``) joined on its ``procedure_id`` to the distinct procedure ids of array
    parameter ``$parameter``, for a FROM clause.

    Rather than ``procedure_id = ANY($n)``: with a large array or young statistics the planner estimates ANY to
    match much of the table and reads it whole, and the plan PostgreSQL keeps for a prepared statement is chosen
    without the array (ingest's load_procedures had each batch cost O(table) that way). An unnest's rows are
    joined through the table's index on procedure_id. The ids must be distinct: the join would repeat rows.
    """
    alias = table.rsplit(maxsplit=1)[-1]
    return f"unnest(${parameter}::uuid[]) AS w(id) JOIN {table} ON {alias}.procedure_id = w.id"


@dataclass(frozen=True)
class ProcedureState:
    """What matching must know of a procedure: its open assignments and the structures the CCAPEX removed.

    ``open_assignments`` is updated in place by a batch that opens assignments, so a later notice of the
    same procedure in the batch sees them.
    """

    open_assignments: dict[str, uuid.UUID]
    removed_structures: frozenset[str]


@dataclass(frozen=True)
class NewAssignment:
    assignment_id: uuid.UUID
    procedure_id: uuid.UUID
    structure_id: str
    offer_ids: list[str]
    mandatory: bool
    priority: int
    over_capacity: bool
    explanation: str
    referentiel_version: int
    notification_id: uuid.UUID | None
    correlation_id: uuid.UUID
    event_id: uuid.UUID | None
    """The decision (or override) event that opened it, recorded in its history."""
    origin: str = "MATCHING"


@dataclass(frozen=True)
class AssignmentRow:
    assignment_id: uuid.UUID
    procedure_id: uuid.UUID
    structure_id: str
    offer_ids: list[str]
    status: str
    origin: str
    mandatory: bool
    explanation: str
    referentiel_version: int
    correlation_id: uuid.UUID | None
    status_reason: str | None
    status_by: str | None
    created_at: datetime
    status_changed_at: datetime | None


@dataclass(frozen=True)
class StatusChange:
    """One line of an assignment's history."""

    assignment_id: uuid.UUID
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None = None
    override: str | None = None
    event_id: uuid.UUID | None = None


@dataclass(frozen=True)
class RefusedStatus:
    event_id: uuid.UUID
    procedure_id: uuid.UUID
    assignment_id: uuid.UUID | None
    structure_id: str
    requested_status: str
    actor: str
    override: str | None
    current_status: str | None
    refusal: str
    detail: str


def procedure_locks(procedure_ids: Iterable[uuid.UUID]) -> AdvisoryLocks:
    """The advisory locks of these procedures (:func:`lock_procedures`), for a statement that takes them
    itself (``services.platform.inbox.claim_events``)."""
    keys = sorted({int.from_bytes(p.bytes[:4], "big", signed=True) for p in procedure_ids})
    return AdvisoryLocks(PROCEDURE_LOCK_CLASS, keys)


async def lock_procedures(conn: Conn, procedure_ids: Iterable[uuid.UUID]) -> None:
    """Serialise work on these procedures until the transaction ends (notices, status events, expiry).

    Locks are taken in one sorted pass so two batches sharing procedures never wait on each other in
    opposite orders (no deadlock).
    """
    locks = procedure_locks(procedure_ids)
    if locks.keys:
        await conn.execute(
            # A function scan of unnest yields the array in order: the locks are taken sorted.
            "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int[]) AS k",
            locks.lock_class,
            list(locks.keys),
        )


async def procedure_states(
    conn: Conn, procedure_ids: Iterable[uuid.UUID], *, lock: bool = True
) -> dict[uuid.UUID, ProcedureState]:
    """For each procedure: its open (OUVERTE/ACCEPTEE) assignments by structure, locked unless
    ``lock=False`` (readers), and the structures the CCAPEX removed. One round trip for both."""
    wanted = list(set(procedure_ids))
    # FOR UPDATE is refused beside UNION: the locking read is a CTE, which PostgreSQL runs in full.
    rows = await conn.fetch(
        f"WITH open AS (SELECT a.procedure_id, a.structure_id, a.assignment_id FROM {_of_procedures(1, 'assignment a')}"
        " WHERE a.status IN ('OUVERTE', 'ACCEPTEE')"
        + (" FOR UPDATE OF a" if lock else "")
        + ") SELECT procedure_id, structure_id, assignment_id FROM open"
        f" UNION ALL SELECT o.procedure_id, o.structure_id, NULL FROM {_of_procedures(1, 'structure_override o')}"
        " WHERE o.override = 'REMOVE'",
        wanted,
    )
    open_assignments: dict[uuid.UUID, dict[str, uuid.UUID]] = {procedure_id: {} for procedure_id in wanted}
    removed: dict[uuid.UUID, set[str]] = {procedure_id: set() for procedure_id in wanted}
    for row in rows:
        if row["assignment_id"] is None:
            removed[row["procedure_id"]].add(row["structure_id"])
        else:
            open_assignments[row["procedure_id"]][row["structure_id"]] = row["assignment_id"]
    return {
        procedure_id: ProcedureState(open_assignments[procedure_id], frozenset(removed[procedure_id]))
        for procedure_id in wanted
    }


async def procedure_state(conn: Conn, procedure_id: uuid.UUID, *, lock: bool = True) -> ProcedureState:
    """``procedure_states`` of one procedure."""
    return (await procedure_states(conn, [procedure_id], lock=lock))[procedure_id]


async def weekly_assignment_counts(conn: Conn, offer_ids: Iterable[str], *, now: datetime) -> dict[str, int]:
    """Offer id → assignments created in the week of ``now`` (from Monday 00:00, Paris time) that carry it.

    An assignment merging several offers of a structure counts against each of them. Refused ones and
    those the CCAPEX removed do not count: the partner did not take the household on.
    """
    wanted = sorted(set(offer_ids))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT offer_id, count(*) AS n FROM assignment, unnest(offer_ids) AS offer_id"
        " WHERE created_at"
        " >= date_trunc('week', $2::timestamptz AT TIME ZONE 'Europe/Paris') AT TIME ZONE 'Europe/Paris'"
        " AND status <> 'REFUSEE' AND NOT removed_by_ccapex AND offer_id = ANY($1::text[])"
        " GROUP BY offer_id",
        wanted,
        now,
    )
    return {r["offer_id"]: r["n"] for r in rows}


# The order of insert_assignments' parameters $1 to $12.
_NEW_ASSIGNMENT_COLUMNS = (
    "assignment_id",
    "procedure_id",
    "structure_id",
    "mandatory",
    "priority",
    "over_capacity",
    "explanation",
    "referentiel_version",
    "notification_id",
    "correlation_id",
    "origin",
    "event_id",
)


async def insert_assignments(conn: Conn, rows: Sequence[NewAssignment], *, now: datetime) -> None:
    """Insert new OUVERTE assignments, created at ``now`` (the service's clock: expiry and weekly capacity
    count from it), and the first line of their history, in one statement (one round trip for both)."""
    if not rows:
        return
    await conn.execute(
        # The history's foreign key is checked at the end of the statement, once the CTE's rows exist. Offer
        # ids travel as JSON arrays ($13): unnest would flatten a text[][] into one column of single offers.
        "WITH opened AS (INSERT INTO assignment (assignment_id, procedure_id, structure_id, offer_ids, mandatory,"
        " priority, over_capacity, explanation, referentiel_version, notification_id, correlation_id, origin,"
        " created_at)"
        " SELECT a.id, a.procedure_id, a.structure_id, ARRAY(SELECT jsonb_array_elements_text(a.offer_ids::jsonb)),"
        " a.mandatory, a.priority, a.over_capacity, a.explanation, a.version, a.notification_id, a.correlation_id,"
        " a.origin, $14"
        " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $13::text[], $4::bool[], $5::int[], $6::bool[], $7::text[],"
        " $8::int[], $9::uuid[], $10::uuid[], $11::text[]) AS a(id, procedure_id, structure_id, offer_ids,"
        " mandatory, priority, over_capacity, explanation, version, notification_id, correlation_id, origin))"
        " INSERT INTO assignment_status_history (assignment_id, from_status, to_status, actor, override, event_id)"
        " SELECT h.id, NULL, 'OUVERTE', CASE WHEN h.origin = 'OVERRIDE' THEN 'CCAPEX' ELSE 'ORIENTATION' END,"
        " CASE WHEN h.origin = 'OVERRIDE' THEN 'ADD' END, h.event_id"
        " FROM unnest($1::uuid[], $11::text[], $12::uuid[]) WITH ORDINALITY AS h(id, origin, event_id, position)"
        " ORDER BY h.position",
        *([getattr(a, name) for a in rows] for name in _NEW_ASSIGNMENT_COLUMNS),
        [json.dumps(a.offer_ids) for a in rows],
        now,
    )


async def insert_history(conn: Conn, changes: Sequence[StatusChange]) -> None:
    await conn.executemany(
        "INSERT INTO assignment_status_history (assignment_id, from_status, to_status, reason, actor, override,"
        " event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(c.assignment_id, c.from_status, c.to_status, c.reason, c.actor, c.override, c.event_id) for c in changes],
    )


async def assignment_for_update(conn: Conn, assignment_id: uuid.UUID) -> AssignmentRow | None:
    row = await conn.fetchrow(
        f"SELECT {_ASSIGNMENT_COLUMNS} FROM assignment WHERE assignment_id = $1 FOR UPDATE", assignment_id
    )
    return AssignmentRow(**dict(row)) if row else None


async def procedure_assignments(conn: Conn, procedure_id: uuid.UUID) -> list[AssignmentRow]:
    """Every assignment of a procedure, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_ASSIGNMENT_COLUMNS} FROM assignment WHERE procedure_id = $1 ORDER BY created_at, structure_id",
        procedure_id,
    )
    return [AssignmentRow(**dict(row)) for row in rows]


async def history(conn: Conn, assignment_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT assignment_id, from_status, to_status, reason, actor, override, event_id, changed_at"
        " FROM assignment_status_history WHERE assignment_id = ANY($1::uuid[]) ORDER BY id",
        list(assignment_ids),
    )
    return [dict(row) for row in rows]


async def set_status(conn: Conn, change: StatusChange, *, removed_by_ccapex: bool = False) -> None:
    """Move an assignment to ``change.to_status`` and append the change to its history."""
    await conn.execute(
        "UPDATE assignment SET status = $2, status_reason = $3, status_by = $4, status_changed_at = now(),"
        " updated_at = now(), removed_by_ccapex = removed_by_ccapex OR $5 WHERE assignment_id = $1",
        change.assignment_id,
        change.to_status,
        change.reason,
        change.actor,
        removed_by_ccapex,
    )
    await insert_history(conn, [change])


async def set_override(
    conn: Conn, procedure_id: uuid.UUID, structure_id: str, override: str, event_id: uuid.UUID
) -> None:
    """Record the CCAPEX's last word on (procedure, structure): ``ADD`` or ``REMOVE``."""
    await conn.execute(
        "INSERT INTO structure_override (procedure_id, structure_id, override, event_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (procedure_id, structure_id) DO UPDATE SET override = $3, event_id = $4, changed_at = now()",
        procedure_id,
        structure_id,
        override,
        event_id,
    )


async def record_refused(conn: Conn, refused: RefusedStatus) -> None:
    await conn.execute(
        "INSERT INTO assignment_status_refused (event_id, procedure_id, assignment_id, structure_id,"
        " requested_status, actor, override, current_status, refusal, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING",
        refused.event_id,
        refused.procedure_id,
        refused.assignment_id,
        refused.structure_id,
        refused.requested_status,
        refused.actor,
        refused.override,
        refused.current_status,
        refused.refusal,
        refused.detail,
    )


async def last_decision(conn: Conn, procedure_id: uuid.UUID) -> dict[str, Any] | None:
    """The payload of the procedure's latest decision (what its alerts showed), if any."""
    result: dict[str, Any] | None = await conn.fetchval(
        "SELECT result FROM decision WHERE procedure_id = $1 ORDER BY created_at DESC LIMIT 1", procedure_id
    )
    return result


async def procedure_header(conn: Conn, procedure_id: uuid.UUID) -> dict[str, Any] | None:
    """What the procedure's alerts show: its latest decision's payload or, without a decision, the header of
    its latest notice orientation did not orient (``store_notice_headers``); ``None`` when orientation has
    seen neither."""
    decided = await last_decision(conn, procedure_id)
    if decided is not None:
        return decided
    header: dict[str, Any] | None = await conn.fetchval(
        "SELECT header FROM notice_header WHERE procedure_id = $1", procedure_id
    )
    return header


async def store_notice_headers(conn: Conn, headers: Sequence[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]]) -> None:
    """Keep (procedure, notification, ``events.alert_header``) of notices not oriented, the latest per
    procedure."""
    if not headers:
        return
    await conn.executemany(
        "INSERT INTO notice_header (procedure_id, notification_id, header) VALUES ($1, $2, $3)"
        " ON CONFLICT (procedure_id) DO UPDATE SET notification_id = $2, header = $3, received_at = now()",
        headers,
    )


async def unannounced_overrides(
    conn: Conn, procedure_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, uuid.UUID]]:
    """Procedure → {structure → assignment} of the OUVERTE assignments a CCAPEX ``ADD`` opened that no decision
    announced yet (none lists them as NEW): added before orientation had anything to show of the procedure."""
    rows = await conn.fetch(
        f"SELECT a.procedure_id, a.structure_id, a.assignment_id FROM {_of_procedures(1, 'assignment a')}"
        " WHERE a.origin = 'OVERRIDE' AND a.status = 'OUVERTE'"
        " AND NOT EXISTS (SELECT 1 FROM decision d WHERE d.procedure_id = a.procedure_id AND d.result -> 'assignments'"
        "  @> jsonb_build_array(jsonb_build_object('assignment_id', a.assignment_id::text, 'kind', 'NEW')))"
        " ORDER BY a.created_at, a.structure_id",
        list(set(procedure_ids)),
    )
    pending: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
    for row in rows:
        pending.setdefault(row["procedure_id"], {})[row["structure_id"]] = row["assignment_id"]
    return pending


@dataclass(frozen=True)
class DecisionRow:
    """A published decision: the ``orientation.decided`` event id and payload, and what it was based on."""

    decision_id: uuid.UUID
    procedure_id: uuid.UUID
    notification_id: uuid.UUID
    stage: str
    referentiel_version: int
    rules_version: str
    fallback_used: bool
    result: dict[str, Any]

    @classmethod
    def of(cls, decided: OrientationDecidedEvent) -> DecisionRow:
        """The row of a decided event about to be published (its payload is stored whole)."""
        payload = decided.payload
        return cls(
            decision_id=decided.event_id,
            procedure_id=payload.procedure_id,
            notification_id=payload.notification_id,
            stage=payload.stage.value,
            referentiel_version=payload.referentiel_version,
            rules_version=payload.rules_version,
            fallback_used=payload.fallback_used,
            result=payload.model_dump(mode="json"),
        )


async def insert_decisions(conn: Conn, rows: Sequence[DecisionRow]) -> None:
    if not rows:
        return
    await conn.executemany(
        "INSERT INTO decision (decision_id, procedure_id, notification_id, stage, referentiel_version,"
        " rules_version, fallback_used, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                d.decision_id,
                d.procedure_id,
                d.notification_id,
                d.stage,
                d.referentiel_version,
                d.rules_version,
                d.fallback_used,
                d.result,
            )
            for d in rows
        ],
    )


@dataclass(frozen=True)
class TruceEndDue:
    """A procedure whose latest decision puts its earliest expulsion on the day the trêve ends."""

    procedure_id: uuid.UUID
    last_decision: dict[str, Any]
    correlation_id: uuid.UUID | None
    """The procedure's correlation id, from its latest assignment (``None`` if it has none)."""


async def truce_end_due(
    conn: Conn, truce_end: date, *, limit: int, among: Collection[uuid.UUID] | None = None
) -> list[TruceEndDue]:
    """Up to ``limit`` procedures (``among`` these, if given) whose latest decision has ``truce_end`` as
    its earliest expulsion date and that have no reminder for it yet, by procedure id."""
    # Two statements rather than "$3 IS NULL OR …": the plan kept for a prepared statement must serve both, and
    # read every decision. The sweep reaches the decisions with that date through decision_earliest_expulsion
    # (migration 006), the recheck under locks the procedures' own through decision_by_procedure.
    decisions = "decision d" if among is None else _of_procedures(3, "decision d")
    rows = await conn.fetch(
        "SELECT d.procedure_id, d.result,"
        " (SELECT a.correlation_id FROM assignment a WHERE a.procedure_id = d.procedure_id"
        "  ORDER BY a.created_at DESC LIMIT 1) AS correlation_id"
        f" FROM {decisions} WHERE d.result ->> 'earliest_expulsion_date' = $1::date::text"
        # The procedure's latest: no decision after it (a batch deciding a procedure twice gives both one
        # created_at, the decision id breaks the tie so that one procedure is one row).
        " AND NOT EXISTS (SELECT 1 FROM decision later WHERE later.procedure_id = d.procedure_id"
        "  AND (later.created_at, later.decision_id) > (d.created_at, d.decision_id))"
        " AND NOT EXISTS (SELECT 1 FROM truce_reminder r"
        "  WHERE r.procedure_id = d.procedure_id AND r.truce_end = $1)"
        " ORDER BY d.procedure_id LIMIT $2",
        truce_end,
        limit,
        *(() if among is None else (list(set(among)),)),
    )
    return [TruceEndDue(row["procedure_id"], row["result"], row["correlation_id"]) for row in rows]


async def insert_truce_reminders(conn: Conn, truce_end: date, decisions: Mapping[uuid.UUID, uuid.UUID | None]) -> None:
    """Record that these procedures (→ their reminder decision, ``None``: nobody to remind) were handled."""
    await conn.execute(
        "INSERT INTO truce_reminder (procedure_id, truce_end, decision_id)"
        " SELECT p, $1, d FROM unnest($2::uuid[], $3::uuid[]) AS r(p, d)",
        truce_end,
        list(decisions),
        list(decisions.values()),
    )


@dataclass(frozen=True)
class EscalationDue:
    """An OUVERTE assignment due for an escalation step."""

    assignment_id: uuid.UUID
    procedure_id: uuid.UUID
    structure_id: str
    correlation_id: uuid.UUID | None


ESCALATION_ZONE = "Europe/Paris"
"""The zone whose calendar days the working days of an escalation are counted in."""


async def escalation_due(
    conn: Conn,
    *,
    step: str,
    after: str | None,
    cutoff: date,
    limit: int,
    among: Collection[uuid.UUID] | None = None,
) -> list[EscalationDue]:
    """Up to ``limit`` OUVERTE assignments (of the procedures ``among``, if given) without a ``step`` row,
    whose start is on or before ``cutoff``: the day they opened (``after`` None) or the day of their
    ``after`` step; oldest first."""
    # No ``after`` step: the opening day; otherwise that step's day (NULL, never due, while it is missing).
    start = (
        f"CASE WHEN $4::text IS NULL THEN (a.created_at AT TIME ZONE '{ESCALATION_ZONE}')::date"
        " ELSE (SELECT e.sent_on FROM assignment_escalation e WHERE e.assignment_id = a.assignment_id"
        " AND e.step = $4::text) END"
    )
    # As truce_end_due: one statement per form, each with a plan of its own (the sweep's through assignment_open,
    # the recheck's through the procedures' assignments).
    assignments = "assignment a" if among is None else _of_procedures(5, "assignment a")
    rows = await conn.fetch(
        f"SELECT a.assignment_id, a.procedure_id, a.structure_id, a.correlation_id FROM {assignments}"
        f" WHERE a.status = 'OUVERTE' AND {start} <= $2"
        " AND NOT EXISTS (SELECT 1 FROM assignment_escalation e WHERE e.assignment_id = a.assignment_id"
        "  AND e.step = $1)"
        " ORDER BY a.created_at LIMIT $3",
        step,
        cutoff,
        limit,
        after,
        *(() if among is None else (list(set(among)),)),
    )
    return [EscalationDue(**dict(row)) for row in rows]


async def insert_escalations(
    conn: Conn, step: str, sent_on: date, events: Mapping[uuid.UUID, uuid.UUID]
) -> set[uuid.UUID]:
    """Record ``step`` for these assignments (→ the event announcing it); return the assignments recorded
    now (one recorded already, by another replica, is left out)."""
    rows = await conn.fetch(
        "INSERT INTO assignment_escalation (assignment_id, step, sent_on, event_id)"
        " SELECT a, $1, $2, e FROM unnest($3::uuid[], $4::uuid[]) AS r(a, e)"
        " ON CONFLICT DO NOTHING RETURNING assignment_id",
        step,
        sent_on,
        list(events),
        list(events.values()),
    )
    return {row["assignment_id"] for row in rows}


async def expire_due(conn: Conn, *, days: int, limit: int, now: datetime) -> list[AssignmentRow]:
    """Move up to ``limit`` OUVERTE assignments created more than ``days`` before ``now`` to EXPIREE;
    return them, expired.

    ``SKIP LOCKED``: a replica running the same sweep, or a status event being applied, keeps its rows.
    """
    rows = await conn.fetch(
        f"WITH due AS (SELECT assignment_id FROM assignment WHERE status = 'OUVERTE'"
        f" AND created_at < $4::timestamptz - make_interval(days => $1) ORDER BY created_at LIMIT $2"
        f" FOR UPDATE SKIP LOCKED)"
        f" UPDATE assignment a SET status = 'EXPIREE', status_reason = $3, status_by = 'SYSTEM',"
        f" status_changed_at = now(), updated_at = now() FROM due WHERE a.assignment_id = due.assignment_id"
        f" RETURNING {', '.join('a.' + c.strip() for c in _ASSIGNMENT_COLUMNS.split(','))}",
        days,
        limit,
        EXPIRY_REASON,
        now,
    )
    return [AssignmentRow(**dict(row)) for row in rows]


EXPIRY_REASON = "SANS_REPONSE"
"""Reason code of an expiry: no answer from the partner within the configured number of days."""
