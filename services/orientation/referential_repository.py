"""SQL of the versioned référentiel tables (migration 002): read a version, write a new one.

A version V is every structure and offer row with ``from_version <= V < coalesce(until_version, ∞)``;
contacts, eligibility and zones hang off their structure's or offer's row. Writers hold
``lock_referential`` for the whole transaction, so version numbers are dense and the "current" rows
(``until_version IS NULL``) always describe the latest version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.orientation.domain.referential import Offer, Referential, Structure, int4
from services.platform.db import Conn

__all__ = [
    "LoadedReferential",
    "VersionRow",
    "end_revisions",
    "insert_offers",
    "insert_structures",
    "insert_version",
    "latest_version",
    "list_versions",
    "load_version",
    "lock_referential",
    "version_row",
]

# Two-key advisory locks: (class, object). The class keeps orientation's locks apart from each other
# and from the platform's one-key migration lock.
REFERENTIAL_LOCK_CLASS = 0x4F52_0001


def _at_version(alias: str) -> str:
    """The rows of table ``alias`` that hold in the version given as ``$1``."""
    return f"{alias}.from_version <= $1 AND ({alias}.until_version IS NULL OR {alias}.until_version > $1)"


@dataclass(frozen=True)
class VersionRow:
    """One référentiel version: when, from where, by whom, and what changed."""

    version: int
    content_hash: str
    source: str
    author: str
    default_referent: str | None
    changes: list[str]
    created_at: datetime


@dataclass(frozen=True)
class LoadedReferential:
    """A référentiel version read back, with the version each structure and offer last changed in."""

    version: int
    referential: Referential
    structure_revisions: dict[str, int]
    offer_revisions: dict[str, int]


async def lock_referential(conn: Conn) -> None:
    """Serialise référentiel writers until the caller's transaction ends (every replica, every CLI)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", REFERENTIAL_LOCK_CLASS)


async def latest_version(conn: Conn) -> int | None:
    """The newest version number, ``None`` while the database holds no référentiel."""
    version: int | None = await conn.fetchval("SELECT max(version) FROM referential_version")
    return version


async def version_row(conn: Conn, version: int) -> VersionRow | None:
    row = await conn.fetchrow(f"SELECT {_VERSION_COLUMNS} FROM referential_version WHERE version = $1", version)
    return _version(row) if row else None


async def list_versions(conn: Conn, *, limit: int) -> list[VersionRow]:
    """The newest ``limit`` versions, newest first."""
    rows = await conn.fetch(f"SELECT {_VERSION_COLUMNS} FROM referential_version ORDER BY version DESC LIMIT $1", limit)
    return [_version(row) for row in rows]


async def insert_version(
    conn: Conn, *, content_hash: str, source: str, author: str, default_referent: str, changes: list[str]
) -> int:
    """Create the next version number (caller holds ``lock_referential``) and return it."""
    version: int = await conn.fetchval(
        "INSERT INTO referential_version (version, content_hash, source, author, default_referent, changes)"
        " SELECT coalesce(max(version), 0) + 1, $1, $2, $3, $4, $5 FROM referential_version RETURNING version",
        content_hash,
        source,
        author,
        default_referent,
        changes,
    )
    return version


async def end_revisions(conn: Conn, version: int, *, structures: Iterable[str], offers: Iterable[str]) -> None:
    """Close the current rows of these structures and offers: they no longer hold from ``version`` on."""
    await conn.execute(
        "UPDATE structure SET until_version = $1 WHERE structure_id = ANY($2::text[]) AND until_version IS NULL",
        version,
        list(structures),
    )
    await conn.execute(
        "UPDATE offer SET until_version = $1 WHERE offer_id = ANY($2::text[]) AND until_version IS NULL",
        version,
        list(offers),
    )


