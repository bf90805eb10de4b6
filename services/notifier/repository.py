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
    "AlertToPlan",
    "Claim",
    "ContactRow",
    "DigestGroup",
    "DigestItemRow",
    "NewDelivery",
    "OrderGroup",
    "SentRow",
    "announced_alert",
    "awaiting_alerts",
    "claim_deliveries",
    "default_referent",
    "digest_due",
    "digest_groups",
    "insert_alerts",
    "insert_deliveries",
    "insert_digest",
    "mark_failed",
    "mark_retrying",
    "mark_sent",
    "record_expansion",
    "release",
    "replace_structure",
    "routing_directory",
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
class AlertToPlan:
    """What the planner reads of an alert: enough to route it and to write a no-contact receipt about it.

    Not the whole ``AlertRow``: the planner reads every alert once, and decoding the message's columns (the
    jsonb offers, reasons, closest offers…) is the sender's job, when it renders the message.
    """

    alert_id: uuid.UUID
    alert_key: str
    correlation_id: uuid.UUID
    procedure_id: uuid.UUID
    procedure_short_ref: str
    assignment_id: uuid.UUID | None
    structure_id: str
    urgency: Urgency
    mode: AlertMode
    link_request_id: uuid.UUID | None


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


OrderGroup = tuple[uuid.UUID, str]
"""(procedure, receiving structure): what is sent one at a time, in creation order."""


