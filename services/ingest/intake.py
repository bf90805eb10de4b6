"""Ingest's application service: raw inputs in, canonical events or coded rejections out.

One call handles a batch in the caller's transaction: every raw input is stored first (nothing is
lost), validated by the pure domain, deduplicated, linked to a procedure, and its outgoing events
are written to the outbox with the rows. The transaction commits before the Kafka offsets do.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.ingest import IngestDuplicate, IngestDuplicateEvent, IngestRejected, IngestRejectedEvent
from schemas.procedure import ProcedureNotice, ProcedureNotification, ProcedureNotificationEvent, SourceSystem
from schemas.stages import Stage, stage_rank
from services.ingest import repository as repo
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.domain.normalise import Accepted, Rejected, RejectionError, normalise
from services.ingest.emitters import EmitterRegistry
from services.platform.db import Conn
from services.platform.logging import get_logger, log_context
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["Intake", "Outcome", "RawInput"]

PRODUCER = "ingest"
SCHEMA = "ingest"

log = get_logger(__name__)


class Outcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    CORRECTION = "CORRECTION"
    DUPLICATE_IGNORED = "DUPLICATE_IGNORED"
    REJECTED = "REJECTED"
    ALREADY_PROCESSED = "ALREADY_PROCESSED"


@dataclass(frozen=True)
class RawInput:
    """One inbound payload and where it came from. ``emitter_key`` is the authenticated emitter id."""

    payload: bytes
    source_system: SourceSystem
    channel: str
    emitter_key: str | None
    received_at: datetime
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None


@dataclass(frozen=True)
class _Link:
    procedure: repo.ProcedureRow
    low_confidence: bool


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

    async def process(self, conn: Conn, inputs: Sequence[RawInput], *, clock: date) -> list[Outcome]:
        """Process ``inputs`` in order on ``conn`` (inside the caller's transaction)."""
        outcomes = []
        messages: list[OutboxMessage] = []
        for raw in inputs:
            with log_context(channel=raw.channel):
                outcome, produced = await self._process_one(conn, raw, clock)
            outcomes.append(outcome)
            messages.extend(produced)
        await enqueue(conn, SCHEMA, messages)
        return outcomes

    async def _process_one(self, conn: Conn, raw: RawInput, clock: date) -> tuple[Outcome, list[OutboxMessage]]:
        raw_id = uuid.uuid4()
        sha = hashlib.sha256(raw.payload).hexdigest()
        row = repo.RawRow(
            raw_id=raw_id,
            source_system=raw.source_system.value,
            channel=raw.channel,
            kafka_topic=raw.kafka_topic,
            kafka_partition=raw.kafka_partition,
            kafka_offset=raw.kafka_offset,
            emitter_key=raw.emitter_key,
            payload=raw.payload,
            payload_sha256=sha,
            received_at=raw.received_at,
        )
        if not await repo.insert_raw(conn, row):
            return Outcome.ALREADY_PROCESSED, []
        result = self._validate(raw, sha, clock)
        if isinstance(result, Rejected):
            messages = await self._reject(conn, raw, raw_id, result)
            outcome = Outcome.REJECTED
        else:
            outcome, messages = await self._accept(conn, raw_id, result)
        await repo.set_raw_outcome(conn, raw_id, outcome.value)
        log.info("raw_input_processed", outcome=outcome.value, raw_id=str(raw_id), channel=raw.channel)
        return outcome, messages

    def _validate(self, raw: RawInput, sha: str, clock: date) -> Accepted | Rejected:
        emitter = self._emitters.get(raw.emitter_key)
        if emitter is None:
            error = RejectionError("EMITTER_UNKNOWN", None, "the emitter is not registered with this service")
            return Rejected(
                codes=(error,), emitter_id=raw.emitter_key or "unknown", external_ref=None, payload_sha256=sha
            )
        return normalise(
            raw.payload,
            source_system=raw.source_system,
            emitter=emitter,
            communes=self._communes,
            territory=self._territory,
            received_at=raw.received_at,
            clock=clock,
            notification_id=uuid.uuid4(),
            max_bytes=self._max_payload_bytes,
        )

    async def _reject(self, conn: Conn, raw: RawInput, raw_id: uuid.UUID, rejected: Rejected) -> list[OutboxMessage]:
        rejection_id = uuid.uuid4()
        errors = [{"code": e.code, "field": e.field, "message": e.message} for e in rejected.codes]
        await repo.insert_rejection(
            conn,
            rejection_id=rejection_id,
            raw_id=raw_id,
            emitter_id=rejected.emitter_id,
            external_ref=rejected.external_ref,
            errors=errors,
        )
        emitter = self._emitters.get(rejected.emitter_id)
        event = IngestRejectedEvent(
            **new_envelope_fields(PRODUCER),
            payload=IngestRejected.model_validate(
                {
                    "rejection_id": rejection_id,
                    "emitter_id": rejected.emitter_id,
                    "emitter_type": emitter.emitter_type if emitter else None,
                    "source_system": raw.source_system,
                    "external_ref": rejected.external_ref,
                    "received_at": raw.received_at,
                    "payload_sha256": rejected.payload_sha256,
                    "errors": errors,
                }
            ),
        )
        log.info("raw_input_rejected", codes=[e.code for e in rejected.codes], rejection_id=str(rejection_id))
        return [OutboxMessage.of(topics.INGEST_REJECTED, rejected.emitter_id, event)]

    async def _accept(self, conn: Conn, raw_id: uuid.UUID, accepted: Accepted) -> tuple[Outcome, list[OutboxMessage]]:
        record = accepted.notification
        latest = await repo.latest_revision(conn, accepted.idempotency_key)
        if latest is not None and latest.payload_sha256 == record.source.payload_sha256:
            return Outcome.DUPLICATE_IGNORED, [await self._duplicate(conn, accepted, latest)]
        if latest is not None:
            link = _Link(await repo.get_procedure(conn, latest.procedure_id), low_confidence=False)
            revision = latest.revision + 1
        else:
            link = await self._link(conn, record)
            revision = 1
        message = await self._record(conn, raw_id, accepted, link, revision)
        return (Outcome.CORRECTION if revision > 1 else Outcome.ACCEPTED), [message]

    async def _duplicate(self, conn: Conn, accepted: Accepted, latest: repo.LatestRevision) -> OutboxMessage:
        count = await repo.count_duplicate(conn, accepted.idempotency_key)
        source = accepted.notification.source
        event = IngestDuplicateEvent(
            **new_envelope_fields(PRODUCER),
            payload=IngestDuplicate.model_validate(
                {
                    "idempotency_key": accepted.idempotency_key,
                    "emitter_id": source.emitter_id,
                    "external_ref": source.external_ref,
                    "procedure_id": latest.procedure_id,
                    "duplicate_count": count,
                }
            ),
        )
        return OutboxMessage.of(topics.INGEST_DUPLICATE, source.emitter_id, event)

    async def _link(self, conn: Conn, record: ProcedureNotification) -> _Link:
        """domain.md §6a.2 linking: procedure_ref, then address + first tenant, else a new procedure.

        A procedure at the same address under another name is not merged: the new one is flagged
        low-confidence for a person to review.
        """
        if record.source.procedure_ref:
            found = await repo.find_procedure_by_ref(conn, record.source.procedure_ref)
            if found is not None:
                return _Link(found, low_confidence=False)
        link_key, address_key = _link_keys(record)
        found = await repo.find_open_procedure_by_link(conn, link_key)
        if found is not None:
            return _Link(found, low_confidence=False)
        same_address = await repo.find_open_procedure_by_address(conn, address_key)
        created = await repo.create_procedure(
            conn,
            departement=record.dwelling.address.departement,
            year=record.act.date.year,
            procedure_ref=record.source.procedure_ref,
            link_key=link_key,
            address_key=address_key,
            stage=record.act.stage.value,
            rank=0,
        )
        return _Link(created, low_confidence=same_address is not None)

    async def _record(
        self, conn: Conn, raw_id: uuid.UUID, accepted: Accepted, link: _Link, revision: int
    ) -> OutboxMessage:
        record = accepted.notification
        procedure = link.procedure
        stage = record.act.stage
        rank = stage_rank(stage)
        reopened = procedure.status == "CLOSED" and rank is not None
        is_late = rank is not None and rank < procedure.current_rank and not reopened
        advanced = rank is not None and (rank > procedure.current_rank or reopened)
        warnings = [*record.warnings]
        if is_late:
            warnings.append("LATE_EARLIER_STAGE")
        if link.low_confidence:
            warnings.append("LINK_LOW_CONFIDENCE")
        if reopened:
            warnings.append("REOPENED")
        record = record.model_copy(update={"warnings": warnings})
        status = "CLOSED" if stage is Stage.CLOTURE else "OPEN"
        await repo.update_procedure_stage(
            conn,
            procedure.procedure_id,
            stage=stage.value if advanced else None,
            rank=rank if advanced else None,
            status=status if (advanced or stage is Stage.CLOTURE or reopened) else procedure.status,
            reopened=reopened,
        )
        await repo.insert_stage_event(
            conn,
            notification_id=record.notification_id,
            procedure_id=procedure.procedure_id,
            idempotency_key=accepted.idempotency_key,
            revision=revision,
            payload_sha256=record.source.payload_sha256,
            stage=stage.value,
            act_date=record.act.date,
            is_late=is_late,
            is_correction=revision > 1,
            record=record.model_dump(mode="json"),
            raw_id=raw_id,
        )
        notice = ProcedureNotice(
            procedure_id=procedure.procedure_id,
            procedure_short_ref=procedure.short_ref,
            revision=revision,
            is_late=is_late,
            is_correction=revision > 1,
            stage_advanced=advanced,
            reopened=reopened,
            link_low_confidence=link.low_confidence,
            notification=record,
        )
        event = ProcedureNotificationEvent(
            **new_envelope_fields(PRODUCER, correlation_id=procedure.correlation_id), payload=notice
        )
        log.info(
            "procedure_notification_recorded",
            event_id=str(event.event_id),
            correlation_id=str(event.correlation_id),
            procedure_ref=procedure.short_ref,
            stage=stage.value,
            revision=revision,
            is_late=is_late,
        )
        return OutboxMessage.of(topics.PROCEDURE_NOTIFICATION, str(procedure.procedure_id), event)


def _link_keys(record: ProcedureNotification) -> tuple[str, str]:
    """Hashes used to find the household's procedure; no personal data is stored in clear for them."""
    address = record.dwelling.address
    tenant = record.household.tenants[0]
    address_part = f"{address.commune_insee}|{_fold(address.line1)}"
    person_part = f"{_fold(tenant.last_name)}|{_fold(tenant.first_name)}"
    return (
        hashlib.sha256(f"{address_part}|{person_part}".encode()).hexdigest(),
        hashlib.sha256(address_part.encode()).hexdigest(),
    )


def _fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form: 'Rue de  l’Église' == 'RUE DE L EGLISE'."""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(c if c.isalnum() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join(letters.lower().split())
