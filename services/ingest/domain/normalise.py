"""Source payload (CJ act, bailleur notice) → canonical :class:`ProcedureNotification`, or a coded rejection.

:func:`normalise` is the whole ingest decision for one payload, as a pure function: no clock, no random
id, no I/O. The caller (the Kafka handler) authenticates the emitter, supplies the reception time, the
reference clock and the new notification id, then publishes the outcome.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from schemas.procedure import (
    Act,
    Caf,
    Cfp,
    Court,
    Debt,
    Decision,
    Dwelling,
    EmitterType,
    Household,
    HouseholdContact,
    Landlord,
    LandlordType,
    Lease,
    Parc,
    ProcedureNotification,
    Source,
    SourceSystem,
    Tenant,
)
from schemas.sources import SOURCE_FORMATS, BailleurNotice, CjAct, SourceRecord
from schemas.sources.cj import SourceCfp, SourceCommandementQuitter, SourceCourtCase, SourceDecision
from schemas.sources.common import SourceCaf, SourceDebt, SourceHousehold, SourceLease
from schemas.stages import Stage
from services.ingest.domain.address import resolve_address
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.domain.emitter_stages import allowed_stages, may_send
from services.ingest.domain.payload import decode_document, peek_external_ref
from services.ingest.domain.rejections import (
    Findings,
    Rejected,
    RejectionCode,
    RejectionError,
    schema_errors,
)
from services.ingest.domain.requirements import missing_for_stage
from services.ingest.domain.rules import derive, parc_for_landlord, rule_warnings
from services.ingest.domain.values import FieldReader

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMAT_EMITTER_TYPES",
    "Accepted",
    "Emitter",
    "Rejected",
    "RejectionError",
    "content_sha256",
    "idempotency_key",
    "normalise",
    "reject_unknown_emitter",
]

DEFAULT_MAX_BYTES = 256_000

# Who may author each format. The authenticated identity decides, never the payload's own claim.
FORMAT_EMITTER_TYPES: dict[str, frozenset[EmitterType]] = {
    # The préfecture sends its CFP acts in the act format, restricted to those stages (emitter_stages).
    CjAct.FORMAT_ID: frozenset({EmitterType.COMMISSAIRE_JUSTICE, EmitterType.PREFECTURE}),
    BailleurNotice.FORMAT_ID: frozenset(
        {EmitterType.BAILLEUR_SOCIAL, EmitterType.BAILLEUR_PRIVE_PM, EmitterType.ADMINISTRATEUR_BIENS}
    ),
}
_EMITTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")  # as schemas.procedure.Source.emitter_id
_CFP_STAGES = frozenset({Stage.DEMANDE_CFP, Stage.DECISION_CFP})
# Absent source blocks read as empty ones. Built once: the models are frozen, and building them for every
# payload was a measurable share of normalising one.
_NO_COURT_CASE = SourceCourtCase()
_NO_COMMANDEMENT_QUITTER = SourceCommandementQuitter()
_NO_CFP = SourceCfp()
_NO_LEASE = SourceLease()
_NO_DEBT = SourceDebt()
_NO_HOUSEHOLD = SourceHousehold()
_NO_CAF = SourceCaf()


@dataclass(frozen=True, slots=True)
class Emitter:
    """The authenticated emitter, resolved by the caller from the Kafka key or API key (never the payload)."""

    emitter_id: str
    emitter_type: EmitterType
    name: str

    def __post_init__(self) -> None:
        if not _EMITTER_ID.match(self.emitter_id):
            raise ValueError("emitter_id must be a SIRET or registry id ([A-Za-z0-9_.-], 3-64 characters)")


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted payload: its canonical record, its act's idempotency key and its content hash.

    ``content_sha256`` (see :func:`content_sha256`) is what deduplication compares: the same act re-sent
    with the same content is a duplicate, whatever its formatting.
    """

    notification: ProcedureNotification
    idempotency_key: str
    content_sha256: str


@dataclass(frozen=True, slots=True)
class _Context:
    source_system: SourceSystem
    emitter: Emitter
    communes: CommuneDirectory
    territory: Territory
    received_at: datetime
    clock: date
    notification_id: uuid.UUID
    payload_sha256: str


