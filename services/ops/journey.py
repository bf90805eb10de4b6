"""``trace``: gather a case's steps from each service's schema (read-only SQL), as a :class:`Journey`.

A query is a procedure reference (``90-2026-000001``), an emitter's reference (external or procedure
ref), or an id: a procedure, correlation, notification, decision, assignment, alert, delivery or event id.
The services share the procedure id (ingest gives it, every event carries it), so the query is first
resolved to procedure ids, then each schema is read for them. A rejected act has no procedure: it is found
by its external reference.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.ops.readers import Schemas
from services.ops.timeline import Journey, Step, mask_figures

__all__ = ["NotFoundError", "trace"]

Ids = list[uuid.UUID]
_PERSONAL_RECORD_PARTS = ("household", "dwelling", "landlord", "lease", "debt")


class NotFoundError(LookupError):
    """No service knows the query."""


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def _procedure_ids(schemas: Schemas, query: str) -> Ids:
    """The procedure ids the query names, in any schema (an id may be known only downstream)."""
    as_id = _as_uuid(query)
    found: set[uuid.UUID] = set()
    if (ingest := schemas.get("ingest")) is not None:
        rows = await ingest.fetch(
            "SELECT procedure_id FROM procedure WHERE short_ref = $1 OR procedure_ref = $1"
            " OR procedure_id = $2 OR correlation_id = $2"
            " UNION SELECT procedure_id FROM procedure_stage_event"
            "  WHERE notification_id = $2 OR record -> 'source' ->> 'external_ref' = $1"
            "   OR record -> 'source' ->> 'procedure_ref' = $1",
            query,
            as_id,
        )
        found.update(r["procedure_id"] for r in rows)
    if as_id is not None and (orientation := schemas.get("orientation")) is not None:
        rows = await orientation.fetch(
            "SELECT procedure_id FROM decision WHERE decision_id = $1 OR notification_id = $1"
            " UNION SELECT procedure_id FROM assignment WHERE assignment_id = $1 OR correlation_id = $1"
            " UNION SELECT a.procedure_id FROM assignment_status_history h JOIN assignment a USING (assignment_id)"
            "  WHERE h.event_id = $1",
            as_id,
        )
        found.update(r["procedure_id"] for r in rows)
    if as_id is not None and (notifier := schemas.get("notifier")) is not None:
        rows = await notifier.fetch(
            "SELECT procedure_id FROM alert WHERE alert_id = $1 OR correlation_id = $1 OR assignment_id = $1"
            " UNION SELECT procedure_id FROM delivery WHERE delivery_id = $1 AND procedure_id IS NOT NULL",
            as_id,
        )
        found.update(r["procedure_id"] for r in rows)
    return sorted(found)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _act_personal(record: Mapping[str, Any]) -> dict[str, Any]:
    personal = {part: record[part] for part in _PERSONAL_RECORD_PARTS if record.get(part)}
    derived = record.get("derived") or {}
    if derived.get("months_of_rent") is not None:  # computed from the debt and the rent
        personal["months_of_rent"] = derived["months_of_rent"]
    return personal


async def _ingest(conn: asyncpg.Connection[asyncpg.Record], ids: Ids, refs: set[str]) -> list[Step]:
    steps: list[Step] = []
    acts = await conn.fetch(
        "SELECT e.*, r.received_at, r.channel, r.emitter_key FROM procedure_stage_event e"
        " JOIN raw_inbound r USING (raw_id) WHERE e.procedure_id = ANY($1) ORDER BY e.created_at",
        ids,
    )
    for act in acts:
        record = act["record"]
        source = record.get("source") or {}
        refs.update(ref for ref in (source.get("external_ref"), source.get("procedure_ref")) if ref)
        derived = {k: v for k, v in (record.get("derived") or {}).items() if k != "months_of_rent"}
        steps.append(
            Step(
                _utc(act["received_at"]),
                "ingest",
                "act.correction" if act["is_correction"] else "act.accepted",
                {
                    "stage": act["stage"],
                    "act_date": act["act_date"],
                    "revision": act["revision"],
                    "late": act["is_late"],
                    "emitter_type": source.get("emitter_type"),
                    "emitter_id": source.get("emitter_id"),
                    "external_ref": source.get("external_ref"),
                    "channel": act["channel"],
                    "notification_id": act["notification_id"],
                    "derived": derived,
                    "warnings": record.get("warnings") or [],
                },
                _act_personal(record),
            )
        )
    duplicates = await conn.fetch(
        "SELECT r.received_at, r.channel, e.stage FROM raw_inbound r"
        " JOIN procedure_stage_event e ON e.payload_sha256 = r.payload_sha256"
        " WHERE r.outcome = 'DUPLICATE_IGNORED' AND e.procedure_id = ANY($1) ORDER BY r.received_at",
        ids,
    )
    steps.extend(
        Step(_utc(d["received_at"]), "ingest", "act.duplicate", {"stage": d["stage"], "channel": d["channel"]})
        for d in duplicates
    )
    rejections = await conn.fetch(
        "SELECT j.*, r.channel FROM rejection j JOIN raw_inbound r USING (raw_id)"
        " WHERE j.external_ref = ANY($1) ORDER BY j.created_at",
        sorted(refs),
    )
    steps.extend(
        Step(
            _utc(j["created_at"]),
            "ingest",
            "act.rejected",
            {
                "rejection_id": j["rejection_id"],
                "emitter_id": j["emitter_id"],
                "external_ref": j["external_ref"],
                "channel": j["channel"],
                "codes": [f"{e.get('code')}:{e['field']}" if e.get("field") else e.get("code") for e in j["errors"]],
            },
        )
        for j in rejections
    )
    return steps


async def _orientation(conn: asyncpg.Connection[asyncpg.Record], ids: Ids) -> list[Step]:
    steps: list[Step] = []
    for d in await conn.fetch("SELECT * FROM decision WHERE procedure_id = ANY($1) ORDER BY created_at", ids):
        result = d["result"] or {}
        steps.append(
            Step(
                _utc(d["created_at"]),
                "orientation",
                "decision",
                {
                    "decision_id": d["decision_id"],
                    "stage": d["stage"],
                    "trigger": result.get("trigger"),
                    "urgency": result.get("urgency"),
                    "fallback": d["fallback_used"],
                    "referentiel_version": d["referentiel_version"],
                    "rules_version": d["rules_version"],
                    "structures": [a.get("structure_id") for a in result.get("assignments") or []],
                },
            )
        )
    history = await conn.fetch(
        "SELECT h.*, a.structure_id, a.explanation, a.offer_ids FROM assignment_status_history h"
        " JOIN assignment a USING (assignment_id) WHERE a.procedure_id = ANY($1) ORDER BY h.id",
        ids,
    )
    for h in history:
        opened = h["from_status"] is None
        facts: dict[str, Any] = {
            "assignment_id": h["assignment_id"],
            "structure_id": h["structure_id"],
            "status": f"{h['from_status']} → {h['to_status']}" if not opened else h["to_status"],
            "actor": h["actor"],
            "reason": h["reason"],
            "override": h["override"],
        }
        personal: dict[str, Any] = {}
        if opened:
            facts["offers"] = list(h["offer_ids"])
            facts["explanation"] = mask_figures(h["explanation"])
            personal["explanation"] = h["explanation"]
        kind = "assignment.opened" if opened else "assignment.status"
        steps.append(Step(_utc(h["changed_at"]), "orientation", kind, facts, personal))
    refused = await conn.fetch(
        "SELECT * FROM assignment_status_refused WHERE procedure_id = ANY($1) ORDER BY received_at", ids
    )
    steps.extend(
        Step(
            _utc(r["received_at"]),
            "orientation",
            "assignment.status_refused",
            {
                "event_id": r["event_id"],
                "structure_id": r["structure_id"],
                "requested": r["requested_status"],
                "current": r["current_status"],
                "refusal": r["refusal"],
                "actor": r["actor"],
            },
        )
        for r in refused
    )
    return steps


async def _notifier(conn: asyncpg.Connection[asyncpg.Record], ids: Ids) -> list[Step]:
    alerts = await conn.fetch("SELECT * FROM alert WHERE procedure_id = ANY($1) ORDER BY seq", ids)
    steps = [
        Step(
            _utc(a["created_at"]),
            "notifier",
            "alert",
            {
                "alert_id": a["alert_id"],
                "structure_id": a["structure_id"],
                "stage": a["stage"],
                "urgency": a["urgency"],
                "mode": a["mode"],
                "manual_orientation": a["manual_orientation"],
                "truce_end": a["truce_end"],
                "state": a["state"],
                "warnings": a["warnings"],
            },
        )
        for a in alerts
    ]
    deliveries = await conn.fetch(
        "SELECT d.* FROM delivery d LEFT JOIN alert a USING (alert_id)"
        " WHERE d.procedure_id = ANY($1) OR a.procedure_id = ANY($1) ORDER BY d.seq",
        ids,
    )
    for d in deliveries:
        facts = {
            "delivery_id": d["delivery_id"],
            "structure_id": d["structure_id"],
            "contact_id": d["contact_id"],
            "channel": d["channel"],
            "fallback": d["fallback_kind"],
        }
        steps.append(Step(_utc(d["created_at"]), "notifier", "delivery.queued", facts, {"recipient": d["recipient"]}))
        outcome = {
            **facts,
            "state": d["state"],
            "attempts": d["attempts"],
            "provider": d["provider"],
            "receipt": d["provider_message_id"],
        }
        # A provider's error may quote the address it refused: personal.
        error = {"recipient": d["recipient"], "last_error": d["last_error"]}
        if d["sent_at"] is not None:
            steps.append(Step(_utc(d["sent_at"]), "notifier", "delivery.sent", outcome, error))
        elif d["attempts"]:
            steps.append(Step(_utc(d["next_attempt_at"]), "notifier", f"delivery.{d['state']}", outcome, error))
    return steps


async def _workspace(conn: asyncpg.Connection[asyncpg.Record], ids: Ids) -> list[Step]:
    actions = await conn.fetch(
        "SELECT p.*, a.structure_id FROM partner_action p JOIN assignment a USING (assignment_id)"
        " WHERE a.procedure_id = ANY($1) ORDER BY p.requested_at",
        ids,
    )
    steps = [
        Step(
            _utc(p["requested_at"]),
            "workspace",
            f"partner.{p['action']}".lower(),
            {
                "event_id": p["event_id"],
                "assignment_id": p["assignment_id"],
                "structure_id": p["structure_id"],
                "reason": p["reason"],
                "outcome": p["outcome"],
            },
            {"comment": p["comment"]},
        )
        for p in actions
    ]
    purged = await conn.fetch(
        "SELECT procedure_id, purged_at FROM procedure WHERE procedure_id = ANY($1) AND purged_at IS NOT NULL", ids
    )
    steps.extend(Step(_utc(p["purged_at"]), "workspace", "personal_data.purged", {}) for p in purged)
    return steps


_READERS: tuple[tuple[str, Callable[[asyncpg.Connection[asyncpg.Record], Ids], Awaitable[list[Step]]]], ...] = (
    ("orientation", _orientation),
    ("notifier", _notifier),
    ("workspace", _workspace),
)


async def _procedures(schemas: Schemas, ids: Ids) -> list[dict[str, Any]]:
    if (ingest := schemas.get("ingest")) is None:
        return [{"procedure_id": i} for i in ids]
    rows = await ingest.fetch(
        "SELECT procedure_id, short_ref, correlation_id, current_stage, status, reopened_count"
        " FROM procedure WHERE procedure_id = ANY($1) ORDER BY created_at",
        ids,
    )
    return [dict(r) for r in rows]


async def trace(schemas: Schemas, query: str) -> Journey:
    """The journey of the case(s) ``query`` names across ``schemas``; :class:`NotFoundError` when none
    knows it. Rejected inputs with ``query`` as their external reference count as found."""
    ids = await _procedure_ids(schemas, query)
    steps: list[Step] = []
    if (ingest := schemas.get("ingest")) is not None:
        steps += await _ingest(ingest, ids, {query})
    for name, read in _READERS:
        if (conn := schemas.get(name)) is not None:
            steps += await read(conn, ids)
    if not steps and not ids:
        raise NotFoundError(query)
    return Journey(query, await _procedures(schemas, ids), steps)
