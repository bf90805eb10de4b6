"""A batch's procedures and what each accepted act does to them (docs/domain.md §1.2–§1.4).

Pure decisions over an in-memory view. The application service (``services.ingest.intake``) reads what
:func:`lookup` names (locked: the acts' latest revisions and the candidate procedures), builds a
:class:`ProcedureBook` of them, asks it to :meth:`~ProcedureBook.decide` each accepted act in input
order, then writes back :meth:`~ProcedureBook.created` and :meth:`~ProcedureBook.changed` procedures.
Because every act of a batch is decided against the same view, two acts of one household in one batch
link exactly as if they had come in two batches.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from schemas.procedure import ProcedureNotification
from schemas.stages import Stage
from services.ingest.domain.linking import (
    LinkKeys,
    Placement,
    ProcedureState,
    ProcedureStatus,
    link_keys,
    place,
    with_saisine,
)
from services.ingest.domain.normalise import Accepted
from services.ingest.domain.rejections import WarningCode

__all__ = [
    "Duplicate",
    "LatestRevision",
    "Lookup",
    "Procedure",
    "ProcedureBook",
    "Recorded",
    "lookup",
]


@dataclass(frozen=True, slots=True)
class LatestRevision:
    """The newest accepted revision of an act: what a re-sent act is compared with and answered from."""

    procedure_id: uuid.UUID
    revision: int
    content_sha256: str
    notification_id: uuid.UUID
    warnings: tuple[str, ...]


@dataclass(slots=True)
class Procedure:
    """A procedure while a batch is decided: read once, changed in memory, written back once."""

    procedure_id: uuid.UUID
    correlation_id: uuid.UUID
    departement: str
    year: int
    """The year of its short reference (its creation's)."""
    short_ref: str
    procedure_ref: str | None
    link_key: str | None
    address_key: str | None
    current_stage: str
    current_rank: int
    status: ProcedureStatus
    saisine_date: date | None
    is_new: bool
    reopened: int = 0
    """How many times this batch reopened it."""
    changed: bool = False

    @classmethod
    def create(cls, record: ProcedureNotification, keys: LinkKeys) -> Procedure:
        """A procedure for a household seen for the first time; :meth:`number` gives its short reference."""
        return cls(
            procedure_id=uuid.uuid4(),
            correlation_id=uuid.uuid4(),
            departement=record.dwelling.address.departement,
            year=record.act.date.year,
            short_ref="",
            procedure_ref=record.source.procedure_ref,
            link_key=keys.link_key,
            address_key=keys.address_key,
            current_stage=record.act.stage.value,
            current_rank=0,
            status=ProcedureStatus.OPEN,
            saisine_date=None,
            is_new=True,
        )

    def number(self, number: int) -> None:
        """Give it its short reference from the sequence's ``number``: ``90-2026-000042``.

        Formatted here, not with ``lpad`` in SQL, which would truncate numbers beyond 6 digits into duplicates.
        """
        self.short_ref = f"{self.departement}-{self.year}-{number:06d}"

    def apply(self, stage: Stage, placement: Placement, act_date: date) -> None:
        """Record an act's effect: stage advance, status, reopen count, earliest CCAPEX saisine."""
        if placement.advanced:
            self.current_stage, self.current_rank = stage.value, placement.current_rank
        self.status = placement.status
        self.reopened += int(placement.reopened)
        if stage is Stage.SAISINE_CCAPEX_BAILLEUR:
            self.saisine_date = act_date if self.saisine_date is None else min(self.saisine_date, act_date)
        self.changed = True


@dataclass(frozen=True, slots=True)
class Lookup:
    """What deciding a batch's accepted acts needs read (and locked) first, and the acts' household keys."""

    keys: Mapping[uuid.UUID, LinkKeys]
    """Each act's keys, by notification id: hashed once per act, for the lookup and the decision."""
    idempotency_keys: frozenset[str]
    refs: frozenset[str]
    """The emitters' procedure references the acts carry."""
    household_keys: frozenset[str]
    address_keys: frozenset[str]

    def lock_keys(self) -> list[str]:
        """Every key whose advisory lock the batch takes before reading: acts, households, references and
        addresses (a household moving in at an address whose procedure another transaction is creating must
        see it, to be flagged ``LINK_LOW_CONFIDENCE`` rather than silently treated as unrelated)."""
        return [*self.idempotency_keys, *self.household_keys, *self.refs, *self.address_keys]


def lookup(accepted: Sequence[Accepted]) -> Lookup:
    """The keys of ``accepted``'s acts, households and addresses (docs/domain.md §1.3, §1.4)."""
    keys = {item.notification.notification_id: link_keys(item.notification) for item in accepted}
    return Lookup(
        keys=keys,
        idempotency_keys=frozenset(item.idempotency_key for item in accepted),
        refs=frozenset(ref for item in accepted if (ref := item.notification.source.procedure_ref)),
        household_keys=frozenset(k.link_key for k in keys.values()),
        address_keys=frozenset(k.address_key for k in keys.values()),
    )


@dataclass(frozen=True, slots=True)
class Recorded:
    """A new act or a correction of one: a revision of its procedure, to store and publish.

    ``record`` is the accepted record bounded by the procedure's CCAPEX saisine and carrying the adapter's
    and the linking's warnings; ``link_candidate`` is the open procedure at the same address under another
    name, when this act created a procedure next to it (``LINK_LOW_CONFIDENCE``).
    """

    accepted: Accepted
    record: ProcedureNotification
    procedure: Procedure
    revision: int
    placement: Placement
    link_candidate: uuid.UUID | None

    @property
    def is_correction(self) -> bool:
        """A later revision of an act already accepted, with another content."""
        return self.revision > 1


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The same act with the same content as its latest revision: answered like it, nothing recorded."""

    accepted: Accepted
    original: LatestRevision
    procedure: Procedure


class ProcedureBook:
    """The procedures and latest revisions a batch's acts may touch, and the decision for each act."""

    def __init__(
        self,
        found: Lookup,
        latest: Mapping[str, LatestRevision],
        procedures: Iterable[Procedure],
        *,
        clock: date,
    ) -> None:
        """``latest`` by idempotency key; ``procedures`` oldest first (the most recent one per key wins, as
        in the lookup queries); ``clock`` is the reference day the derived deadlines are computed on."""
        self._keys = found.keys
        self._latest = dict(latest)
        self._clock = clock
        self._procedures: dict[uuid.UUID, Procedure] = {}
        self._by_ref: dict[str, Procedure] = {}
        self._by_link: dict[str, Procedure] = {}
        self._open_by_address: dict[str, Procedure] = {}
        for procedure in procedures:
            self._index(procedure)

    def _index(self, procedure: Procedure) -> None:
        self._procedures[procedure.procedure_id] = procedure
        if procedure.procedure_ref:
            self._by_ref[procedure.procedure_ref] = procedure
        if procedure.link_key:
            self._by_link[procedure.link_key] = procedure
        if procedure.address_key and procedure.status is ProcedureStatus.OPEN:
            self._open_by_address[procedure.address_key] = procedure

    def decide(self, accepted: Accepted, adapter_warnings: Sequence[str] = ()) -> Recorded | Duplicate:
        """docs/domain.md §1.4 deduplication, then linking and placement of a new act or a correction.

        The act must be one of those :func:`lookup` was given. Its effect is applied to the view at once,
        so the next acts of the batch see it (its procedure, its stage, its revision).
        """
        latest = self._latest.get(accepted.idempotency_key)
        if latest is not None and latest.content_sha256 == accepted.content_sha256:
            return Duplicate(accepted, latest, self._procedures[latest.procedure_id])
        record = accepted.notification
        if latest is not None:
            procedure, created, candidate = self._procedures[latest.procedure_id], False, None
        else:
            procedure, created, candidate = self._link(record)
        stage = record.act.stage
        placement = place(ProcedureState(procedure.current_rank, procedure.status, is_new=created), stage)
        record = with_saisine(record, procedure.saisine_date, clock=self._clock)
        procedure.apply(stage, placement, record.act.date)
        linking = (WarningCode.LINK_LOW_CONFIDENCE.value,) if candidate else ()
        extra = [*adapter_warnings, *placement.warnings, *linking]
        if extra:
            record = record.model_copy(update={"warnings": [*record.warnings, *extra]})
        revision = 1 if latest is None else latest.revision + 1
        self._latest[accepted.idempotency_key] = LatestRevision(
            procedure.procedure_id, revision, accepted.content_sha256, record.notification_id, tuple(record.warnings)
        )
        return Recorded(accepted, record, procedure, revision, placement, candidate)

    def _link(self, record: ProcedureNotification) -> tuple[Procedure, bool, uuid.UUID | None]:
        """docs/domain.md §1.3 linking: procedure_ref, then household (address + first tenant), else a new one.

        A procedure at the same address under another name is never merged: the new procedure is flagged
        ``LINK_LOW_CONFIDENCE`` and the other one recorded as the candidate, for a person to review. A
        closed procedure of the same household is linked (and reopened by a ranked act, docs/domain.md §1.2).
        """
        keys = self._keys[record.notification_id]
        ref = record.source.procedure_ref
        found = (self._by_ref.get(ref) if ref else None) or self._by_link.get(keys.link_key)
        if found is not None:
            return found, False, None
        neighbour = self._open_by_address.get(keys.address_key)
        candidate = neighbour.procedure_id if neighbour and neighbour.status is ProcedureStatus.OPEN else None
        created = Procedure.create(record, keys)
        self._index(created)
        return created, True, candidate

    def created(self) -> list[Procedure]:
        """The procedures this batch's acts created, in creation order."""
        return [p for p in self._procedures.values() if p.is_new]

    def changed(self) -> list[Procedure]:
        """The procedures read from the store that this batch's acts changed."""
        return [p for p in self._procedures.values() if p.changed and not p.is_new]
