"""Ingest's application service: raw inputs in, canonical events or coded rejections out.

Every input path (Kafka raw topics, HTTP, CSV files, ops re-submissions) ends in :meth:`Intake.process`,
which handles a batch in the caller's transaction: every raw input is stored first (nothing is lost),
validated by the pure domain, deduplicated, linked to a procedure, and its outgoing event is written to
the outbox with the rows. For Kafka the transaction commits before the offsets do; the Kafka handler calls
the two halves of ``process`` itself (:meth:`Intake.prepare`, database-free, and :meth:`Intake.record`) to
validate a chunk while the previous chunk's transaction runs.

A batch costs a constant number of round trips whatever its size (the per-record cost is Python work):

1. the Kafka positions already stored (redeliveries: skipped);
2. advisory locks on the acts' idempotency keys, the households' and the addresses' keys (concurrent
   batches touching the same ones serialise);
3. the latest revision of each act; 4. the candidate procedures, locked;
5. short-reference numbers for the new procedures; 6. ``UPSERT`` duplicate counts;
7. ``INSERT`` the raw rows with their outcomes (a position stored meanwhile rolls the batch back);
8. ``INSERT``/``UPDATE`` procedures, ``INSERT`` stage events and rejections;
9. the outbox rows and a ``NOTIFY`` for the relay, in one statement.

Within a batch, acts are decided in input order against an in-memory view of the procedures, so two
acts of one household in the same batch link exactly as if they had come in two batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from aiokafka import ConsumerRecord

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.ingest import IngestDuplicate, IngestDuplicateEvent, IngestRejected, IngestRejectedEvent
from schemas.procedure import ProcedureNotice, ProcedureNotification, ProcedureNotificationEvent, SourceSystem
from schemas.stages import Stage
from services.ingest import repository as repo
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.domain.linking import (
    LinkKeys,
    Placement,
    ProcedureState,
    ProcedureStatus,
    link_keys,
    place,
    with_saisine,
)
from services.ingest.domain.normalise import Accepted, Rejected, RejectionError, normalise, reject_unknown_emitter
from services.ingest.domain.rejections import WarningCode
from services.ingest.emitters import EmitterRegistry
from services.platform.db import Conn
from services.platform.isolation import TransientError, failure_summary
from services.platform.kafka import HeaderEntry, key_text, undecodable_headers
from services.platform.kafka import header_entries as kafka_header_entries
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage, enqueue

__all__ = [
    "INTERNAL_ERROR",
    "PRODUCER",
    "SCHEMA",
    "ConcurrentDeliveryError",
    "Intake",
    "IntakeResult",
    "Outcome",
    "Prepared",
    "RawInput",
    "Receipt",
    "Refusal",
    "RejectionReceipt",
]

PRODUCER = "ingest"
SCHEMA = "ingest"
INTERNAL_ERROR = "INTERNAL_ERROR"
"""The rejection code of an input whose processing raised: a bug in ingest, not in the input. Its raw
payload is kept; ops re-submit it (``rejections resubmit ID --stored``) once the code is fixed."""
_MAX_EMITTER_REF = 64  # schemas.ingest.EmitterRef
_MAX_HEADER_IN_PATH = 64

log = get_logger(__name__)
_level = logging.getLogger(__name__)  # the stdlib logger behind ``log``: its level decides what is emitted


class Outcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    CORRECTION = "CORRECTION"
    DUPLICATE_IGNORED = "DUPLICATE_IGNORED"
    REJECTED = "REJECTED"
    ALREADY_PROCESSED = "ALREADY_PROCESSED"
    """A redelivered Kafka record whose position was already stored: nothing is done again."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """An adapter could not translate its input (a CSV line with too many cells, a file without header):
    the input is still stored, and rejected with this error."""

    error: RejectionError
    external_ref: str | None = None


@dataclass(frozen=True)
class RawInput:
    """One inbound payload and where it came from. ``emitter_key`` is the authenticated emitter id.

    ``payload`` is stored as received. ``document`` is what is validated when an adapter translated the
    payload (a CSV line into a bailleur notice); ``warnings`` are the adapter's (``AMOUNT_COERCED``).
    """

    payload: bytes
    source_system: SourceSystem
    channel: str
    emitter_key: str | None
    received_at: datetime
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    document: bytes | None = None
    refusal: Refusal | None = None
    warnings: tuple[str, ...] = ()
    corrects_rejection_id: uuid.UUID | None = None
    source_line: int | None = None
    kafka_key: bytes | None = None
    """The Kafka record key as received, when it is not UTF-8 (``emitter_key`` has it with U+FFFD)."""
    kafka_headers: list[HeaderEntry] | None = None
    """The Kafka record headers as received (:func:`services.platform.kafka.header_entries`)."""
    undecodable_headers: tuple[str, ...] = ()
    """Names of the Kafka headers whose value is not text; named in the input's rejection if it has one."""

    @classmethod
    def of_record(
        cls, record: ConsumerRecord[bytes, bytes], source_system: SourceSystem, received_at: datetime
    ) -> RawInput:
        """A raw input from a Kafka record of a raw topic, whatever its key and headers hold.

        The record key is the emitter id (on a real cluster, ACLs bind it to the producing principal);
        a key that is not UTF-8 is read with replacement characters, so it names no known emitter.
        """
        key = key_text(record)
        return cls(
            payload=record.value or b"",
            source_system=source_system,
            channel=f"kafka:{record.topic}",
            emitter_key=key or None,
            received_at=received_at,
            kafka_topic=record.topic,
            kafka_partition=record.partition,
            kafka_offset=record.offset,
            kafka_key=record.key if key is not None and "\ufffd" in key else None,
            kafka_headers=kafka_header_entries(record),
            undecodable_headers=tuple(undecodable_headers(record)),
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    """An input validated ahead of its transaction: its raw row (written by :meth:`Intake.record`) and its
    verdict."""

    raw: RawInput
    row: repo.RawRow
    verdict: Accepted | Rejected


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the emitter is told about an accepted act; built from stored values only, so an exact re-send
    of the act gets the very same receipt (the idempotent answer of the HTTP API)."""

    outcome: Outcome
    notification_id: uuid.UUID
    procedure_short_ref: str
    revision: int
    stage: Stage
    external_ref: str
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RejectionReceipt:
    """What the emitter is told about a rejected input: references and coded errors, no personal data."""

    rejection_id: uuid.UUID
    external_ref: str | None
    errors: tuple[RejectionError, ...]


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """The outcome of one input. ``receipt`` for an accepted act, a correction, and a duplicate (the
    receipt of the act it duplicates); ``rejection`` for a rejection; neither for ``ALREADY_PROCESSED``."""

    outcome: Outcome
    receipt: Receipt | None = None
    rejection: RejectionReceipt | None = None


@dataclass(slots=True)
class _Procedure:
    """Working copy of a procedure while a batch is decided; written back once at the end."""

    procedure_id: uuid.UUID
    correlation_id: uuid.UUID
    departement: str
    year: int
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
    changed: bool = False

    @classmethod
    def of(cls, row: repo.ProcedureRow) -> _Procedure:
        return cls(
            procedure_id=row.procedure_id,
            correlation_id=row.correlation_id,
            departement=row.departement,
            year=row.created_at.year,
            short_ref=row.short_ref,
            procedure_ref=row.procedure_ref,
            link_key=row.link_key,
            address_key=row.address_key,
            current_stage=row.current_stage,
            current_rank=row.current_rank,
            status=ProcedureStatus(row.status),
            saisine_date=row.saisine_date,
            is_new=False,
        )

    @classmethod
    def create(cls, record: ProcedureNotification, keys: LinkKeys) -> _Procedure:
        """A procedure for a household seen for the first time; its short reference is numbered at write."""
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
class _Recorded:
    index: int
    raw: RawInput
    raw_id: uuid.UUID
    accepted: Accepted
    record: ProcedureNotification
    procedure: _Procedure
    revision: int
    placement: Placement
    link_candidate: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class _Duplicate:
    index: int
    raw_id: uuid.UUID
    accepted: Accepted
    original: repo.LatestRevision
    procedure: _Procedure


@dataclass(frozen=True, slots=True)
class _Rejection:
    index: int
    raw: RawInput
    raw_id: uuid.UUID
    rejected: Rejected
    rejection_id: uuid.UUID = field(default_factory=uuid.uuid4)


def _emitter_ref(key: str | None) -> str:
    """The emitter id as a rejection can carry it, whatever the Kafka key held (NUL, overlong, empty)."""
    cleaned = (key or "").replace("\x00", "\ufffd")[:_MAX_EMITTER_REF]
    return cleaned or "unknown"


class _Batch:
    """Decides one batch of validated inputs against the procedures they touch, then writes it."""

    def __init__(self, clock: date) -> None:
        self._clock = clock
        self._latest: dict[str, repo.LatestRevision] = {}
        self._keys: dict[uuid.UUID, LinkKeys] = {}
        self._procedures: dict[uuid.UUID, _Procedure] = {}
        self._by_ref: dict[str, _Procedure] = {}
        self._by_link: dict[str, _Procedure] = {}
        self._open_by_address: dict[str, _Procedure] = {}
        self.recorded: list[_Recorded] = []
        self.duplicates: list[_Duplicate] = []
        self.rejections: list[_Rejection] = []

    def _index(self, procedure: _Procedure) -> None:
        # Called in creation order: the most recent procedure per key wins, as in the lookup queries.
        self._procedures[procedure.procedure_id] = procedure
        if procedure.procedure_ref:
            self._by_ref[procedure.procedure_ref] = procedure
        if procedure.link_key:
            self._by_link[procedure.link_key] = procedure
        if procedure.address_key and procedure.status is ProcedureStatus.OPEN:
            self._open_by_address[procedure.address_key] = procedure

    async def load(self, conn: Conn, accepted: Sequence[Accepted]) -> None:
        """Lock and read what the accepted acts may touch: their latest revisions and candidate procedures."""
        if not accepted:
            return
        for item in accepted:
            self._keys[item.notification.notification_id] = link_keys(item.notification)
        idempotency_keys = {item.idempotency_key for item in accepted}
        refs = {ref for item in accepted if (ref := item.notification.source.procedure_ref)}
        household_keys = {keys.link_key for keys in self._keys.values()}
        address_keys = {keys.address_key for keys in self._keys.values()}
        # Address keys too: a household moving in at an address whose procedure another transaction is
        # creating must see it, to be flagged LINK_LOW_CONFIDENCE rather than silently treated as unrelated.
        await repo.lock_keys(conn, [*idempotency_keys, *household_keys, *refs, *address_keys])
        self._latest = await repo.latest_revisions(conn, idempotency_keys)
        rows = await repo.find_procedures(
            conn,
            ids={latest.procedure_id for latest in self._latest.values()},
            refs=refs,
            link_keys=household_keys,
            address_keys=address_keys,
        )
        for row in rows:
            self._index(_Procedure.of(row))

    def reject(self, index: int, raw: RawInput, raw_id: uuid.UUID, rejected: Rejected) -> None:
        self.rejections.append(_Rejection(index, raw, raw_id, rejected))

    def accept(self, index: int, raw: RawInput, raw_id: uuid.UUID, accepted: Accepted) -> None:
        """docs/domain.md §1.4 deduplication, then linking and placement of a new act or a correction."""
        latest = self._latest.get(accepted.idempotency_key)
        if latest is not None and latest.content_sha256 == accepted.content_sha256:
            self.duplicates.append(_Duplicate(index, raw_id, accepted, latest, self._procedures[latest.procedure_id]))
            return
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
        extra = [*raw.warnings, *placement.warnings, *linking]
        if extra:
            record = record.model_copy(update={"warnings": [*record.warnings, *extra]})
        revision = 1 if latest is None else latest.revision + 1
        self.recorded.append(_Recorded(index, raw, raw_id, accepted, record, procedure, revision, placement, candidate))
        self._latest[accepted.idempotency_key] = repo.LatestRevision(
            procedure.procedure_id, revision, accepted.content_sha256, record.notification_id, tuple(record.warnings)
        )

    def _link(self, record: ProcedureNotification) -> tuple[_Procedure, bool, uuid.UUID | None]:
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
        created = _Procedure.create(record, keys)
        self._index(created)
        return created, True, candidate

    async def number(self, conn: Conn) -> None:
        """Give the new procedures their short references (``90-2026-000042``), in creation order.

        Numbered in Python: ``lpad`` in SQL would truncate numbers beyond 6 digits into duplicates.
        """
        new = [p for p in self._procedures.values() if p.is_new]
        for procedure, number in zip(new, await repo.next_short_ref_numbers(conn, len(new)), strict=True):
            procedure.short_ref = f"{procedure.departement}-{procedure.year}-{number:06d}"

    async def count_duplicates(self, conn: Conn) -> dict[int, int]:
        """Count the batch's duplicates; the running count of each copy, in input order, by its index."""
        increments = Counter(item.accepted.idempotency_key for item in self.duplicates)
        totals = await repo.count_duplicates(conn, increments)
        counts: dict[int, int] = {}
        for item in reversed(self.duplicates):  # the last copy of an act gets the running total
            key = item.accepted.idempotency_key
            counts[item.index] = totals[key]
            totals[key] -= 1
        return counts

    async def write(self, conn: Conn, stage_events: Sequence[repo.StageEventRow]) -> None:
        """Write the procedures, stage events and rejections of the batch (after its raw rows)."""
        await repo.insert_procedures(conn, [_new_row(p) for p in self._procedures.values() if p.is_new])
        changed = [_update_row(p) for p in self._procedures.values() if p.changed and not p.is_new]
        await repo.update_procedures(conn, changed)
        await repo.insert_stage_events(conn, stage_events)
        await repo.insert_rejections(conn, [_rejection_row(item) for item in self.rejections])


def _new_row(procedure: _Procedure) -> repo.NewProcedure:
    return repo.NewProcedure(
        procedure_id=procedure.procedure_id,
        short_ref=procedure.short_ref,
        correlation_id=procedure.correlation_id,
        departement=procedure.departement,
        procedure_ref=procedure.procedure_ref,
        link_key=procedure.link_key,
        address_key=procedure.address_key,
        current_stage=procedure.current_stage,
        current_rank=procedure.current_rank,
        status=procedure.status.value,
        reopened_count=procedure.reopened,
        saisine_date=procedure.saisine_date,
    )


def _update_row(procedure: _Procedure) -> repo.ProcedureUpdate:
    return repo.ProcedureUpdate(
        procedure_id=procedure.procedure_id,
        current_stage=procedure.current_stage,
        current_rank=procedure.current_rank,
        status=procedure.status.value,
        reopened=procedure.reopened,
        saisine_date=procedure.saisine_date,
    )


def _stage_event_row(item: _Recorded, event_json: bytes) -> repo.StageEventRow:
    record = item.record
    return repo.StageEventRow(
        notification_id=record.notification_id,
        procedure_id=item.procedure.procedure_id,
        idempotency_key=item.accepted.idempotency_key,
        revision=item.revision,
        payload_sha256=record.source.payload_sha256,
        content_sha256=item.accepted.content_sha256,
        stage=record.act.stage.value,
        act_date=record.act.date,
        is_late=item.placement.is_late,
        is_correction=item.revision > 1,
        event_json=event_json,
        raw_id=item.raw_id,
        link_candidate_procedure_id=item.link_candidate,
    )


def _errors(rejected: Rejected) -> list[dict[str, str | None]]:
    return [{"code": e.code, "field": e.field, "message": e.message} for e in rejected.codes]


def _rejection_row(item: _Rejection) -> repo.RejectionRow:
    rejected = item.rejected
    return repo.RejectionRow(
        rejection_id=item.rejection_id,
        raw_id=item.raw_id,
        emitter_id=rejected.emitter_id,
        external_ref=rejected.external_ref,
        errors_json=json.dumps(_errors(rejected)),
    )


def _receipt(
    outcome: Outcome,
    record: ProcedureNotification,
    *,
    notification_id: uuid.UUID,
    revision: int,
    short_ref: str,
    warnings: Sequence[str],
) -> Receipt:
    return Receipt(
        outcome=outcome,
        notification_id=notification_id,
        procedure_short_ref=short_ref,
        revision=revision,
        stage=record.act.stage,
        external_ref=record.source.external_ref,
        warnings=tuple(warnings),
    )


class Intake:
    """Turns raw inputs into stored, linked notifications and outbox events."""

    def __init__(
        self,
        *,
        emitters: EmitterRegistry,
        communes: CommuneDirectory,
        territory: Territory,
        max_payload_bytes: int,
    ) -> None:
        self._emitters = emitters
        self._communes = communes
        self._territory = territory
        self._max_payload_bytes = max_payload_bytes

    @property
    def emitters(self) -> EmitterRegistry:
        """The registry inputs are authenticated against (the HTTP API looks API keys up in it)."""
        return self._emitters

    async def process(self, conn: Conn, inputs: Sequence[RawInput], *, clock: date) -> list[IntakeResult]:
        """Process ``inputs`` in order on ``conn``, inside the caller's transaction; one result per input.

        ``clock`` is the reference day (DATE_IN_FUTURE, urgency). Never raises because of an input's
        content: any bytes end as a result. Database errors propagate, and the caller's transaction,
        rolled back, leaves nothing behind (a Kafka batch then comes again); so does
        :class:`ConcurrentDeliveryError`, when another consumer stored one of these Kafka records meanwhile.
        """
        return await self.record(conn, self.prepare(inputs, clock=clock), clock=clock)

    def prepare(self, inputs: Sequence[RawInput], *, clock: date) -> list[Prepared]:
        """The database-free part of :meth:`process`: each input's raw row and verdict (pure CPU work,
        which a pipelined caller runs while the previous chunk's transaction waits for PostgreSQL)."""
        prepared = []
        for raw in inputs:
            row = self._raw_row(raw)
            try:
                verdict = self._validate(raw, row.payload_sha256, clock)
            except Exception as error:
                # A bug reached by one input must not fail the others. Not log.exception: the exception's
                # message may quote the input (personal data); where it failed is enough to find the bug.
                log.error("raw_input_internal_error", channel=raw.channel, error=failure_summary(error))  # noqa: TRY400
                verdict = _internal_error(raw, row.payload_sha256)
            prepared.append(Prepared(raw, row, verdict))
        return prepared

    async def record_internal_error(self, conn: Conn, raw: RawInput, *, clock: date) -> IntakeResult:
        """Store ``raw`` rejected with :data:`INTERNAL_ERROR`, without validating it: its processing raised
        (in a transaction, where :meth:`prepare` cannot catch it), so it is set aside for the others to go
        on. In the caller's transaction; a Kafka record already stored is left as it is."""
        row = self._raw_row(raw)
        [result] = await self.record(conn, [Prepared(raw, row, _internal_error(raw, row.payload_sha256))], clock=clock)
        return result

    async def record(
        self,
        conn: Conn,
        prepared: Sequence[Prepared],
        *,
        clock: date,
        on_locked: Callable[[], None] | None = None,
    ) -> list[IntakeResult]:
        """The database part of :meth:`process`, on inputs :meth:`prepare` returned for the same ``clock``.

        ``on_locked`` is called once this transaction holds the advisory locks of every act, household and
        address it may touch: from then on, another transaction touching one of them waits for this one to
        commit, so a pipelined caller may start the next chunk's transaction without changing any outcome.
        """
        done = await repo.stored_positions(conn, [item.row for item in prepared])
        verdicts = [
            (index, item.raw, item.row, item.verdict)
            for index, item in enumerate(prepared)
            if (item.row.kafka_topic, item.row.kafka_partition, item.row.kafka_offset) not in done
        ]
        batch = _Batch(clock)
        await batch.load(conn, [verdict for *_, verdict in verdicts if isinstance(verdict, Accepted)])
        if on_locked is not None:
            on_locked()
        for index, raw, row, verdict in verdicts:
            if isinstance(verdict, Rejected):
                batch.reject(index, raw, row.raw_id, verdict)
            else:
                batch.accept(index, raw, row.raw_id, verdict)
        await batch.number(conn)
        duplicate_counts = await batch.count_duplicates(conn)
        results = [IntakeResult(Outcome.ALREADY_PROCESSED)] * len(prepared)
        messages: list[tuple[int, OutboxMessage]] = []
        for rejection in batch.rejections:
            results[rejection.index], message = self._rejected(rejection)
            messages.append((rejection.index, message))
        for duplicate in batch.duplicates:
            results[duplicate.index], message = self._duplicate(duplicate, duplicate_counts[duplicate.index])
            messages.append((duplicate.index, message))
        stage_events = []
        for recorded in batch.recorded:
            results[recorded.index], message = self._recorded(recorded)
            messages.append((recorded.index, message))
            stage_events.append(_stage_event_row(recorded, message.value))
        fresh = [row for _, _, row, _ in verdicts]
        for index, _, row, _ in verdicts:
            row.outcome = results[index].outcome.value
        if await repo.insert_raw(conn, fresh) != len(fresh):
            raise ConcurrentDeliveryError("a record of this batch was stored by another transaction meanwhile")
        await batch.write(conn, stage_events)
        messages.sort(key=lambda pair: pair[0])
        await enqueue(conn, SCHEMA, [message for _, message in messages])
        _log_batch([item.raw for item in prepared], results)
        return results

    def _raw_row(self, raw: RawInput) -> repo.RawRow:
        return repo.RawRow(
            raw_id=uuid.uuid4(),
            source_system=raw.source_system.value,
            channel=raw.channel,
            kafka_topic=raw.kafka_topic,
            kafka_partition=raw.kafka_partition,
            kafka_offset=raw.kafka_offset,
            emitter_key=None if raw.emitter_key is None else raw.emitter_key.replace("\x00", "\ufffd"),
            payload=raw.payload,
            payload_sha256=hashlib.sha256(raw.payload).hexdigest(),
            received_at=raw.received_at,
            corrects_rejection_id=raw.corrects_rejection_id,
            source_line=raw.source_line,
            kafka_key=raw.kafka_key,
            kafka_headers=None if raw.kafka_headers is None else json.dumps(raw.kafka_headers),
        )

    def _validate(self, raw: RawInput, payload_sha256: str, clock: date) -> Accepted | Rejected:
        verdict = self._verdict(raw, payload_sha256, clock)
        if isinstance(verdict, Rejected) and (details := _kafka_details(raw)):
            return dataclasses.replace(verdict, codes=(*verdict.codes, *details))
        return verdict

    def _verdict(self, raw: RawInput, payload_sha256: str, clock: date) -> Accepted | Rejected:
        if raw.refusal is not None:
            refusal = raw.refusal
            return Rejected((refusal.error,), _emitter_ref(raw.emitter_key), refusal.external_ref, payload_sha256)
        document = raw.payload if raw.document is None else raw.document
        emitter = self._emitters.get(raw.emitter_key)
        if emitter is None:
            return reject_unknown_emitter(document, _emitter_ref(raw.emitter_key), payload_sha256=payload_sha256)
        return normalise(
            document,
            source_system=raw.source_system,
            emitter=emitter,
            communes=self._communes,
            territory=self._territory,
            received_at=raw.received_at,
            clock=clock,
            notification_id=uuid.uuid4(),
            max_bytes=self._max_payload_bytes,
            payload_sha256=payload_sha256,
        )

    def _rejected(self, item: _Rejection) -> tuple[IntakeResult, OutboxMessage]:
        rejected = item.rejected
        emitter = self._emitters.get(rejected.emitter_id)
        event = IngestRejectedEvent(
            **new_envelope_fields(PRODUCER),
            payload=IngestRejected.model_validate(
                {
                    "rejection_id": item.rejection_id,
                    "emitter_id": rejected.emitter_id,
                    "emitter_type": emitter.emitter_type if emitter else None,
                    "source_system": item.raw.source_system,
                    "external_ref": rejected.external_ref,
                    "received_at": item.raw.received_at,
                    "payload_sha256": rejected.payload_sha256,
                    "errors": _errors(rejected),
                }
            ),
        )
        log.info(
            "raw_input_rejected",
            codes=[e.code for e in rejected.codes],
            rejection_id=str(item.rejection_id),
            source_line=item.raw.source_line,
        )
        receipt = RejectionReceipt(item.rejection_id, rejected.external_ref, rejected.codes)
        result = IntakeResult(Outcome.REJECTED, rejection=receipt)
        return result, OutboxMessage.of(topics.INGEST_REJECTED, rejected.emitter_id, event)

    def _duplicate(self, item: _Duplicate, count: int) -> tuple[IntakeResult, OutboxMessage]:
        source = item.accepted.notification.source
        event = IngestDuplicateEvent(
            **new_envelope_fields(PRODUCER, correlation_id=item.procedure.correlation_id),
            payload=IngestDuplicate.model_validate(
                {
                    "idempotency_key": item.accepted.idempotency_key,
                    "emitter_id": source.emitter_id,
                    "external_ref": source.external_ref,
                    "procedure_id": item.procedure.procedure_id,
                    "duplicate_count": count,
                }
            ),
        )
        log.info("raw_input_duplicate", duplicate_count=count, procedure_ref=item.procedure.short_ref)
        original = item.original
        receipt = _receipt(
            Outcome.ACCEPTED if original.revision == 1 else Outcome.CORRECTION,
            item.accepted.notification,
            notification_id=original.notification_id,
            revision=original.revision,
            short_ref=item.procedure.short_ref,
            warnings=original.warnings,
        )
        result = IntakeResult(Outcome.DUPLICATE_IGNORED, receipt=receipt)
        return result, OutboxMessage.of(topics.INGEST_DUPLICATE, source.emitter_id, event)

    def _recorded(self, item: _Recorded) -> tuple[IntakeResult, OutboxMessage]:
        record, procedure, placement = item.record, item.procedure, item.placement
        notice = ProcedureNotice(
            procedure_id=procedure.procedure_id,
            procedure_short_ref=procedure.short_ref,
            revision=item.revision,
            is_late=placement.is_late,
            is_correction=item.revision > 1,
            stage_advanced=placement.advanced,
            reopened=placement.reopened,
            link_low_confidence=item.link_candidate is not None,
            notification=record,
        )
        event = ProcedureNotificationEvent(
            **new_envelope_fields(PRODUCER, correlation_id=procedure.correlation_id), payload=notice
        )
        if _level.isEnabledFor(logging.DEBUG):  # skip building a line the handler would drop
            log.debug(
                "procedure_notification_recorded",
                event_id=str(event.event_id),
                correlation_id=str(event.correlation_id),
                procedure_ref=procedure.short_ref,
                stage=record.act.stage.value,
                revision=item.revision,
                is_late=placement.is_late,
                channel=item.raw.channel,
            )
        outcome = Outcome.ACCEPTED if item.revision == 1 else Outcome.CORRECTION
        receipt = _receipt(
            outcome,
            record,
            notification_id=record.notification_id,
            revision=item.revision,
            short_ref=procedure.short_ref,
            warnings=record.warnings,
        )
        message = OutboxMessage.of(topics.PROCEDURE_NOTIFICATION, str(procedure.procedure_id), event)
        return IntakeResult(outcome, receipt=receipt), message


def _internal_error(raw: RawInput, payload_sha256: str) -> Rejected:
    error = RejectionError(
        INTERNAL_ERROR, None, "ingest failed to process this input; it is kept and will be re-submitted once fixed"
    )
    return Rejected((error, *_kafka_details(raw)), _emitter_ref(raw.emitter_key), None, payload_sha256)


def _kafka_details(raw: RawInput) -> tuple[RejectionError, ...]:
    """What a rejection says about a Kafka record's key and headers that are not text (stored as bytes with
    the raw input): the names, never the values."""
    details = [
        RejectionError(
            "KAFKA_HEADER_NOT_TEXT",
            f"headers.{name[:_MAX_HEADER_IN_PATH]}",
            "this Kafka header's value is not UTF-8 text (or is null); it is kept as bytes with the input",
        )
        for name in raw.undecodable_headers
    ]
    if raw.kafka_key is not None:
        details.append(
            RejectionError("KAFKA_KEY_NOT_TEXT", None, "the Kafka record key is not UTF-8; it is kept as bytes")
        )
    return tuple(details)


class ConcurrentDeliveryError(TransientError):
    """Another transaction stored a Kafka record of this batch while it was processed (a consumer group
    rebalance let two consumers read it). The batch must be rolled back; redelivered, it is skipped."""


def _log_batch(inputs: Sequence[RawInput], results: Sequence[IntakeResult]) -> None:
    """One line per batch at INFO (a line per input would cost more than validating it); rejections and
    duplicates have their own lines, accepted notifications theirs at DEBUG."""
    counts = Counter(result.outcome.value.lower() for result in results)
    channels = sorted({raw.channel for raw in inputs})
    log.info("raw_batch_processed", inputs=len(inputs), channels=channels, **counts)
