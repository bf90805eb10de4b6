"""SQL of the notifier schema: contacts, alerts, digests and deliveries.

Every function runs in the caller's connection (and transaction, when it opened one). Instants that
decide what is due are passed in (``now``), so that one clock — the dispatcher's — rules scheduling.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from typing import Any

import asyncpg

from schemas.assignment import EscalationStep
from schemas.notification import Channel, FallbackKind
from schemas.procedure import Urgency
from schemas.stages import Stage
from services.notifier.domain.alerts import ClosestOffer
from services.notifier.domain.routing import AlertMode, ContactInfo, StructureContacts
from services.notifier.jobs import AlertJob, DeliveryJob, Digest, DigestJob, DigestLine
from services.platform.db import Conn

__all__ = [
    "ALERTS_CHANNEL",
    "DELIVERIES_CHANNEL",
    "AlertRow",
    "ContactRow",
    "DigestGroup",
    "DigestItemRow",
    "NewDelivery",
    "SentRow",
    "announced_alert",
    "awaiting_alerts",
    "claim_deliveries",
    "default_referent",
    "digest_groups",
    "insert_alerts",
    "insert_deliveries",
    "insert_digest",
    "insert_digest_items",
    "mark_alerts_expanded",
    "mark_failed",
    "mark_retrying",
    "mark_sent",
    "release",
    "replace_structure",
    "structure_name",
    "structures",
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
    quiet_start: time | None = None
    quiet_end: time | None = None


@dataclass(frozen=True)
class AlertRow:
    alert_id: uuid.UUID
    alert_key: str
    correlation_id: uuid.UUID
    procedure_id: uuid.UUID
    procedure_short_ref: str
    assignment_id: uuid.UUID | None
    structure_id: str
    stage: Stage
    urgency: Urgency
    commune: str
    earliest_expulsion_date: date | None
    manual_orientation: bool
    mode: AlertMode = AlertMode.IMMEDIATE
    stage_update: bool = False
    truce_end: bool = False
    warnings: tuple[str, ...] = ()
    # Why the structure was asked: codes of domain.alerts.assignment_reasons (never a household fact).
    reasons: tuple[str, ...] = ()
    # The ids of the other structures assigned the case (their names are read when the alert is sent).
    others: tuple[str, ...] = ()
    # What the structure is asked and told to act on (migration 011): its offers' names, the day to answer
    # by, the procedure's legal dates, and under F1 the offers that came closest (référentiel names, codes).
    offers: tuple[str, ...] = ()
    respond_by: date | None = None
    hearing_date: date | None = None
    commandement_deadline: date | None = None
    closest: tuple[ClosestOffer, ...] = ()
    # A refusal told to the CCAPEX secretariat: the name of the structure that refused, its reason code.
    refused_by: str | None = None
    refusal_reason: str | None = None
    # An assignment left unanswered (orientation's assignment.escalation): the step, the working days
    # waited, and for the secretariat's alert the name of the structure that has not answered.
    escalation: EscalationStep | None = None
    escalation_days: int | None = None
    silent_structure: str | None = None
    # A structure the CCAPEX removed from the case (issue 14) is told whom to contact: the CCAPEX secretariat's
    # référentiel name and address (an organisation's). Set only on a removal notice.
    removal_secretariat: str | None = None
    removal_secretariat_email: str | None = None
    # A new link the structure asked for from the workspace's expired-link page (workspace.link_requested).
    link_request_id: uuid.UUID | None = None
    # Operations (docs/operations.md): the decision's trace context, for each delivery attempt's span to be
    # its child, and when ingest received the act, for the end-to-end latency; none when no act caused it.
    traceparent: str | None = None
    tracestate: str | None = None
    act_received_at: datetime | None = None


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to create; ``idempotency_key`` makes creating it twice a no-op."""

    idempotency_key: str
    structure_id: str
    contact_id: str
    channel: Channel
    recipient: str
    next_attempt_at: datetime
    alert_id: uuid.UUID | None = None
    digest_id: uuid.UUID | None = None
    procedure_id: uuid.UUID | None = None
    fallback_kind: FallbackKind | None = None
    fallback_of: uuid.UUID | None = None
    quiet_hours: tuple[time, time] | None = None
    delivery_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class DigestItemRow:
    alert_id: uuid.UUID
    structure_id: str
    contact_id: str
    channel: Channel
    recipient: str
    quiet_hours: tuple[time, time] | None
    fallback_kind: FallbackKind | None
    created_at: datetime