@dataclass(frozen=True, slots=True)
class _StageBlocks:
    """The stage-specific blocks of any format, empty where a format has none (bailleur notices)."""

    court_case: SourceCourtCase
    decision: SourceDecision | None
    commandement_quitter: SourceCommandementQuitter
    cfp: SourceCfp | None

    @classmethod
    def of(cls, record: SourceRecord) -> _StageBlocks:
        if isinstance(record, CjAct):
            return cls(
                court_case=record.court_case or _NO_COURT_CASE,
                decision=record.decision,
                commandement_quitter=record.commandement_quitter or _NO_COMMANDEMENT_QUITTER,
                cfp=record.cfp,
            )
        return cls(_NO_COURT_CASE, None, _NO_COMMANDEMENT_QUITTER, None)


def idempotency_key(emitter_id: str, external_ref: str, stage: Stage) -> str:
    """``sha256(emitter_id | external_ref | stage)`` (docs/domain.md §1.4).

    Unambiguous although ``external_ref`` may contain ``|``: the other two parts cannot.
    """
    return hashlib.sha256(f"{emitter_id}|{external_ref}|{stage.value}".encode()).hexdigest()


def reject_unknown_emitter(raw: bytes, claimed_emitter_id: str, *, payload_sha256: str | None = None) -> Rejected:
    """``EMITTER_UNKNOWN``, for the caller when the Kafka key or API key matches no registered emitter.

    ``payload_sha256`` is the hash of the input as stored, when an adapter translated it into ``raw``.
    """
    document = decode_document(raw, DEFAULT_MAX_BYTES)
    return Rejected(
        codes=(RejectionError(RejectionCode.EMITTER_UNKNOWN.value, None, "emitter is not registered"),),
        emitter_id=claimed_emitter_id,
        external_ref=None if isinstance(document, RejectionError) else peek_external_ref(document),
        payload_sha256=payload_sha256 or hashlib.sha256(raw).hexdigest(),
    )


def normalise(
    raw: bytes,
    *,
    source_system: SourceSystem,
    emitter: Emitter,
    communes: CommuneDirectory,
    territory: Territory,
    received_at: datetime,
    clock: date,
    notification_id: uuid.UUID,
    max_bytes: int = DEFAULT_MAX_BYTES,
    payload_sha256: str | None = None,
) -> Accepted | Rejected:
    """Validate and normalise one raw payload. Never raises because of ``raw``: any bytes end as an outcome.

    ``received_at`` must be timezone-aware; ``clock`` is the reference day for "not in the future" and for
    urgency (processing day in production); ``notification_id`` is the id the record gets if accepted.
    ``payload_sha256`` is the hash of the input as received when an adapter translated it into ``raw``
    (a CSV line into a bailleur notice); by default, the hash of ``raw``.
    Rejections list every problem found, each with a JSON path and no personal data.

    Raises :class:`ValueError` only for a caller bug (naive ``received_at``), which no payload can cause:
    turning it into a rejection would blame the emitter for it.
    """
    if received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    digest = payload_sha256 or hashlib.sha256(raw).hexdigest()
    document = decode_document(raw, max_bytes)
    if isinstance(document, RejectionError):
        return Rejected((document,), emitter.emitter_id, None, digest)
    external_ref = peek_external_ref(document)
    record = _validate(document, emitter)
    if isinstance(record, tuple):
        return Rejected(record, emitter.emitter_id, external_ref, digest)
    context = _Context(source_system, emitter, communes, territory, received_at, clock, notification_id, digest)
    try:
        outcome = _canonicalise(record, context)
    except ValidationError as error:
        # Source checks mirror the canonical constraints; this only catches a drift between the two.
        outcome = schema_errors(error)
    if isinstance(outcome, tuple):
        return Rejected(outcome, emitter.emitter_id, external_ref, digest)
    key = idempotency_key(emitter.emitter_id, record.external_ref, outcome.act.stage)
    return Accepted(outcome, key, content_sha256(record))


def content_sha256(record: SourceRecord) -> str:
    """Hash of what an act says: its validated source record, serialised with the model's field order,
    defaults filled in and plain numbers (``2400.0`` as ``2400``). Key order, whitespace and an explicit
    default do not change it; any value does."""
    return hashlib.sha256(record.model_dump_json().encode()).hexdigest()


