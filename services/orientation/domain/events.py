"""Event payloads built from domain results: what orientation publishes (pure mapping, no envelope).

The handler wraps these payloads in envelopes (ids, clock, causation) and persists them in its outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import date
from typing import Any, Final

from pydantic_core import to_jsonable_python

from schemas.orientation import (
    EXPLANATION_MAX_LENGTH,
    AlsoEligibleOffer,
    AssignmentKind,
    DecidedAssignment,
    DecisionTrigger,
    OfferRejection,
    OrientationDecided,
    OrientationUnmatched,
)
from schemas.procedure import ProcedureNotice
from schemas.referential import OfferSummary, RecordStatus, StructureRecord, StructureTypology
from schemas.warnings import partner_warnings
from services.orientation.domain.closest import closest_offers
from services.orientation.domain.matching import MATCHING_RULES_VERSION, Assignment, MatchResult
from services.orientation.domain.referential import Offer, Referential, Structure, sorted_stages

__all__ = [
    "ALERT_HEADER_FIELDS",
    "LEGAL_DATE_FIELDS",
    "OVERRIDE_EXPLANATION",
    "alert_header",
    "also_eligible_offers",
    "decided_payload",
    "override_payload",
    "removed_structure_record",
    "structure_records",
    "unmatched_payload",
    "with_overrides",
]

OVERRIDE_EXPLANATION = "added by the CCAPEX secretariat (override ADD): no matching rule chose this structure"
ALERT_HEADER_FIELDS: Final = (
    "procedure_id",
    "procedure_short_ref",
    "notification_id",
    "stage",
    "urgency",
    "commune_insee",
    "commune_name",
    "earliest_expulsion_date",
)
"""The fields of ``orientation.decided`` an alert shows about the procedure (the rest is per assignment)."""

LEGAL_DATE_FIELDS: Final = ("hearing_date", "commandement_deadline")
"""The procedure's legal dates an alert states besides the earliest expulsion date, when known."""


def decided_payload(
    notice: ProcedureNotice,
    result: MatchResult,
    *,
    referentiel_version: int,
    assignment_ids: Mapping[str, uuid.UUID],
    typologies: Mapping[str, StructureTypology] | None = None,
    rules_version: str = MATCHING_RULES_VERSION,
    referential: Referential | None = None,
    respond_by: date | None = None,
) -> OrientationDecided:
    """The ``orientation.decided`` payload: the decision plus what an alert shows (short ref, stage,
    commune name, urgency, earliest expulsion date, the act's legal warnings meant for each structure), and
    when ingest received the act (the notifier's end-to-end latency starts there). Nothing else is read
    from the household.

    ``assignment_ids``: structure id → assignment id; for a ``STAGE_UPDATE`` the handler passes the id of
    the open assignment, for a ``NEW`` one a fresh id. ``KeyError`` if a structure has none.
    ``typologies``: structure id → typology, which with the assignment's offers says which of the act's
    warnings the structure is told (``schemas/warnings.py``); without it, no assignment carries any.
    ``referential``: the one decided on, for the offers' names and, under fallback F1, the offers that came
    closest (``closest.closest_offers``); without it, neither. ``respond_by``: the day a NEW assignment's
    structure is asked to answer by (orientation's escalation deadline); the act's hearing date and the
    commandement's deadline come along, the legal dates an alert tells.
    """
    record = notice.notification
    offer_names = {offer.id: offer.nom for offer in referential.offers} if referential is not None else {}

    def told(assignment: Assignment) -> list[str]:
        if typologies is None:
            return []
        return partner_warnings(record.warnings, typologies[assignment.structure_id], assignment.offer_ids)

    return OrientationDecided(
        procedure_id=notice.procedure_id,
        procedure_short_ref=notice.procedure_short_ref,
        notification_id=record.notification_id,
        stage=record.act.stage,
        urgency=record.derived.urgency,
        commune_insee=record.dwelling.address.commune_insee,
        commune_name=record.dwelling.address.commune_name,
        earliest_expulsion_date=record.derived.earliest_expulsion_date,
        is_correction=notice.is_correction,
        referentiel_version=referentiel_version,
        rules_version=rules_version,
        hearing_date=record.act.hearing_date,
        commandement_deadline=record.derived.commandement_deadline,
        assignments=[
            _decided(a, assignment_ids[a.structure_id], told(a), offer_names=offer_names, respond_by=respond_by)
            for a in result.assignments
        ],
        also_eligible=also_eligible_offers(result),
        fallback_used=result.fallback_used,
        closest_offers=closest_offers(result.rejected, referential)
        if result.fallback_used and referential is not None
        else [],
        act_received_at=record.source.received_at,
    )


