"""SQL of the notifier schema: contacts, alerts and deliveries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from services.platform.db import Conn

__all__ = [
    "AlertRow",
    "ContactRow",
    "DeliveryJob",
    "awaiting_alerts",
    "claim_due_deliveries",
    "contacts_of",
    "default_referent_contacts",
    "insert_alert",
    "insert_deliveries",
    "mark_alert_expanded",
    "mark_delivery",
    "replace_structure",
]


@dataclass(frozen=True)
class ContactRow:
    structure_id: str
    contact_id: str
    label: str
    email: str | None
    mobile: str | None
    email_enabled: bool
    sms_enabled: bool
    is_generic: bool


@dataclass(frozen=True)
class AlertRow:
    alert_id: uuid.UUID
    alert_key: str
    correlation_id: uuid.UUID
    procedure_id: uuid.UUID
    procedure_short_ref: str
    assignment_id: uuid.UUID | None
    structure_id: str
    stage: str
    urgency: str
    commune: str
    earliest_expulsion_date: date | None
    manual_orientation: bool


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery with what is needed to render and send it."""

    delivery_id: uuid.UUID
    channel: str
    recipient: str
    contact_id: str
    attempts: int
    alert: AlertRow


_ALERT_COLUMNS = (
    "alert_id, alert_key, correlation_id, procedure_id, procedure_short_ref, assignment_id, structure_id,"
    " stage, urgency, commune, earliest_expulsion_date, manual_orientation"
)
_CONTACT_COLUMNS = "structure_id, contact_id, label, email, mobile, email_enabled, sms_enabled, is_generic"


async def replace_structure(
    conn: Conn, *, structure_id: str, nom: str, is_default_referent: bool, version: int, contacts: list[ContactRow]
) -> bool:
    """Store a structure's contacts as of référentiel ``version``; an older version is ignored.

    Returns ``False`` when the stored version is newer (the compacted topic may replay old records).
    """
    stored = await conn.fetchval(
        "SELECT referentiel_version FROM structure_directory WHERE structure_id = $1", structure_id
    )
    if stored is not None and stored > version:
        return False
    await conn.execute(
        "INSERT INTO structure_directory (structure_id, nom, is_default_referent, referentiel_version)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (structure_id) DO UPDATE SET nom = $2,"
        " is_default_referent = $3, referentiel_version = $4, updated_at = now()",
        structure_id,
        nom,
        is_default_referent,
        version,
    )
    await conn.execute("DELETE FROM contact WHERE structure_id = $1", structure_id)
    await conn.executemany(
        f"INSERT INTO contact ({_CONTACT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                c.structure_id,
                c.contact_id,
                c.label,
                c.email,
                c.mobile,
                c.email_enabled,
                c.sms_enabled,
                c.is_generic,
            )
            for c in contacts
        ],
    )
    return True


async def insert_alert(conn: Conn, alert: AlertRow) -> bool:
    """Store an alert; ``False`` if one with the same key exists (a replayed decision)."""
    inserted = await conn.fetchval(
        f"INSERT INTO alert ({_ALERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (alert_key) DO NOTHING RETURNING true",
        alert.alert_id,
        alert.alert_key,
        alert.correlation_id,
        alert.procedure_id,
        alert.procedure_short_ref,
        alert.assignment_id,
        alert.structure_id,
        alert.stage,
        alert.urgency,
        alert.commune,
        alert.earliest_expulsion_date,
        alert.manual_orientation,
    )
    return bool(inserted)


async def awaiting_alerts(conn: Conn, limit: int) -> list[tuple[AlertRow, float]]:
    """Alerts not yet expanded into deliveries, with their age in seconds, oldest first, locked."""
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLUMNS}, extract(epoch FROM now() - created_at)::float8 AS age FROM alert"
        " WHERE state = 'AWAITING_CONTACTS' ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [(AlertRow(**{k: v for k, v in dict(r).items() if k != "age"}), r["age"]) for r in rows]