@dataclass(frozen=True)
class DigestGroup:
    """Unplanned digest items of one recipient, due for one digest."""

    structure_id: str
    contact_id: str
    channel: Channel
    recipient: str
    quiet_hours: tuple[time, time] | None
    alert_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class SentRow:
    delivery_id: uuid.UUID
    lease_token: uuid.UUID
    provider: str
    provider_message_id: str | None


_ALERT_FIELDS = tuple(f.name for f in fields(AlertRow))
_ALERT_TYPES = {
    "alert_id": "uuid",
    "alert_key": "text",
    "correlation_id": "uuid",
    "procedure_id": "uuid",
    "procedure_short_ref": "text",
    "assignment_id": "uuid",
    "structure_id": "text",
    "stage": "text",
    "urgency": "text",
    "commune": "text",
    "earliest_expulsion_date": "date",
    "manual_orientation": "bool",
    "mode": "text",
    "stage_update": "bool",
    "truce_end": "bool",
    "warnings": "jsonb",
    "reasons": "jsonb",
    "others": "jsonb",
    "offers": "jsonb",
    "respond_by": "date",
    "hearing_date": "date",
    "commandement_deadline": "date",
    "closest": "jsonb",
    "refused_by": "text",
    "refusal_reason": "text",
    "escalation": "text",
    "escalation_days": "int4",
    "silent_structure": "text",
    "removal_secretariat": "text",
    "removal_secretariat_email": "text",
    "link_request_id": "uuid",
    "traceparent": "text",
    "tracestate": "text",
    "act_received_at": "timestamptz",
}
_ALERT_COLUMNS = ", ".join(_ALERT_FIELDS)
_CONTACT_FIELDS = tuple(f.name for f in fields(ContactRow))
_CONTACT_COLUMNS = ", ".join(_CONTACT_FIELDS)
# One claimer at a time across replicas, so that "no other delivery of this procedure is being sent"
# (the per-procedure ordering check below) cannot be raced by a second notifier.
_CLAIM_LOCK_ID = 0x6E6F7469  # "noti"
_JOB_COLUMNS = (
    "d.delivery_id, d.structure_id, d.contact_id, d.channel, d.recipient, d.attempts, d.lease_token,"
    " d.lease_until, d.procedure_id, d.seq, d.fallback_kind, d.quiet_start, d.quiet_end, d.alert_id, d.digest_id"
)


# What the claim takes back: 'sending' rows (a few windows of leases, whatever the table's history) whose
# lease expired (the backstop) or whose owner session is gone. The sessions are read once per claim (a hash
# join), not looked up once per 'sending' row, which an OR with a correlated NOT EXISTS forced.
# pid + start time: a pid alone may be reused by a later session. pg_stat_get_activity (what pg_stat_activity
# shows) hides another role's start time from unprivileged roles: a session with the owner's pid whose start
# cannot be read is taken for the owner (alive), and the lease decides.
_ORPHANED = (
    "SELECT d.delivery_id FROM delivery d LEFT JOIN pg_stat_get_activity(NULL) a ON a.pid = d.owner_pid"
    " AND (a.backend_start = d.owner_started OR a.backend_start IS NULL)"
    " WHERE d.state = 'sending' AND (d.lease_until < $2 OR d.owner_started IS NOT NULL AND a.pid IS NULL)"
)
# Due, and nothing else for the same structure about the same procedure being sent under a live lease: order is
# what one structure sees of a procedure; the other structures of a decision are sent meanwhile. The check is
# one index lookup per candidate: OFFSET 0 keeps PostgreSQL from turning it into an anti-join, which read every
# 'sending' row since the last vacuum at each claim (3.6 ms a claim at 50 acts/s after a 10,000-act backlog).
_DUE = (
    "SELECT d.delivery_id FROM delivery d WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at <= $2"
    " AND NOT EXISTS (SELECT 1 FROM delivery s WHERE s.procedure_id = d.procedure_id"
    " AND s.structure_id = d.structure_id AND s.state = 'sending' AND s.lease_until >= $2 OFFSET 0)"
)