def also_eligible_offers(result: MatchResult) -> list[AlsoEligibleOffer]:
    """The eligible offers a decision did not keep, as the decided event lists them."""
    # Not validated again: ids and subjects come from the validated référentiel and the clause table, and
    # a household eligible for hundreds of offers would pay a validation per entry.
    return [
        AlsoEligibleOffer.model_construct(
            offer_id=o.offer_id, structure_id=o.structure_id, unknowns=list(o.unknowns), over_capacity=o.over_capacity
        )
        for o in result.also_eligible
    ]


def unmatched_payload(notice: ProcedureNotice, result: MatchResult) -> OrientationUnmatched | None:
    """The ``orientation.unmatched`` payload when fallback F1 was used, else ``None``."""
    if not result.fallback_used:
        return None
    record = notice.notification
    return OrientationUnmatched(
        procedure_id=notice.procedure_id,
        procedure_short_ref=notice.procedure_short_ref,
        stage=record.act.stage,
        commune_insee=record.dwelling.address.commune_insee,
        fallback_structure_id=result.assignments[0].structure_id,
        reasons=[OfferRejection(offer_id=r.offer_id, reasons=list(r.reasons)) for r in result.rejected],
    )


def structure_records(
    referential: Referential, referentiel_version: int, *, only: Collection[str] | None = None
) -> tuple[StructureRecord, ...]:
    """One ``referentiel.changed`` payload per structure (``only`` these, when given), in file order."""
    offers: dict[str, list[Offer]] = {}
    for offer in referential.offers:
        offers.setdefault(offer.structure_id, []).append(offer)
    return tuple(
        _record(structure, offers.get(structure.id, []), referential.default_referent, referentiel_version)
        for structure in referential.structures
        if only is None or structure.id in only
    )


def removed_structure_record(structure: Structure, referentiel_version: int) -> StructureRecord:
    """The last record of a structure taken out of the référentiel: ``archived``, without offers.

    Never a tombstone: the compacted topic keeps, for every structure ever published, its last state,
    and consumers learn it is gone from its status (a null value would be parked as undecodable).
    """
    archived = structure.model_copy(update={"status": RecordStatus.ARCHIVED})
    return _record(archived, [], default_referent="", version=referentiel_version)


def alert_header(notice: ProcedureNotice) -> dict[str, Any]:
    """What an alert shows of a notice (``ALERT_HEADER_FIELDS``, JSON values): kept for a notice orientation
    does not orient, so that a structure the CCAPEX adds to that procedure can still be told of it."""
    record = notice.notification
    header = {
        "procedure_id": notice.procedure_id,
        "procedure_short_ref": notice.procedure_short_ref,
        "notification_id": record.notification_id,
        "stage": record.act.stage,
        "urgency": record.derived.urgency,
        "commune_insee": record.dwelling.address.commune_insee,
        "commune_name": record.dwelling.address.commune_name,
        "earliest_expulsion_date": record.derived.earliest_expulsion_date,
        "hearing_date": record.act.hearing_date,
        "commandement_deadline": record.derived.commandement_deadline,
    }
    jsonable: dict[str, Any] = to_jsonable_python(header)
    return jsonable


