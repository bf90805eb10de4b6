"""Ingest's application service: raw inputs in, canonical events or coded rejections out.

Every input path (Kafka raw topics, HTTP, CSV files, ops re-submissions) ends in :meth:`Intake.process`,
which handles a batch in the caller's transaction: every raw input is stored first (nothing is lost),
validated by the pure domain, deduplicated, linked to a procedure, and its outgoing event is written to
the outbox with the rows. This module only orchestrates — load, decide, save: the decisions are the
domain's (``domain/normalise.py`` validates, ``domain/procedures.py`` deduplicates, links and places),
the events are built by ``events.py``, the SQL is ``repository.py``'s. For Kafka the transaction commits
before the offsets do; the Kafka handler calls the two halves of ``process`` itself (:meth:`Intake.prepare`,
database-free, and :meth:`Intake.record`) to validate a chunk while the previous chunk's transaction runs.

A batch costs a constant number of round trips whatever its size (the per-record cost is Python work):

1. advisory locks on the acts' idempotency keys, the households' and the addresses' keys (concurrent
   batches touching the same ones serialise), and 2. the Kafka positions already stored (redeliveries:
   skipped), in one statement;
3. the latest revision of each act and 4. the candidate procedures, locked, in one statement;
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
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from aiokafka import ConsumerRecord

from schemas import topics
from schemas.procedure import ProcedureNotification, SourceSystem
from schemas.stages import Stage
from services.ingest import repository as repo
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.domain.normalise import (
    Accepted,
    Emitter,
    Rejected,
    RejectionError,
    normalise,
    reject_unknown_emitter,
)
from services.ingest.domain.procedures import Duplicate, Lookup, ProcedureBook, Recorded, lookup
from services.ingest.emitters import EmitterRegistry
from services.ingest.events import (
    PRODUCER,
    duplicate_event,
    notification_event,
    rejected_event,
    rejection_errors,
)
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
    """One inbound payload and where it came from.

    ``emitter`` is the emitter the edge authenticated (API key, Kafka record key: on a real cluster, ACLs
    bind the key to the producing principal), ``None`` when the key named no registered emitter (the input
    is then rejected ``EMITTER_UNKNOWN``); ``emitter_key`` is that key's emitter id as received.

    ``payload`` is stored as received. ``document`` is what is validated when an adapter translated the
    payload (a CSV line into a bailleur notice); ``warnings`` are the adapter's (``AMOUNT_COERCED``).
    """

    payload: bytes
    source_system: SourceSystem
    channel: str
    emitter_key: str | None
    received_at: datetime
    emitter: Emitter | None
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
        cls,
        record: ConsumerRecord[bytes, bytes],
        source_system: SourceSystem,
        received_at: datetime,
        emitters: EmitterRegistry,
    ) -> RawInput:
        """A raw input from a Kafka record of a raw topic, whatever its key and headers hold.

        The record key is the emitter id, looked up in ``emitters`` here, once; a key that is not UTF-8 is
        read with replacement characters, so it names no known emitter.
        """
        key = key_text(record) or None
        return cls(
            payload=record.value or b"",
            source_system=source_system,
            channel=f"kafka:{record.topic}",
            emitter_key=key,
            received_at=received_at,
            emitter=emitters.get(key),
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


def _emitter_ref(key: str | None) -> str:
    """The emitter id as a rejection can carry it, whatever the Kafka key held (NUL, overlong, empty)."""
    cleaned = (key or "").replace("\x00", "\ufffd")[:_MAX_EMITTER_REF]
    return cleaned or "unknown"


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

    def __init__(self, *, communes: CommuneDirectory, territory: Territory, max_payload_bytes: int) -> None:
        self._communes = communes
        self._territory = territory
        self._max_payload_bytes = max_payload_bytes

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
            row = _raw_row(raw)
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
        row = _raw_row(raw)
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
        """The database part of :meth:`process`, on inputs :meth:`prepare` returned for the same ``clock``:
        load what the acts may touch, let the domain decide each act in input order, save.

        ``on_locked`` is called once this transaction holds the advisory locks of every act, household and
        address it may touch: from then on, another transaction touching one of them waits for this one to
        commit, so a pipelined caller may start the next chunk's transaction without changing any outcome.
        """
        accepted = [item.verdict for item in prepared if isinstance(item.verdict, Accepted)]
        found = lookup(accepted)
        # One statement locks every accepted act's keys (a redelivered one's too: that only serialises) and
        # finds the redelivered records.
        done = await repo.stored_positions(conn, [item.row for item in prepared], lock=found.lock_keys())
        fresh = [
            (index, item)
            for index, item in enumerate(prepared)
            if (item.row.kafka_topic, item.row.kafka_partition, item.row.kafka_offset) not in done
        ]
        fresh_accepted = [item.verdict for _, item in fresh if isinstance(item.verdict, Accepted)]
        if len(fresh_accepted) < len(accepted):
            found = lookup(fresh_accepted)
        book = await _load(conn, found, clock)
        if on_locked is not None:
            on_locked()
        decisions = [(index, item, _decide(book, item)) for index, item in fresh]
        created = book.created()
        for procedure, number in zip(created, await repo.next_short_ref_numbers(conn, len(created)), strict=True):
            procedure.number(number)
        duplicate_counts = await _count_duplicates(
            conn, [(index, decision) for index, _, decision in decisions if isinstance(decision, Duplicate)]
        )
        results = [IntakeResult(Outcome.ALREADY_PROCESSED)] * len(prepared)
        messages: list[OutboxMessage] = []
        stage_events: list[repo.StageEventRow] = []
        rejections: list[repo.RejectionRow] = []
        for index, item, decision in decisions:
            if isinstance(decision, Rejected):
                rejection_id = uuid.uuid4()
                results[index], message = _rejected(item.raw, decision, rejection_id)
                rejections.append(_rejection_row(decision, rejection_id, item.row.raw_id))
            elif isinstance(decision, Duplicate):
                results[index], message = _duplicate(decision, duplicate_counts[index])
            else:
                results[index], message = _recorded(item.raw, decision)
                stage_events.append(repo.StageEventRow.of(decision, item.row.raw_id, message.value))
            messages.append(message)
            item.row.outcome = results[index].outcome.value
        if await repo.insert_raw(conn, [item.row for _, item in fresh]) != len(fresh):
            raise ConcurrentDeliveryError("a record of this batch was stored by another transaction meanwhile")
        await repo.insert_procedures(conn, created)
        await repo.update_procedures(conn, book.changed())
        await repo.insert_stage_events(conn, stage_events)
        await repo.insert_rejections(conn, rejections)
        await enqueue(conn, SCHEMA, messages)
        _log_batch([item.raw for item in prepared], results)
        return results

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
        if raw.emitter is None:
            return reject_unknown_emitter(document, _emitter_ref(raw.emitter_key), payload_sha256=payload_sha256)
        return normalise(
            document,
            source_system=raw.source_system,
            emitter=raw.emitter,
            communes=self._communes,
            territory=self._territory,
            received_at=raw.received_at,
            clock=clock,
            notification_id=uuid.uuid4(),
            max_bytes=self._max_payload_bytes,
            payload_sha256=payload_sha256,
        )


async def _load(conn: Conn, found: Lookup, clock: date) -> ProcedureBook:
    """Read what the acts of ``found`` may touch, their keys locked: their latest revisions and candidate
    procedures."""
    if not found.idempotency_keys:
        return ProcedureBook(found, {}, (), clock=clock)
    latest, procedures = await repo.load_procedures(
        conn,
        idempotency_keys=found.idempotency_keys,
        refs=found.refs,
        link_keys=found.household_keys,
        address_keys=found.address_keys,
    )
    return ProcedureBook(found, latest, procedures, clock=clock)


def _decide(book: ProcedureBook, item: Prepared) -> Rejected | Recorded | Duplicate:
    """A rejection stays one; an accepted act gets the domain's decision (in input order: see the book)."""
    verdict = item.verdict
    return verdict if isinstance(verdict, Rejected) else book.decide(verdict, item.raw.warnings)