# --- contacts ---------------------------------------------------------------------------------------


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
    placeholders = ", ".join(f"${i}" for i in range(1, len(_CONTACT_FIELDS) + 1))
    await conn.executemany(
        f"INSERT INTO contact ({_CONTACT_COLUMNS}) VALUES ({placeholders})",
        [tuple(getattr(c, name) for name in _CONTACT_FIELDS) for c in contacts],
    )
    return True


async def structures(conn: Conn, structure_ids: Iterable[str]) -> dict[str, StructureContacts]:
    """The known structures among ``structure_ids``, with their contacts (absent ones are unknown)."""
    ids = sorted(set(structure_ids))
    rows = await conn.fetch(
        "SELECT structure_id, nom FROM structure_directory WHERE structure_id = ANY($1::text[])", ids
    )
    contacts = await conn.fetch(
        f"SELECT {_CONTACT_COLUMNS} FROM contact WHERE structure_id = ANY($1::text[]) ORDER BY contact_id", ids
    )
    return _structures(rows, contacts)


async def default_referent(conn: Conn) -> StructureContacts | None:
    """The default referent (fallback F1/F3) with its contacts; ``None`` until the référentiel named it."""
    rows = await conn.fetch("SELECT structure_id, nom FROM structure_directory WHERE is_default_referent LIMIT 1")
    if not rows:
        return None
    contacts = await conn.fetch(
        f"SELECT {_CONTACT_COLUMNS} FROM contact WHERE structure_id = $1 ORDER BY contact_id", rows[0]["structure_id"]
    )
    return _structures(rows, contacts)[rows[0]["structure_id"]]


async def announced_alert(conn: Conn, assignment_id: uuid.UUID, structure_id: str) -> AlertRow | None:
    """The latest alert of ``assignment_id`` sent to its structure ``structure_id`` (a notice about it to
    the secretariat goes to another structure); ``None`` when the notifier never alerted that structure of
    that assignment."""
    row = await conn.fetchrow(
        f"SELECT {_ALERT_COLUMNS} FROM alert WHERE assignment_id = $1 AND structure_id = $2 ORDER BY seq DESC LIMIT 1",
        assignment_id,
        structure_id,
    )
    return None if row is None else _alert_row(row)


async def structure_name(conn: Conn, structure_id: str) -> str | None:
    """The référentiel name of a known structure, ``None`` for an unknown one."""
    name: str | None = await conn.fetchval("SELECT nom FROM structure_directory WHERE structure_id = $1", structure_id)
    return name


def _structures(rows: Sequence[asyncpg.Record], contacts: Sequence[asyncpg.Record]) -> dict[str, StructureContacts]:
    by_structure: dict[str, list[ContactInfo]] = {}
    for row in contacts:
        contact = ContactRow(**dict(row))
        window = (
            (contact.quiet_start, contact.quiet_end)
            if contact.quiet_start is not None and contact.quiet_end is not None
            else None
        )
        by_structure.setdefault(contact.structure_id, []).append(
            ContactInfo(
                contact.contact_id,
                contact.email,
                contact.mobile,
                contact.email_enabled,
                contact.sms_enabled,
                contact.is_generic,
                window,
            )
        )
    return {
        r["structure_id"]: StructureContacts(
            r["structure_id"],
            r["nom"],
            tuple(by_structure.get(r["structure_id"], ())),
        )
        for r in rows
    }


# --- alerts -----------------------------------------------------------------------------------------

# NOTIFY channels: stored alerts wake the planner, stored deliveries the sender (services.notifier.loops).
ALERTS_CHANNEL = "notifier_alerts"
DELIVERIES_CHANNEL = "notifier_deliveries"