async def insert_structures(conn: Conn, version: int, items: Sequence[tuple[int, Structure]]) -> None:
    """New revisions ``(position, structure)`` holding from ``version``, with their contacts."""
    await conn.executemany(
        "INSERT INTO structure (structure_id, from_version, position, nom, siret, typologie, reseaux_porteurs,"
        " code_insee, date_maj, assured_date, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        [
            (
                s.id,
                version,
                position,
                s.nom,
                s.siret,
                s.typologie.value,
                sorted(s.reseaux_porteurs),
                s.code_insee,
                s.date_maj,
                s.assured_date,
                s.status.value,
            )
            for position, s in items
        ],
    )
    await conn.executemany(
        "INSERT INTO contact (structure_id, from_version, position, contact_id, label, email, mobile,"
        " email_enabled, sms_enabled, is_generic_mailbox, quiet_start, quiet_end)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        [
            (
                s.id,
                version,
                index,
                c.id,
                c.label,
                c.email,
                c.mobile,
                c.channels_enabled.email,
                c.channels_enabled.sms,
                c.is_generic_mailbox,
                c.quiet_hours.start if c.quiet_hours else None,
                c.quiet_hours.end if c.quiet_hours else None,
            )
            for _, s in items
            for index, c in enumerate(s.contacts)
        ],
    )


async def insert_offers(conn: Conn, version: int, items: Sequence[tuple[int, Offer]]) -> None:
    """New revisions ``(position, offer)`` holding from ``version``, with eligibility and zones."""
    await conn.executemany(
        "INSERT INTO offer (offer_id, from_version, position, structure_id, nom, description, type, thematiques,"
        " modes_mobilisation, mobilisable_par, conditions_acces, priority, mandatory_stages,"
        " max_new_assignments_per_week, date_maj, suspension_date, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        [
            (
                o.id,
                version,
                position,
                o.structure_id,
                o.nom,
                o.description,
                o.type.value,
                sorted(o.thematiques),
                sorted(o.modes_mobilisation),
                sorted(o.mobilisable_par),
                o.conditions_acces,
                o.priority,
                sorted(o.mandatory_stages),
                o.max_new_assignments_per_week,
                o.date_maj,
                o.suspension_date,
                o.status.value,
            )
            for position, o in items
        ],
    )
    await conn.executemany(
        "INSERT INTO offer_eligibility (offer_id, from_version, stages, parc, landlord_types, landlord_siren_in,"
        " debt_min, debt_max, months_of_rent_min, resources_max, allocataire, compositions, children_min,"
        " requires_surendettement, valid_from, valid_to)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        [(o.id, version, *_eligibility_values(o)) for _, o in items],
    )
    await conn.executemany(
        "INSERT INTO offer_zone (offer_id, from_version, position, kind, code, excluded)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(o.id, version, index, *zone) for _, o in items for index, zone in enumerate(_zones(o))],
    )


async def load_version(conn: Conn, version: int) -> LoadedReferential:
    """The référentiel as it was in ``version`` (validated again as a whole on the way out).

    ``LookupError`` when there is no such version, also for a number no ``integer`` column can hold.
    """
    if not int4(version):
        raise LookupError(f"no référentiel version {version}")
    header = await conn.fetchrow("SELECT default_referent FROM referential_version WHERE version = $1", version)
    if header is None:
        raise LookupError(f"no référentiel version {version}")
    structures = await conn.fetch(
        f"SELECT * FROM structure s WHERE {_at_version('s')} ORDER BY position, structure_id", version
    )
    contacts = await conn.fetch(
        "SELECT c.* FROM contact c JOIN structure s USING (structure_id, from_version)"
        f" WHERE {_at_version('s')} ORDER BY c.structure_id, c.position",
        version,
    )
    # USING merges the key columns; eligibility's columns (stages, parc, debt_min…) follow the offer's.
    offers = await conn.fetch(
        "SELECT * FROM offer o JOIN offer_eligibility e USING (offer_id, from_version)"
        f" WHERE {_at_version('o')} ORDER BY o.position, o.offer_id",
        version,
    )
    zones = await conn.fetch(
        "SELECT z.* FROM offer_zone z JOIN offer o USING (offer_id, from_version)"
        f" WHERE {_at_version('o')} ORDER BY z.offer_id, z.position",
        version,
    )
    contacts_of: dict[str, list[dict[str, Any]]] = {}
    for row in contacts:
        contacts_of.setdefault(row["structure_id"], []).append(_contact(row))
    zones_of: dict[str, list[asyncpg.Record]] = {}
    for row in zones:
        zones_of.setdefault(row["offer_id"], []).append(row)
    data = {
        "default_referent": header["default_referent"],
        "structures": [_structure(row, contacts_of.get(row["structure_id"], [])) for row in structures],
        "offers": [_offer(row, zones_of.get(row["offer_id"], [])) for row in offers],
    }
    # Lax validation: rows hold plain lists and strings where the model wants frozensets and enums.
    referential = Referential.model_validate(data, strict=False)
    return LoadedReferential(
        version,
        referential,
        {row["structure_id"]: row["from_version"] for row in structures},
        {row["offer_id"]: row["from_version"] for row in offers},
    )


