"""The référentiel in PostgreSQL: every change a new version, published, and the version a process uses.

Three rules hold whoever writes (the admin API, the CLI, the service at start):

- a change is one transaction under ``lock_referential``: read the latest version, apply the change,
  validate the whole référentiel, write the new revisions of what changed, and enqueue one
  ``referentiel.changed`` record per affected structure in the outbox (a structure taken out gets a
  last record with status ``archived``, never a tombstone). Nothing changed → no new version;
- a process matches with an ``ActiveReferential``; ``ReferentialHolder.refresh`` compares it with the
  latest version in the database (one indexed ``max()``) and loads the new one when another process
  or replica committed it. The consumer refreshes once per batch, the admin API per request;
- each decision records the version it used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.referential import ReferentialChangedEvent, StructureRecord
from services.orientation import referential_repository as repo
from services.orientation.domain.diff import EntityKind, ReferentialDiff, diff_referentials
from services.orientation.domain.events import removed_structure_record, structure_records
from services.orientation.domain.matching import Matcher
from services.orientation.domain.referential import Referential
from services.orientation.domain.referential_yaml import content_hash
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage, enqueue

__all__ = [
    "PRODUCER",
    "SCHEMA",
    "ActiveReferential",
    "Commit",
    "ReferentialHolder",
    "commit_referential",
    "load_active",
    "publish_current",
]

SCHEMA = "orientation"
PRODUCER = "orientation"

log = get_logger(__name__)


@dataclass(frozen=True)
class ActiveReferential:
    """A référentiel version ready for matching, with the version each structure and offer last changed in
    (the ``ETag`` of the admin API)."""

    version: int
    referential: Referential
    matcher: Matcher
    revisions: Mapping[tuple[EntityKind, str], int] = field(default_factory=dict)

    def revision(self, entity: EntityKind, item_id: str) -> int | None:
        return self.revisions.get((entity, item_id))


Change = Callable[[ActiveReferential | None], Referential]
"""Builds the new référentiel from the latest version (``None`` while there is none); raises to refuse."""


@dataclass(frozen=True)
class Commit:
    """The outcome of a change: the version now current, and what changed (empty: no new version)."""

    active: ActiveReferential
    diff: ReferentialDiff

    @property
    def created(self) -> bool:
        return bool(self.diff)


async def load_active(conn: Conn, version: int) -> ActiveReferential:
    """Read ``version`` from the tables and index it for matching."""
    loaded = await repo.load_version(conn, version)
    revisions = {(EntityKind.STRUCTURE, item): v for item, v in loaded.structure_revisions.items()}
    revisions |= {(EntityKind.OFFER, item): v for item, v in loaded.offer_revisions.items()}
    return ActiveReferential(version, loaded.referential, Matcher(loaded.referential), revisions)


async def commit_referential(conn: Conn, change: Change, *, source: str, author: str) -> Commit:
    """Apply ``change`` to the latest version as a new version, in the caller's transaction.

    ``source`` says through what (``api``, ``cli import seed-90.yaml``…), ``author`` who (a token's
    name, a login). Exceptions raised by ``change`` (validation, precondition) leave nothing written.
    """
    await repo.lock_referential(conn)
    latest = await repo.latest_version(conn)
    current = await load_active(conn, latest) if latest is not None else None
    old = current.referential if current is not None else None
    new = change(current)
    diff = diff_referentials(old, new)
    if current is not None and not diff:
        return Commit(current, diff)
    version = await repo.insert_version(
        conn,
        content_hash=content_hash(new),
        source=source,
        author=author,
        default_referent=new.default_referent,
        changes=diff.summary(),
    )
    changed = {(c.entity, c.id) for c in diff.changes}
    await repo.end_revisions(
        conn,
        version,
        structures=[i for e, i in changed if e is EntityKind.STRUCTURE],
        offers=[i for e, i in changed if e is EntityKind.OFFER],
    )
    await repo.insert_structures(
        conn, version, [(n, s) for n, s in enumerate(new.structures) if (EntityKind.STRUCTURE, s.id) in changed]
    )
    await repo.insert_offers(
        conn, version, [(n, o) for n, o in enumerate(new.offers) if (EntityKind.OFFER, o.id) in changed]
    )
    records = list(structure_records(new, version, only=diff.affected_structures))
    kept = {s.id for s in new.structures}
    records += [removed_structure_record(s, version) for s in (old.structures if old else ()) if s.id not in kept]
    await _publish(conn, records)
    revisions = {
        key: rev for key, rev in (current.revisions.items() if current is not None else ()) if key not in changed
    }
    revisions |= {
        (EntityKind.STRUCTURE, s.id): version for s in new.structures if (EntityKind.STRUCTURE, s.id) in changed
    }
    revisions |= {(EntityKind.OFFER, o.id): version for o in new.offers if (EntityKind.OFFER, o.id) in changed}
    log.info("referential_version_created", version=version, source=source, author=author, changes=len(diff.changes))
    return Commit(ActiveReferential(version, new, Matcher(new), revisions), diff)


async def publish_current(conn: Conn, active: ActiveReferential) -> int:
    """Enqueue every structure of ``active`` on the compacted topic; return how many.

    Done at each start: it heals a topic the broker lost, and consumers ignore records of a version
    they already hold.
    """
    records = structure_records(active.referential, active.version)
    await _publish(conn, records)
    return len(records)


async def _publish(conn: Conn, records: list[StructureRecord] | tuple[StructureRecord, ...]) -> None:
    messages = [
        OutboxMessage.of(
            topics.REFERENTIAL_CHANGED,
            record.structure_id,
            ReferentialChangedEvent(**new_envelope_fields(PRODUCER), payload=record),
        )
        for record in records
    ]
    await enqueue(conn, SCHEMA, messages)


class ReferentialHolder:
    """The référentiel version this process matches with, kept up to date with the database."""

    def __init__(self) -> None:
        self._active: ActiveReferential | None = None
        self._loading = asyncio.Lock()

    @property
    def active(self) -> ActiveReferential:
        if self._active is None:
            raise RuntimeError("no référentiel loaded yet")
        return self._active

    def offer(self, active: ActiveReferential) -> None:
        """Use ``active`` unless a newer version is already in use (a commit of this process)."""
        if self._active is None or active.version > self._active.version:
            self._active = active
            log.info("referential_activated", version=active.version)

    async def refresh(self, conn: Conn) -> ActiveReferential:
        """The latest version, loaded from ``conn`` if it is not the one in use."""
        latest = await repo.latest_version(conn)
        if latest is None:
            raise RuntimeError("the database holds no référentiel")
        if self._active is not None and self._active.version >= latest:
            return self._active
        async with self._loading:
            if self._active is None or self._active.version < latest:
                self.offer(await load_active(conn, latest))
        return self.active