@dataclass(frozen=True)
class Claim:
    """What one claim leased, and — after a short claim — the order groups whose due deliveries it left
    because another delivery of theirs is being sent."""

    jobs: list[DeliveryJob]
    blocked: frozenset[OrderGroup] = frozenset()


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
_PLAN_COLUMNS = ", ".join(f.name for f in fields(AlertToPlan))
# The columns an ``unnest`` insert fills, with the SQL type its arrays are cast to; in ``_*_values`` order.
_DELIVERY_TYPES = {
    "delivery_id": "uuid",
    "idempotency_key": "text",
    "alert_id": "uuid",
    "digest_id": "uuid",
    "procedure_id": "uuid",
    "structure_id": "text",
    "contact_id": "text",
    "channel": "text",
    "recipient": "text",
    "next_attempt_at": "timestamptz",
    "fallback_kind": "text",
    "fallback_of": "uuid",
    "quiet_start": "time",
    "quiet_end": "time",
}
_DELIVERY_COLUMNS = ", ".join(_DELIVERY_TYPES)
_ITEM_TYPES = {
    "alert_id": "uuid",
    "structure_id": "text",
    "contact_id": "text",
    "channel": "text",
    "recipient": "text",
    "quiet_start": "time",
    "quiet_end": "time",
    "fallback_kind": "text",
    "created_at": "timestamptz",
}
_ITEM_COLUMNS = ", ".join(_ITEM_TYPES)
# The end of a statement whose ``created`` rows are new deliveries: how many, and a NOTIFY to wake the sender
# when there are any — delivered at commit (never for a rolled-back insert), once per channel and transaction.
_COUNT_AND_NOTIFY = "SELECT count(*), CASE WHEN count(*) > 0 THEN pg_notify({channel}, '') END FROM created"
# One claimer at a time across replicas, so that "no other delivery of this procedure is being sent"
# (the per-procedure ordering check below) cannot be raced by a second notifier.
_CLAIM_LOCK_ID = 0x6E6F7469  # "noti"
_JOB_FIELDS = (
    "delivery_id", "structure_id", "contact_id", "channel", "recipient", "attempts", "lease_token", "lease_until",
    "procedure_id", "seq", "fallback_kind", "quiet_start", "quiet_end", "alert_id", "digest_id",
)  # fmt: skip
_JOB_COLUMNS = ", ".join(f"d.{name}" for name in _JOB_FIELDS)
# A row of the claim's result that is no claimed delivery but an order group left blocked (see _BLOCKED).
_BLOCKED_ROW = ", ".join(f"b.{name}" if name in {"procedure_id", "structure_id"} else "NULL" for name in _JOB_FIELDS)


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
# The (procedure, structure) groups with a due delivery held back by the check above: claimable once the
# delivery being sent is recorded. Looked for only after a short claim (a one-time filter): its scan then
# ended at the end of the due rows anyway, so the due rows left are few — these.
_BLOCKED = (
    "SELECT DISTINCT d.procedure_id, d.structure_id FROM delivery d"
    " WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at <= $2"
    " AND EXISTS (SELECT 1 FROM delivery s WHERE s.procedure_id = d.procedure_id"
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
    found, _ = await _directory(conn, "s.structure_id = ANY($1::text[])", sorted(set(structure_ids)))
    return found


async def default_referent(conn: Conn) -> StructureContacts | None:
    """The default referent (fallback F1/F3) with its contacts; ``None`` until the référentiel named it."""
    _, referent = await _directory(conn, "s.is_default_referent")
    return referent


async def routing_directory(
    conn: Conn, structure_ids: Iterable[str]
) -> tuple[dict[str, StructureContacts], StructureContacts | None]:
    """``structures(structure_ids)`` and ``default_referent()`` in one round trip."""
    ids = sorted(set(structure_ids))
    found, referent = await _directory(conn, "s.structure_id = ANY($1::text[]) OR s.is_default_referent", ids)
    return {structure_id: found[structure_id] for structure_id in ids if structure_id in found}, referent


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


async def _directory(
    conn: Conn, condition: str, *args: object
) -> tuple[dict[str, StructureContacts], StructureContacts | None]:
    """The structures meeting ``condition`` (on ``structure_directory s``) with their contacts, one statement;
    and among them the default referent (the first one flagged, should the référentiel flag two)."""
    rows = await conn.fetch(
        "SELECT s.structure_id, s.nom, s.is_default_referent, c.contact_id, c.email, c.mobile, c.email_enabled,"
        " c.sms_enabled, c.is_generic, c.quiet_start, c.quiet_end"
        " FROM structure_directory s LEFT JOIN contact c ON c.structure_id = s.structure_id"
        f" WHERE {condition} ORDER BY s.structure_id, c.contact_id",
        *args,
    )
    heads: dict[str, tuple[str, bool]] = {}
    contacts: dict[str, list[ContactInfo]] = {}
    for row in rows:
        heads[row["structure_id"]] = (row["nom"], row["is_default_referent"])
        if row["contact_id"] is not None:  # a known structure without any contact: the LEFT JOIN's NULLs
            contacts.setdefault(row["structure_id"], []).append(
                ContactInfo(
                    row["contact_id"],
                    row["email"],
                    row["mobile"],
                    row["email_enabled"],
                    row["sms_enabled"],
                    row["is_generic"],
                    _window(row["quiet_start"], row["quiet_end"]),
                )
            )
    found = {
        structure_id: StructureContacts(structure_id, nom, tuple(contacts.get(structure_id, ())))
        for structure_id, (nom, _) in heads.items()
    }
    referent = next((found[structure_id] for structure_id, (_, flagged) in heads.items() if flagged), None)
    return found, referent


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


async def awaiting_alerts(conn: Conn, limit: int, *, contact_wait_s: float) -> list[AlertToPlan]:
    """Alerts ready to expand, in the order they were recorded, locked: their structure is known, or has
    been waited for ``contact_wait_s`` (measured with the database clock, which stamped them at intake).

    Alerts still waiting for their structure are left out, so that they never hold the others back.
    """
    rows = await conn.fetch(
        f"SELECT {_PLAN_COLUMNS} FROM alert a WHERE state = 'AWAITING_CONTACTS'"
        " AND (EXISTS (SELECT 1 FROM structure_directory s WHERE s.structure_id = a.structure_id)"
        "      OR created_at <= now() - make_interval(secs => $2))"
        " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
        contact_wait_s,
    )
    return [AlertToPlan(**{**dict(r), "urgency": Urgency(r["urgency"]), "mode": AlertMode(r["mode"])}) for r in rows]


async def record_expansion(
    conn: Conn, *, deliveries: Sequence[NewDelivery], items: Sequence[DigestItemRow], expanded: Sequence[uuid.UUID]
) -> int:
    """Store what alerts were expanded into — deliveries and digest items, each kept once under its key as
    ``insert_deliveries`` does — and mark the ``expanded`` alerts so, in one statement. Returns how many
    deliveries were created."""
    items_from = len(_DELIVERY_TYPES) + 1
    expanded_at = items_from + len(_ITEM_TYPES)
    created: int = await conn.fetchval(
        f"WITH created AS ({_insert_deliveries(1)}),"
        # An item already stored (same alert, channel, recipient) is kept as is.
        f" items AS (INSERT INTO digest_item ({_ITEM_COLUMNS})"
        f" SELECT * FROM {_unnest(_ITEM_TYPES.values(), items_from)} ON CONFLICT DO NOTHING),"
        f" expanded AS (UPDATE alert SET state = 'EXPANDED' WHERE alert_id = ANY(${expanded_at}::uuid[]))"
        # Every data-modifying CTE runs to completion, read by the final SELECT or not.
        f" {_COUNT_AND_NOTIFY.format(channel=f'${expanded_at + 1}')}",
        *_columns((_delivery_values(d) for d in deliveries), len(_DELIVERY_TYPES)),
        *_columns((_item_values(i) for i in items), len(_ITEM_TYPES)),
        list(expanded),
        DELIVERIES_CHANNEL,
    )
    return created


# --- digests ----------------------------------------------------------------------------------------


async def digest_due(conn: Conn, cutoff: datetime) -> bool:
    """Whether any digest item recorded before ``cutoff`` waits for its digest: one index probe, no lock, for
    the planner to skip the locking transaction of ``digest_groups`` on every step of the day that has none."""
    due: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM digest_item WHERE digest_id IS NULL AND created_at < $1)", cutoff
    )
    return due


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
    created: int = await conn.fetchval(
        f"WITH created AS ({_insert_deliveries(1)}) {_COUNT_AND_NOTIFY.format(channel='$15')}",
        *_columns((_delivery_values(d) for d in deliveries), len(_DELIVERY_TYPES)),
        DELIVERIES_CHANNEL,
    )
    return created