_VERSION_COLUMNS = "version, content_hash, source, author, default_referent, changes, created_at"


def _version(row: asyncpg.Record) -> VersionRow:
    return VersionRow(**{**dict(row), "changes": list(row["changes"])})


def _eligibility_values(offer: Offer) -> tuple[Any, ...]:
    e = offer.eligibility
    return (
        _sorted_or_none(e.stages),
        e.parc.value if e.parc else None,
        _sorted_or_none(e.landlord_types),
        _sorted_or_none(e.landlord_siren_in),
        e.debt_min,
        e.debt_max,
        e.months_of_rent_min,
        e.resources_max,
        e.allocataire.value if e.allocataire else None,
        _sorted_or_none(e.compositions),
        e.children_min,
        e.requires_surendettement,
        e.valid_from,
        e.valid_to,
    )


def _sorted_or_none(values: frozenset[Any] | None) -> list[str] | None:
    # NULL is "no constraint"; the model forbids empty sets, so [] never needs to mean anything.
    return None if values is None else sorted(str(value) for value in values)


def _zones(offer: Offer) -> list[tuple[str, str, bool]]:
    included = [(entry.kind.value, entry.code, False) for entry in offer.zone.include]
    return included + [("COMMUNE", code, True) for code in sorted(offer.zone.exclude_communes)]


_ELIGIBILITY_COLUMNS = (
    "stages",
    "parc",
    "landlord_types",
    "landlord_siren_in",
    "debt_min",
    "debt_max",
    "months_of_rent_min",
    "resources_max",
    "allocataire",
    "compositions",
    "children_min",
    "requires_surendettement",
    "valid_from",
    "valid_to",
)


def _contact(row: asyncpg.Record) -> dict[str, Any]:
    quiet = {"start": row["quiet_start"], "end": row["quiet_end"]} if row["quiet_start"] is not None else None
    return {
        "id": row["contact_id"],
        "label": row["label"],
        "email": row["email"],
        "mobile": row["mobile"],
        "channels_enabled": {"email": row["email_enabled"], "sms": row["sms_enabled"]},
        "is_generic_mailbox": row["is_generic_mailbox"],
        "quiet_hours": quiet,
    }


def _structure(row: asyncpg.Record, contacts: list[dict[str, Any]]) -> dict[str, Any]:
    fields = ("nom", "siret", "typologie", "reseaux_porteurs", "code_insee", "date_maj", "assured_date", "status")
    return {"id": row["structure_id"], **{name: row[name] for name in fields}, "contacts": contacts}


def _offer(row: asyncpg.Record, zones: list[asyncpg.Record]) -> dict[str, Any]:
    fields = (
        "structure_id",
        "nom",
        "description",
        "type",
        "thematiques",
        "modes_mobilisation",
        "mobilisable_par",
        "conditions_acces",
        "priority",
        "mandatory_stages",
        "max_new_assignments_per_week",
        "date_maj",
        "suspension_date",
        "status",
    )
    eligibility = {name: row[name] for name in _ELIGIBILITY_COLUMNS if row[name] is not None}
    return {
        "id": row["offer_id"],
        **{name: row[name] for name in fields},
        "eligibility": eligibility,
        "zone": {
            "include": [{"kind": z["kind"], "code": z["code"]} for z in zones if not z["excluded"]],
            "exclude_communes": [z["code"] for z in zones if z["excluded"]],
        },
    }