async def _count_duplicates(conn: Conn, duplicates: Sequence[tuple[int, Duplicate]]) -> dict[int, int]:
    """Count the batch's duplicates; the running count of each copy, in input order, by its index."""
    increments = Counter(duplicate.accepted.idempotency_key for _, duplicate in duplicates)
    totals = await repo.count_duplicates(conn, increments)
    counts: dict[int, int] = {}
    for index, duplicate in reversed(duplicates):  # the last copy of an act gets the running total
        key = duplicate.accepted.idempotency_key
        counts[index] = totals[key]
        totals[key] -= 1
    return counts


def _raw_row(raw: RawInput) -> repo.RawRow:
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


def _rejection_row(rejected: Rejected, rejection_id: uuid.UUID, raw_id: uuid.UUID) -> repo.RejectionRow:
    return repo.RejectionRow(
        rejection_id=rejection_id,
        raw_id=raw_id,
        emitter_id=rejected.emitter_id,
        external_ref=rejected.external_ref,
        errors_json=json.dumps(rejection_errors(rejected)),
    )


def _rejected(raw: RawInput, rejected: Rejected, rejection_id: uuid.UUID) -> tuple[IntakeResult, OutboxMessage]:
    event = rejected_event(
        rejected,
        rejection_id=rejection_id,
        emitter_type=None if raw.emitter is None else raw.emitter.emitter_type,
        source_system=raw.source_system,
        received_at=raw.received_at,
    )
    log.info(
        "raw_input_rejected",
        codes=[e.code for e in rejected.codes],
        rejection_id=str(rejection_id),
        source_line=raw.source_line,
    )
    receipt = RejectionReceipt(rejection_id, rejected.external_ref, rejected.codes)
    result = IntakeResult(Outcome.REJECTED, rejection=receipt)
    return result, OutboxMessage.of(topics.INGEST_REJECTED, rejected.emitter_id, event)