def _validate(document: dict[str, Any], emitter: Emitter) -> SourceRecord | tuple[RejectionError, ...]:
    """The document as its declared format, from an emitter allowed to author it."""
    declared = document.get("format")
    model = SOURCE_FORMATS.get(declared) if isinstance(declared, str) else None
    if model is None:
        expected = ", ".join(sorted(SOURCE_FORMATS))
        return (RejectionError(RejectionCode.SCHEMA_INVALID.value, "format", f"expected one of: {expected}"),)
    if emitter.emitter_type not in FORMAT_EMITTER_TYPES[model.FORMAT_ID]:
        return (
            RejectionError(RejectionCode.EMITTER_MISMATCH.value, "format", "format not accepted from this emitter"),
        )
    try:
        record = model.model_validate(document)
    except ValidationError as error:
        return schema_errors(error)
    if record.emitter.siret != emitter.emitter_id:
        return (
            RejectionError(
                RejectionCode.EMITTER_MISMATCH.value, "emitter.siret", "differs from the authenticated emitter"
            ),
        )
    return record


def _canonicalise(record: SourceRecord, context: _Context) -> ProcedureNotification | tuple[RejectionError, ...]:
    """Every check on the validated record; the canonical notification if none failed."""
    findings = Findings()
    reader = FieldReader(findings, context.clock)
    stage = _stage(record, context.emitter.emitter_type, findings)
    act = _act(record, stage, reader)
    household = _household(record, reader)
    address = resolve_address(
        record.dwelling.address if record.dwelling else None,
        communes=context.communes,
        territory=context.territory,
        reader=reader,
    )
    lease = _lease(record.lease or _NO_LEASE, reader)
    debt = _debt(record.debt or _NO_DEBT, reader)
    if stage is not None:
        findings.errors.extend(missing_for_stage(record, stage))
    if findings.errors or act is None or household is None or address is None:
        return tuple(findings.errors)
    landlord = Landlord(type=record.landlord.type, name=record.landlord.name, siren=record.landlord.siren)
    derived = derive(act, landlord.type, lease, debt, clock=context.clock)
    return ProcedureNotification(
        notification_id=context.notification_id,
        source=_source(record, context),
        act=act,
        household=household,
        dwelling=Dwelling(address=address, parc=_parc(record, landlord.type)),
        landlord=landlord,
        lease=lease,
        debt=debt,
        derived=derived,
        warnings=[*findings.warnings, *rule_warnings(act, lease, debt, derived)],
    )


def _parc(record: SourceRecord, landlord_type: LandlordType) -> Parc:
    """The emitter's ``dwelling.parc`` when given (it knows its stock), else implied by the landlord."""
    given = record.dwelling.parc if record.dwelling else None
    return given or parc_for_landlord(landlord_type)


def _source(record: SourceRecord, context: _Context) -> Source:
    return Source(
        system=context.source_system,
        emitter_type=context.emitter.emitter_type,
        emitter_id=context.emitter.emitter_id,
        external_ref=record.external_ref,
        procedure_ref=record.procedure_ref,
        received_at=context.received_at,
        payload_sha256=context.payload_sha256,
    )


def _stage(record: SourceRecord, emitter_type: EmitterType, findings: Findings) -> Stage | None:
    """The stage code, if it exists, the record's format may carry it and the emitter may send it."""
    accepted = type(record).STAGES
    try:
        stage: Stage | None = Stage(record.stage)
    except ValueError:
        stage = None
    if stage is None or stage not in accepted:
        code = RejectionCode.STAGE_UNKNOWN
    elif may_send(emitter_type, stage):
        return stage
    else:
        code = RejectionCode.STAGE_NOT_ALLOWED_FOR_EMITTER
    expected = ", ".join(sorted(allowed.value for allowed in allowed_stages(emitter_type, accepted)))
    findings.reject(code, "stage", f"expected one of: {expected}")
    return None