async def insert_alerts(conn: Conn, alerts: Sequence[AlertRow]) -> int:
    """Store alerts in the given order (their ``seq`` follows it); an existing key is kept, not duplicated
    (a replayed decision). Returns how many were stored."""
    if not alerts:
        return 0
    columns = [[getattr(alert, name) for alert in alerts] for name in _ALERT_FIELDS]
    types = [_ALERT_TYPES[name] for name in _ALERT_FIELDS]
    inserted = await conn.fetch(
        f"INSERT INTO alert ({_ALERT_COLUMNS}) SELECT {_ALERT_COLUMNS} FROM unnest("
        + ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(types, start=1))
        + f") WITH ORDINALITY AS u({_ALERT_COLUMNS}, n) ORDER BY n"
        " ON CONFLICT (alert_key) DO NOTHING RETURNING alert_id",
        *columns,
    )
    if inserted:
        await _notify(conn, ALERTS_CHANNEL)
    return len(inserted)


async def awaiting_alerts(conn: Conn, limit: int, *, contact_wait_s: float) -> list[AlertRow]:
    """Alerts ready to expand, in the order they were recorded, locked: their structure is known, or has
    been waited for ``contact_wait_s`` (measured with the database clock, which stamped them at intake).

    Alerts still waiting for their structure are left out, so that they never hold the others back.
    """
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alert a WHERE state = 'AWAITING_CONTACTS'"
        " AND (EXISTS (SELECT 1 FROM structure_directory s WHERE s.structure_id = a.structure_id)"
        "      OR created_at <= now() - make_interval(secs => $2))"
        " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
        contact_wait_s,
    )
    return [_alert_row(r) for r in rows]


async def mark_alerts_expanded(conn: Conn, alert_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute("UPDATE alert SET state = 'EXPANDED' WHERE alert_id = ANY($1::uuid[])", list(alert_ids))


# --- digests ----------------------------------------------------------------------------------------


async def insert_digest_items(conn: Conn, items: Sequence[DigestItemRow]) -> None:
    """Store digest items; an item already stored (same alert, channel, recipient) is kept as is."""
    await conn.executemany(
        "INSERT INTO digest_item (alert_id, structure_id, contact_id, channel, recipient, quiet_start, quiet_end,"
        " fallback_kind, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        [
            (
                i.alert_id,
                i.structure_id,
                i.contact_id,
                i.channel,
                i.recipient,
                *(i.quiet_hours or (None, None)),
                i.fallback_kind,
                i.created_at,
            )
            for i in items
        ],
    )


async def digest_groups(conn: Conn, cutoff: datetime) -> list[DigestGroup]:
    """Unplanned digest items recorded before ``cutoff``, one group per recipient, locked."""
    rows = await conn.fetch(
        "SELECT structure_id, contact_id, channel, recipient, quiet_start, quiet_end, alert_id FROM digest_item"
        " WHERE digest_id IS NULL AND created_at < $1"
        " ORDER BY structure_id, contact_id, channel, recipient, created_at FOR UPDATE SKIP LOCKED",
        cutoff,
    )
    groups: dict[tuple[str, str, Channel, str], list[asyncpg.Record]] = {}
    for r in rows:
        groups.setdefault((r["structure_id"], r["contact_id"], Channel(r["channel"]), r["recipient"]), []).append(r)
    return [
        DigestGroup(
            *key,
            quiet_hours=_window(members[0]["quiet_start"], members[0]["quiet_end"]),
            alert_ids=tuple(m["alert_id"] for m in members),
        )
        for key, members in groups.items()
    ]


async def insert_digest(
    conn: Conn, *, digest_key: str, structure_id: str, day: date, group: DigestGroup
) -> uuid.UUID | None:
    """Create a digest and attach the group's items; ``None`` when that digest exists already.

    An item that arrives after its day's digest was planned waits for the next day's (its key differs).
    """
    digest_id: uuid.UUID | None = await conn.fetchval(
        "INSERT INTO digest (digest_id, digest_key, structure_id, day) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (digest_key) DO NOTHING RETURNING digest_id",
        uuid.uuid4(),
        digest_key,
        structure_id,
        day,
    )
    if digest_id is not None:
        await conn.execute(
            "UPDATE digest_item SET digest_id = $1 WHERE alert_id = ANY($2::uuid[]) AND channel = $3"
            " AND recipient = $4 AND digest_id IS NULL",
            digest_id,
            list(group.alert_ids),
            group.channel,
            group.recipient,
        )
    return digest_id