def _duplicate(duplicate: Duplicate, count: int) -> tuple[IntakeResult, OutboxMessage]:
    event = duplicate_event(duplicate, count)
    log.info("raw_input_duplicate", duplicate_count=count, procedure_ref=duplicate.procedure.short_ref)
    original = duplicate.original
    receipt = _receipt(
        Outcome.ACCEPTED if original.revision == 1 else Outcome.CORRECTION,
        duplicate.accepted.notification,
        notification_id=original.notification_id,
        revision=original.revision,
        short_ref=duplicate.procedure.short_ref,
        warnings=original.warnings,
    )
    result = IntakeResult(Outcome.DUPLICATE_IGNORED, receipt=receipt)
    return result, OutboxMessage.of(topics.INGEST_DUPLICATE, duplicate.accepted.notification.source.emitter_id, event)


def _recorded(raw: RawInput, recorded: Recorded) -> tuple[IntakeResult, OutboxMessage]:
    record, procedure = recorded.record, recorded.procedure
    event = notification_event(recorded)
    if _level.isEnabledFor(logging.DEBUG):  # skip building a line the handler would drop
        log.debug(
            "procedure_notification_recorded",
            event_id=str(event.event_id),
            correlation_id=str(event.correlation_id),
            procedure_ref=procedure.short_ref,
            stage=record.act.stage.value,
            revision=recorded.revision,
            is_late=recorded.placement.is_late,
            channel=raw.channel,
        )
    outcome = Outcome.CORRECTION if recorded.is_correction else Outcome.ACCEPTED
    receipt = _receipt(
        outcome,
        record,
        notification_id=record.notification_id,
        revision=recorded.revision,
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