def _insert_deliveries(first: int) -> str:
    """An ``INSERT`` of deliveries from the 14 arrays of ``_delivery_values`` (parameters from ``$first``),
    ``RETURNING`` those created."""
    return (
        f"INSERT INTO delivery ({_DELIVERY_COLUMNS}) SELECT {_DELIVERY_COLUMNS}"
        # In the given order: seq (the sending order of one procedure's deliveries) follows it.
        f" FROM {_unnest(_DELIVERY_TYPES.values(), first)} WITH ORDINALITY AS u({_DELIVERY_COLUMNS}, n) ORDER BY n"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING delivery_id"
    )


async def _notify(conn: Conn, channel: str) -> None:
    # Delivered at commit (never for a rolled-back insert), and once per channel and transaction.
    await conn.execute("SELECT pg_notify($1, '')", channel)


def _unnest(types: Iterable[str], first: int) -> str:
    """``unnest`` of one array parameter per column type, numbered from ``$first``."""
    return "unnest(" + ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(types, start=first)) + ")"


def _columns(rows: Iterable[tuple[object, ...]], width: int) -> list[list[object]]:
    """Rows of ``width`` values as one list per column: the arrays an ``unnest`` insert takes."""
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


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


def _item_values(i: DigestItemRow) -> tuple[object, ...]:
    quiet_start, quiet_end = i.quiet_hours or (None, None)
    return (
        i.alert_id,
        i.structure_id,
        i.contact_id,
        i.channel,
        i.recipient,
        quiet_start,
        quiet_end,
        i.fallback_kind.value if i.fallback_kind else None,
        i.created_at,
    )


async def claim_deliveries(
    conn: Conn, *, limit: int, lease_s: float, now: datetime, take_back_orphans: bool = True
) -> Claim:
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
    A claim of fewer than ``limit`` took everything claimable at that instant; it also returns the groups so
    held back (``Claim.blocked``), in the same statement.

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
    blocked: set[OrderGroup] = set()
    for due in (_ORPHANED, _DUE) if take_back_orphans else (_DUE,):
        asked = limit - len(rows)
        claimed = (
            f"WITH due AS ({due} ORDER BY d.next_attempt_at, d.seq LIMIT $1 FOR UPDATE OF d SKIP LOCKED),"
            # The claiming session itself, read once per claim (not per row), without the other backends.
            " me AS (SELECT pid, backend_start FROM pg_stat_get_activity(pg_backend_pid())),"
            " claimed AS (UPDATE delivery d SET state = 'sending', attempts = d.attempts + 1, lease_until = $3,"
            " lease_token = $4, owner_pid = me.pid, owner_started = me.backend_start"
            # By primary key whatever the estimate of ``LIMIT $1`` (10 % of the table in a generic plan,
            # which made a join with ``due`` read delivery whole once the table was large).
            f" FROM me WHERE d.delivery_id = ANY(ARRAY(SELECT delivery_id FROM due)) RETURNING {_JOB_COLUMNS})"
            " SELECT *, false AS blocked FROM claimed"
        )
        if due is _DUE:
            # The statement's snapshot predates its own update: what it claims is not seen 'sending' here.
            claimed += (
                f" UNION ALL SELECT {_BLOCKED_ROW}, true FROM ({_BLOCKED}) b WHERE (SELECT count(*) FROM claimed) < $1"
            )
        for row in await conn.fetch(claimed, asked, now, lease_until, token):
            if row["blocked"]:
                blocked.add((row["procedure_id"], row["structure_id"]))
            else:
                rows.append(row)
        if len(rows) >= limit:
            break
    return Claim(await _jobs(conn, rows), frozenset(blocked))


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
    ``next_attempt_at`` (the end of an SMS quiet period). Due at once, it wakes the senders (``NOTIFY`` on
    :data:`DELIVERIES_CHANNEL` at commit), as a new delivery does: no poll waited for."""
    await conn.execute(
        "WITH released AS (UPDATE delivery SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,"
        " attempts = attempts - 1, lease_until = NULL, lease_token = NULL,"
        " next_attempt_at = coalesce($3, next_attempt_at)"
        " WHERE delivery_id = $1 AND state = 'sending' AND lease_token = $2 RETURNING 1)"
        " SELECT pg_notify($4, '') FROM released WHERE $3::timestamptz IS NULL",
        job.delivery_id,
        job.lease_token,
        next_attempt_at,
        DELIVERIES_CHANNEL,
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