# --- deliveries -------------------------------------------------------------------------------------


async def insert_deliveries(conn: Conn, deliveries: Sequence[NewDelivery]) -> int:
    """Create deliveries; one whose idempotency key exists already is not created again. Returns how many were."""
    if not deliveries:
        return 0
    created = await conn.fetch(
        "INSERT INTO delivery (delivery_id, idempotency_key, alert_id, digest_id, procedure_id, structure_id,"
        " contact_id, channel, recipient, next_attempt_at, fallback_kind, fallback_of, quiet_start, quiet_end)"
        # In the given order: seq (the sending order of one procedure's deliveries) follows it.
        " SELECT d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14 FROM unnest($1::uuid[], $2::text[],"
        " $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[],"
        " $11::text[], $12::uuid[], $13::time[], $14::time[])"
        " WITH ORDINALITY AS u(d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, n) ORDER BY n"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING delivery_id",
        *map(list, zip(*(_delivery_values(d) for d in deliveries), strict=True)),
    )
    if created:
        await _notify(conn, DELIVERIES_CHANNEL)
    return len(created)


async def _notify(conn: Conn, channel: str) -> None:
    # Delivered at commit (never for a rolled-back insert), and once per channel and transaction.
    await conn.execute("SELECT pg_notify($1, '')", channel)


def _delivery_values(d: NewDelivery) -> tuple[object, ...]:
    quiet_start, quiet_end = d.quiet_hours or (None, None)
    return (
        d.delivery_id,
        d.idempotency_key,
        d.alert_id,
        d.digest_id,
        d.procedure_id,
        d.structure_id,
        d.contact_id,
        d.channel,
        d.recipient,
        d.next_attempt_at,
        d.fallback_kind.value if d.fallback_kind else None,
        d.fallback_of,
        quiet_start,
        quiet_end,
    )


async def claim_deliveries(
    conn: Conn, *, limit: int, lease_s: float, now: datetime, take_back_orphans: bool = True
) -> list[DeliveryJob]:
    """Move up to ``limit`` due deliveries to ``sending`` under a fresh lease, owned by ``conn``'s database
    session, and return them.

    Due: ``pending``/``retrying`` with ``next_attempt_at`` reached, oldest first (then creation order),
    and ``sending`` rows orphaned by a process that died mid-send — their owner session is gone from
    ``pg_stat_activity`` (taken back at the next look), or their lease expired (the backstop: a session that
    outlived its process, rows claimed before owners were recorded). That is the documented in-flight
    window: the provider may have accepted the message already. Looking for orphans reads every ``sending``
    row since the table's last vacuum: ``take_back_orphans=False`` skips it (the caller looks now and then).
    A delivery is not claimed while another delivery to the same structure about the same procedure is being
    sent under a live lease: what one structure receives of a procedure leaves in order, the rest in parallel.

    The caller keeps ``conn`` open until the claimed deliveries are recorded: while it lives they are
    owned. Must run inside a transaction.
    """
    # The claim's statements are planned for this claim (its LIMIT, its instant) and the table as it is now:
    # set_config(…, true) is SET LOCAL, sent with the lock. The plan PostgreSQL would otherwise keep is made
    # soon after start, on an empty delivery table, and once a backlog filled it, sorted every due row
    # (checking each for a busy structure) before its LIMIT: 17–24 ms a claim during a 10,000-act backlog.
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1), set_config('plan_cache_mode', 'force_custom_plan', true)", _CLAIM_LOCK_ID
    )
    token = uuid.uuid4()
    lease_until = now + timedelta(seconds=lease_s)
    rows: list[asyncpg.Record] = []
    for due in (_ORPHANED, _DUE) if take_back_orphans else (_DUE,):
        rows += await conn.fetch(
            f"WITH due AS ({due} ORDER BY d.next_attempt_at, d.seq LIMIT $1 FOR UPDATE OF d SKIP LOCKED),"
            # The claiming session itself, read once per claim (not per row), without the other backends.
            " me AS (SELECT pid, backend_start FROM pg_stat_get_activity(pg_backend_pid()))"
            " UPDATE delivery d SET state = 'sending', attempts = d.attempts + 1, lease_until = $3, lease_token = $4,"
            " owner_pid = me.pid, owner_started = me.backend_start"
            # By primary key whatever the estimate of ``LIMIT $1`` (10 % of the table in a generic plan,
            # which made a join with ``due`` read delivery whole once the table was large).
            f" FROM me WHERE d.delivery_id = ANY(ARRAY(SELECT delivery_id FROM due)) RETURNING {_JOB_COLUMNS}",
            limit - len(rows),
            now,
            lease_until,
            token,
        )
        if len(rows) >= limit:
            break
    return await _jobs(conn, rows)