def override_payload(
    header: Mapping[str, Any],
    *,
    added: Mapping[str, uuid.UUID],
    referentiel_version: int,
    respond_by: date | None = None,
) -> OrientationDecided:
    """The ``orientation.decided`` payload announcing structures the CCAPEX added to a procedure.

    ``header``: the procedure's last decision (what its alerts showed) or, without one, ``alert_header`` of
    its latest notice; its ``ALERT_HEADER_FIELDS`` (reference, stage, urgency, commune, earliest expulsion
    date) are repeated. ``added``: structure id → assignment id, each a NEW assignment without offer, so the
    notifier alerts the structure like any other; ``trigger`` tells consumers no matching rule chose them.
    The legal dates an alert states (``LEGAL_DATE_FIELDS``) are repeated when the header has them, and each
    added structure is asked to answer by ``respond_by``, as a structure matching chose would be.
    """
    return OrientationDecided.model_validate(
        {field: header[field] for field in ALERT_HEADER_FIELDS}
        | {field: header[field] for field in LEGAL_DATE_FIELDS if header.get(field) is not None}
        | {
            "is_correction": False,
            "referentiel_version": referentiel_version,
            "rules_version": header.get("rules_version", MATCHING_RULES_VERSION),
            "assignments": [_override_assignment(s, a, respond_by) for s, a in added.items()],
            "also_eligible": [],
            "fallback_used": False,
            "trigger": DecisionTrigger.CCAPEX_OVERRIDE,
        },
        strict=False,  # the header's values are JSON (a stored decision's or notice's)
    )


def with_overrides(
    decided: OrientationDecided, added: Mapping[str, uuid.UUID], *, respond_by: date | None = None
) -> OrientationDecided:
    """``decided`` also announcing the structures the CCAPEX added before orientation had anything to show
    (structure id → their open assignment's id): each is a NEW assignment — matching chose it as a stage update,
    since it holds the procedure, but it was never told of it — and one matching did not choose is appended."""
    if not added:
        return decided
    assignments = [
        a.model_copy(update={"kind": AssignmentKind.NEW, "respond_by": respond_by}) if a.structure_id in added else a
        for a in decided.assignments
    ]
    shown = {a.structure_id for a in assignments}
    assignments += [_override_assignment(s, a, respond_by) for s, a in added.items() if s not in shown]
    return decided.model_copy(update={"assignments": assignments})


def _override_assignment(structure_id: str, assignment_id: uuid.UUID, respond_by: date | None) -> DecidedAssignment:
    return DecidedAssignment(
        assignment_id=assignment_id,
        structure_id=structure_id,
        offer_ids=[],
        kind=AssignmentKind.NEW,
        mandatory=False,
        priority=0,
        over_capacity=False,
        matched_rules=[],
        explanation=OVERRIDE_EXPLANATION,
        respond_by=respond_by,
    )


def _decided(
    assignment: Assignment,
    assignment_id: uuid.UUID,
    warnings: list[str],
    *,
    offer_names: Mapping[str, str],
    respond_by: date | None,
) -> DecidedAssignment:
    return DecidedAssignment(
        assignment_id=assignment_id,
        structure_id=assignment.structure_id,
        offer_ids=list(assignment.offer_ids),
        kind=assignment.kind,
        mandatory=assignment.mandatory,
        priority=assignment.priority,
        over_capacity=assignment.over_capacity,
        matched_rules=list(assignment.matched_rules),
        explanation=_bounded(assignment.explanation),
        warnings=warnings,
        offer_names=[offer_names[offer_id] for offer_id in assignment.offer_ids if offer_id in offer_names],
        # Only a new assignment waits for an answer; a stage update's structure already holds the case.
        respond_by=respond_by if assignment.kind is AssignmentKind.NEW else None,
    )


def _bounded(text: str) -> str:
    # A structure with many merged offers could exceed the contract's bound; the event must still be
    # publishable, and the full explanation stays in orientation's assignment table.
    if len(text) <= EXPLANATION_MAX_LENGTH:
        return text
    return text[: EXPLANATION_MAX_LENGTH - 1] + "…"


def _record(structure: Structure, offers: list[Offer], default_referent: str, version: int) -> StructureRecord:
    return StructureRecord(
        structure_id=structure.id,
        nom=structure.nom,
        typologie=structure.typologie,
        status=structure.status,
        referentiel_version=version,
        default_referent=structure.id == default_referent,
        contacts=list(structure.contacts),
        offers=[_summary(offer) for offer in offers],
    )


def _summary(offer: Offer) -> OfferSummary:
    return OfferSummary(
        id=offer.id,
        nom=offer.nom,
        status=offer.status,
        stages=sorted_stages(offer.eligibility.stages or ()),
        mandatory_stages=sorted_stages(offer.mandatory_stages),
        zone=offer.zone,
        description=offer.description,
        conditions_acces=offer.conditions_acces,
    )