async def contacts_of(conn: Conn, structure_id: str) -> list[ContactRow] | None:
    """The structure's contacts; ``None`` when the structure itself is not known yet."""
    known = await conn.fetchval("SELECT true FROM structure_directory WHERE structure_id = $1", structure_id)
    if not known:
        return None
    rows = await conn.fetch(
        f"SELECT {_CONTACT_COLUMNS} FROM contact WHERE structure_id = $1 ORDER BY contact_id", structure_id
    )
    return [ContactRow(**dict(r)) for r in rows]


async def default_referent_contacts(conn: Conn) -> list[ContactRow]:
    rows = await conn.fetch(
        f"SELECT {', '.join('c.' + c.strip() for c in _CONTACT_COLUMNS.split(','))} FROM contact c"
        " JOIN structure_directory s USING (structure_id) WHERE s.is_default_referent ORDER BY c.contact_id"
    )
    return [ContactRow(**dict(r)) for r in rows]


async def insert_deliveries(conn: Conn, alert_id: uuid.UUID, rows: list[tuple[str, str, str, str]]) -> None:
    """Create deliveries ``(structure_id, contact_id, channel, recipient)``; existing keys are kept."""
    await conn.executemany(
        "INSERT INTO delivery (delivery_id, idempotency_key, alert_id, structure_id, contact_id, channel, recipient)"
        " SELECT $1, a.alert_key || '|' || $5 || '|' || $6, a.alert_id, $3, $4, $5, $6 FROM alert a"
        " WHERE a.alert_id = $2 ON CONFLICT (idempotency_key) DO NOTHING",
        [(uuid.uuid4(), alert_id, s, c, ch, r) for s, c, ch, r in rows],
    )


async def mark_alert_expanded(conn: Conn, alert_id: uuid.UUID) -> None:
    await conn.execute("UPDATE alert SET state = 'EXPANDED' WHERE alert_id = $1", alert_id)


async def claim_due_deliveries(conn: Conn, *, limit: int, lease_s: float) -> list[DeliveryJob]:
    """Move due deliveries to ``sending`` under a lease and return them.

    A ``sending`` row whose lease expired belongs to a process that died mid-send: it is claimed
    again, which is the documented in-flight window (the provider may have accepted it already).
    """
    rows = await conn.fetch(
        "WITH due AS (SELECT delivery_id FROM delivery"
        "  WHERE (state IN ('pending', 'retrying') AND next_attempt_at <= now())"
        "     OR (state = 'sending' AND lease_until < now())"
        "  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE delivery d SET state = 'sending', attempts = d.attempts + 1,"
        "  lease_until = now() + make_interval(secs => $2)"
        " FROM due WHERE d.delivery_id = due.delivery_id"
        " RETURNING d.delivery_id, d.channel, d.recipient, d.contact_id, d.attempts, d.alert_id",
        limit,
        lease_s,
    )
    if not rows:
        return []
    alerts = {
        r["alert_id"]: AlertRow(**dict(r))
        for r in await conn.fetch(
            f"SELECT {_ALERT_COLUMNS} FROM alert WHERE alert_id = ANY($1::uuid[])", [r["alert_id"] for r in rows]
        )
    }
    return [
        DeliveryJob(
            r["delivery_id"], r["channel"], r["recipient"], r["contact_id"], r["attempts"], alerts[r["alert_id"]]
        )
        for r in rows
    ]


async def mark_delivery(
    conn: Conn,
    delivery_id: uuid.UUID,
    *,
    state: str,
    provider: str,
    provider_message_id: str | None = None,
    error: str | None = None,
    retry_in_s: float | None = None,
) -> None:
    """Record a send attempt's outcome: ``sent``, ``retrying`` (with ``retry_in_s``) or ``failed``."""
    await conn.execute(
        "UPDATE delivery SET state = $2, provider = $3, provider_message_id = $4, last_error = $5,"
        " lease_until = NULL, next_attempt_at = now() + make_interval(secs => coalesce($6, 0)),"
        " sent_at = CASE WHEN $2 = 'sent' THEN now() END WHERE delivery_id = $1",
        delivery_id,
        state,
        provider,
        provider_message_id,
        error,
        retry_in_s,
    )