async def _jobs(conn: Conn, rows: Sequence[asyncpg.Record]) -> list[DeliveryJob]:
    if not rows:
        return []
    alert_ids = [r["alert_id"] for r in rows if r["alert_id"] is not None]
    alerts = {
        a["alert_id"]: _alert_row(a)
        for a in await conn.fetch(f"SELECT {_ALERT_COLUMNS} FROM alert WHERE alert_id = ANY($1::uuid[])", alert_ids)
    }
    digests = await _digests(conn, [r["digest_id"] for r in rows if r["digest_id"] is not None])
    structure_ids = {r["structure_id"] for r in rows}
    structure_ids |= {s for a in alerts.values() for s in (a.structure_id, *a.others)}
    structure_ids |= {
        s for d in digests.values() for s in (d.structure_id, *(line.alert.structure_id for line in d.lines))
    }
    names = {
        r["structure_id"]: r["nom"]
        for r in await conn.fetch(
            "SELECT structure_id, nom FROM structure_directory WHERE structure_id = ANY($1::text[])",
            sorted(structure_ids),
        )
    }
    jobs: list[DeliveryJob] = []
    for r in rows:
        claimed: dict[str, Any] = {
            "delivery_id": r["delivery_id"],
            "structure_id": r["structure_id"],
            "contact_id": r["contact_id"],
            "channel": Channel(r["channel"]),
            "recipient": r["recipient"],
            "attempts": r["attempts"],
            "lease_token": r["lease_token"],
            "lease_until": r["lease_until"],
            "procedure_id": r["procedure_id"],
            "seq": r["seq"],
            "fallback_kind": _fallback_kind(r["fallback_kind"]),
            "quiet_hours": _window(r["quiet_start"], r["quiet_end"]),
            "names": names,
        }
        # The table's check constraint makes every delivery carry exactly one of an alert and a digest.
        if r["alert_id"] is not None:
            jobs.append(AlertJob(**claimed, alert=alerts[r["alert_id"]]))
        else:
            jobs.append(DigestJob(**claimed, digest=digests[r["digest_id"]]))
    return jobs


async def _digests(conn: Conn, digest_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Digest]:
    """The digests ``digest_ids`` with their lines, each digest's alerts in recording order."""
    if not digest_ids:
        return {}
    lines: dict[uuid.UUID, list[DigestLine]] = {}
    heads: dict[uuid.UUID, tuple[date, str]] = {}
    for r in await conn.fetch(
        f"SELECT i.digest_id, i.fallback_kind AS item_fallback, g.day, g.structure_id AS digest_structure,"
        f" {_prefixed('a', _ALERT_FIELDS)}"
        " FROM digest_item i JOIN alert a USING (alert_id) JOIN digest g ON g.digest_id = i.digest_id"
        " WHERE i.digest_id = ANY($1::uuid[]) ORDER BY a.seq",
        digest_ids,
    ):
        lines.setdefault(r["digest_id"], []).append(DigestLine(_alert_row(r), _fallback_kind(r["item_fallback"])))
        heads[r["digest_id"]] = (r["day"], r["digest_structure"])
    return {
        digest_id: Digest(digest_id, day, structure_id, tuple(lines[digest_id]))
        for digest_id, (day, structure_id) in heads.items()
    }


async def release(conn: Conn, job: DeliveryJob, *, next_attempt_at: datetime | None = None) -> None:
    """Give a claimed delivery back unattempted: state and attempt count restored, due again at once or at
    ``next_attempt_at`` (the end of an SMS quiet period)."""
    await conn.execute(
        "UPDATE delivery SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,"
        " attempts = attempts - 1, lease_until = NULL, lease_token = NULL,"
        " next_attempt_at = coalesce($3, next_attempt_at)"
        " WHERE delivery_id = $1 AND state = 'sending' AND lease_token = $2",
        job.delivery_id,
        job.lease_token,
        next_attempt_at,
    )