def _act(record: SourceRecord, stage: Stage | None, reader: FieldReader) -> Act | None:
    act_date = reader.day(record.act_date, "act_date", past=True)
    blocks = _StageBlocks.of(record)
    court_case = blocks.court_case
    hearing_date = reader.day(court_case.hearing_date, "court_case.hearing_date")
    prefect_notified_on = reader.day(court_case.prefect_notified_on, "court_case.prefect_notified_on", past=True)
    vacate_by = reader.day(blocks.commandement_quitter.vacate_by, "commandement_quitter.vacate_by")
    decision = _decision(blocks.decision, reader)
    cfp = _cfp(blocks.cfp, stage, act_date, reader)
    if stage is None or act_date is None:
        return None
    return Act(
        stage=stage,
        date=act_date,
        hearing_date=hearing_date,
        prefect_notified_on=prefect_notified_on,
        court=Court(name=court_case.court.name, rg=court_case.court.rg) if court_case.court else None,
        decision=decision,
        vacate_by=vacate_by,
        cfp=cfp,
        cloture_reason=record.cloture.reason if record.cloture else None,
    )


def _decision(block: SourceDecision | None, reader: FieldReader) -> Decision | None:
    if block is None:
        return None
    return Decision(
        type=block.type,
        delais_paiement_mois=block.delais_paiement_mois,
        mensualite=reader.amount(block.mensualite, "decision.mensualite"),
        indemnite_occupation=reader.amount(block.indemnite_occupation, "decision.indemnite_occupation"),
        delai_quitter_mois=block.delai_quitter_mois,
    )


def _cfp(block: SourceCfp | None, stage: Stage | None, act_date: date | None, reader: FieldReader) -> Cfp | None:
    """The CFP block; at a CFP stage its own date defaults to the act date (the act *is* the request/decision)."""
    if block is None and stage not in _CFP_STAGES:
        return None
    block = block or _NO_CFP
    requested_on = reader.day(block.requested_on, "cfp.requested_on", past=True)
    decided_on = reader.day(block.decided_on, "cfp.decided_on", past=True)
    return Cfp(
        requested_on=requested_on or (act_date if stage is Stage.DEMANDE_CFP else None),
        decision=block.decision,
        decided_on=decided_on or (act_date if stage is Stage.DECISION_CFP else None),
    )


def _household(record: SourceRecord, reader: FieldReader) -> Household | None:
    if not record.tenants:
        reader.findings.reject(RejectionCode.TENANT_MISSING, "tenants", "at least one tenant required")
        return None
    tenants = [
        Tenant(
            last_name=tenant.last_name,
            first_name=tenant.first_name,
            birth_date=reader.day(tenant.birth_date, f"tenants[{index}].birth_date", past=True),
            role=tenant.role,
        )
        for index, tenant in enumerate(record.tenants)
    ]
    source = record.household or _NO_HOUSEHOLD
    caf = source.caf or _NO_CAF
    contact = source.contact
    return Household(
        tenants=tenants,
        composition=source.composition,
        children_count=source.children_count,
        contact=HouseholdContact(mobile=contact.mobile, email=contact.email) if contact else None,
        caf=Caf(
            allocataire=caf.allocataire,
            organisme=caf.organisme,
            numero_allocataire=caf.numero_allocataire,
            tiers_payant=caf.tiers_payant,
        ),
        monthly_resources=reader.amount(source.monthly_resources, "household.monthly_resources"),
        surendettement=source.surendettement,
    )


def _lease(lease: SourceLease, reader: FieldReader) -> Lease:
    return Lease(
        start_date=reader.day(lease.start_date, "lease.start_date", past=True),
        rent_excl_charges=reader.amount(
            lease.rent_excl_charges, "lease.rent_excl_charges", negative=RejectionCode.RENT_NEGATIVE
        ),
        charges=reader.amount(lease.charges, "lease.charges", negative=RejectionCode.RENT_NEGATIVE),
    )


def _debt(debt: SourceDebt, reader: FieldReader) -> Debt:
    return Debt(
        amount=reader.amount(debt.amount, "debt.amount", negative=RejectionCode.DEBT_NEGATIVE),
        as_of=reader.day(debt.as_of, "debt.as_of", past=True),
        first_unpaid_month=reader.month(debt.first_unpaid_month, "debt.first_unpaid_month"),
        months_unpaid=debt.months_unpaid,
    )