async def mark_sent(conn: Conn, rows: Sequence[SentRow], now: datetime) -> set[uuid.UUID]:
    """Record accepted deliveries as ``sent``; returns the ids whose lease was still ours (all, normally)."""
    if not rows:
        return set()
    updated = await conn.fetch(
        "UPDATE delivery d SET state = 'sent', provider = u.provider, provider_message_id = u.message_id,"
        " last_error = NULL, lease_until = NULL, lease_token = NULL, sent_at = $5"
        " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS u(delivery_id, token, provider, message_id)"
        # By primary key. The lease token alone says the row is still ours and 'sending' (every move out of
        # 'sending' clears it, a new claim replaces it): a `state = 'sending'` test let PostgreSQL read every
        # 'sending' row since the last vacuum through the partial index instead (2.1 ms a call at 50 acts/s).
        " WHERE d.delivery_id = ANY($1::uuid[]) AND d.delivery_id = u.delivery_id AND d.lease_token = u.token"
        " RETURNING d.delivery_id",
        [r.delivery_id for r in rows],
        [r.lease_token for r in rows],
        [r.provider for r in rows],
        [r.provider_message_id for r in rows],
        now,
    )
    return {r["delivery_id"] for r in updated}


async def mark_retrying(conn: Conn, job: DeliveryJob, *, provider: str, error: str, next_attempt_at: datetime) -> bool:
    """Schedule the next attempt of a delivery that failed transiently; ``False`` if the lease was lost."""
    status: str = await conn.execute(
        "UPDATE delivery SET state = 'retrying', provider = $3, last_error = $4, next_attempt_at = $5,"
        " lease_until = NULL, lease_token = NULL WHERE delivery_id = $1 AND state = 'sending' AND lease_token = $2",
        job.delivery_id,
        job.lease_token,
        provider,
        error,
        next_attempt_at,
    )
    return status.endswith(" 1")


async def mark_failed(conn: Conn, job: DeliveryJob, *, provider: str, error: str) -> bool:
    """Record a delivery abandoned for good; ``False`` if the lease was lost."""
    status: str = await conn.execute(
        "UPDATE delivery SET state = 'failed', provider = $3, last_error = $4, lease_until = NULL, lease_token = NULL"
        " WHERE delivery_id = $1 AND state = 'sending' AND lease_token = $2",
        job.delivery_id,
        job.lease_token,
        provider,
        error,
    )
    return status.endswith(" 1")


def _alert_row(record: asyncpg.Record) -> AlertRow:
    """An alert from a row holding (at least) its columns; jsonb ``warnings`` and ``reasons`` come back as lists."""
    values = {name: record[name] for name in _ALERT_FIELDS}
    return AlertRow(
        **{
            **values,
            "stage": Stage(values["stage"]),
            "urgency": Urgency(values["urgency"]),
            "mode": AlertMode(values["mode"]),
            "escalation": None if values["escalation"] is None else EscalationStep(values["escalation"]),
            "warnings": tuple(values["warnings"]),
            "reasons": tuple(values["reasons"]),
            "others": tuple(values["others"]),
            "offers": tuple(_jsonb(values["offers"])),
            "closest": tuple(
                ClosestOffer(offer, name, tuple(codes)) for offer, name, codes in _jsonb(values["closest"])
            ),
        }
    )


def _jsonb(value: Any) -> Any:
    # A connection without the pool's jsonb codec (a test's or a tool's own) reads jsonb as its JSON text.
    return json.loads(value) if isinstance(value, str) else value


def _window(start: time | None, end: time | None) -> tuple[time, time] | None:
    return (start, end) if start is not None and end is not None else None


def _fallback_kind(value: str | None) -> FallbackKind | None:
    return None if value is None else FallbackKind(value)


def _prefixed(alias: str, names: Iterable[str]) -> str:
    return ", ".join(f"{alias}.{name}" for name in names)
