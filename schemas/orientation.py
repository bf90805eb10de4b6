"""What orientation decided for one procedure notification (docs/domain.md §5).

``orientation.decided`` is the only input of the notifier's alerts, so it carries everything an alert
shows (short reference, stage, commune name, urgency, earliest expulsion date) and nothing an alert
must not show: no names, addresses, phone numbers. Household amounts appear only inside the
human-readable ``explanation`` of an assignment (docs/domain.md §5.6: partners and ops audit the
rules with them); rejection reasons and every structured field are amount-free.

``orientation.unmatched`` tells ops and the CCAPEX secretariat that no offer matched (fallback F1) and
why, offer by offer.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.common import Contract
from schemas.envelope import Envelope
from schemas.procedure import Urgency
from schemas.referential import RefId
from schemas.stages import Stage

__all__ = [
    "EXPLANATION_MAX_LENGTH",
    "AlsoEligibleOffer",
    "AssignmentKind",
    "ClosestOffer",
    "DecidedAssignment",
    "DecisionTrigger",
    "ExclusionReason",
    "OfferRejection",
    "OrientationDecided",
    "OrientationDecidedEvent",
    "OrientationUnmatched",
    "OrientationUnmatchedEvent",
]

EXPLANATION_MAX_LENGTH = 4000
"""Longer explanations are cut by the producer; the full text stays in orientation's own store."""

CommuneInsee = Annotated[str, Field(pattern=r"^[0-9][0-9AB][0-9]{3}$")]
RuleText = Annotated[str, Field(min_length=1, max_length=500)]
WarningCode = Annotated[str, Field(pattern=r"^[A-Z0-9_]{1,64}$")]
RefName = Annotated[str, Field(min_length=1, max_length=200)]
"""A structure's or an offer's name in the référentiel (never a person's)."""


class AssignmentKind(StrEnum):
    """``NEW``: a new assignment, alerted. ``STAGE_UPDATE``: the structure already holds an open or
    accepted assignment on the procedure; it is told the procedure moved on (lower priority, batchable)."""

    NEW = "NEW"
    STAGE_UPDATE = "STAGE_UPDATE"


class DecisionTrigger(StrEnum):
    """What a decision answers: a procedure notification matched against the référentiel, the CCAPEX
    secretariat adding a structure to the procedure by hand (an override, ``assignment.status`` ADD), or
    the end of the trêve hivernale approaching (docs/domain.md §7, scenario S-06): from 1 March, a
    procedure whose earliest expulsion date is 1 April is re-alerted to the structures that hold it, and
    the SIAO or Département structures its last decision found eligible are added to it."""

    NOTIFICATION = "NOTIFICATION"
    CCAPEX_OVERRIDE = "CCAPEX_OVERRIDE"
    WINTER_TRUCE_END = "WINTER_TRUCE_END"


class ExclusionReason(StrEnum):
    """Why an offer did not match, in terms a partner may read: the case's handling, never the household.

    ``UNAVAILABLE``: the structure or offer is inactive, suspended or outside its validity dates;
    ``REMOVED``: the CCAPEX removed the structure from the procedure; ``ZONE``, ``STAGE``, ``PARC``,
    ``BAILLEUR``: the commune, the stage, the parc, the landlord are not the offer's. ``HOUSEHOLD``: a clause
    on the household (debt, resources, composition, allocataire, surendettement…) failed — which one is not
    said, as it would tell a bracket of the household's situation.
    """

    UNAVAILABLE = "UNAVAILABLE"
    REMOVED = "REMOVED"
    ZONE = "ZONE"
    STAGE = "STAGE"
    PARC = "PARC"
    BAILLEUR = "BAILLEUR"
    HOUSEHOLD = "HOUSEHOLD"


class ClosestOffer(Contract):
    """An offer that came close to matching a notice no offer matched (fallback F1), for the CCAPEX
    secretariat's manual orientation: names from the référentiel and the kinds of clauses it failed."""

    offer_id: RefId
    offer_name: RefName
    structure_id: RefId
    structure_name: RefName
    excluded_by: list[ExclusionReason] = Field(min_length=1, max_length=len(ExclusionReason))


class DecidedAssignment(Contract):
    """One structure asked to act, with the offers it was matched on (several offers merge into one).

    ``offer_ids`` is empty only for the default referent chosen by fallback F1. ``matched_rules`` are
    ``<offer_id>.<référentiel field>`` for each passed clause (e.g. ``FSL90-MAINTIEN.debt_max``).
    """

    assignment_id: uuid.UUID
    structure_id: RefId
    offer_ids: list[RefId]
    kind: AssignmentKind
    mandatory: bool
    priority: int
    over_capacity: bool
    matched_rules: list[RuleText]
    explanation: str = Field(min_length=1, max_length=EXPLANATION_MAX_LENGTH)
    warnings: list[WarningCode] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Since schema 1.1: the codes of the act's warnings this structure is told (schemas/warnings.py"
            " PARTNER_WARNINGS: audience by structure typology or offer, and the sentence shown); absent in 1.0"
        ),
    )
    offer_names: list[RefName] = Field(
        default_factory=list,
        max_length=64,
        description="Since schema 1.2: the référentiel names of offer_ids, in their order (the alert's « why you »)",
    )
    respond_by: date | None = Field(
        default=None,
        description=(
            "Since schema 1.2, NEW assignments: the structure is asked to accept or refuse before this day, the"
            " working day orientation's escalation reminds it (ORIENTATION_ESCALATION_REMINDER_WORKING_DAYS after"
            " the day it opened, French public holidays counted); absent for a STAGE_UPDATE"
        ),
    )


class AlsoEligibleOffer(Contract):
    """An eligible offer that was not kept (cap reached, or its weekly capacity used up)."""

    offer_id: RefId
    structure_id: RefId
    unknowns: list[RuleText] = Field(description="Clauses passed only because the household value is unknown")
    over_capacity: bool = False


class OrientationDecided(Contract):
    """Payload of ``orientation.decided``. ``assignments`` is never empty: F1 assigns the default referent."""

    procedure_id: uuid.UUID
    procedure_short_ref: str = Field(min_length=1, max_length=32)
    notification_id: uuid.UUID
    stage: Stage
    urgency: Urgency
    commune_insee: CommuneInsee
    commune_name: str | None = Field(default=None, max_length=100)
    earliest_expulsion_date: date | None = None
    hearing_date: date | None = Field(
        default=None, description="Since schema 1.2: the hearing date the act states (an assignation's)"
    )
    commandement_deadline: date | None = Field(
        default=None,
        description="Since schema 1.2: the last day of the commandement de payer's period (ingest's derived date)",
    )
    is_correction: bool
    referentiel_version: int = Field(ge=1)
    rules_version: str = Field(min_length=1, max_length=32)
    assignments: list[DecidedAssignment] = Field(min_length=1)
    also_eligible: list[AlsoEligibleOffer]
    fallback_used: bool
    closest_offers: list[ClosestOffer] = Field(
        default_factory=list,
        max_length=3,
        description=(
            "Since schema 1.2, with fallback_used: the offers that came closest (fewest failed clauses) and the"
            " kinds of clauses each failed, for the CCAPEX secretariat's manual orientation"
        ),
    )
    act_received_at: AwareDatetime | None = Field(
        default=None,
        description=(
            "Since schema 1.2: when ingest received the act this decision answers (its raw input's reception"
            " time), for the end-to-end latency the notifier measures; absent for a decision no act caused"
            " (CCAPEX_OVERRIDE, WINTER_TRUCE_END) and in 1.0 and 1.1"
        ),
    )
    trigger: DecisionTrigger = Field(
        default=DecisionTrigger.NOTIFICATION,
        description=(
            "CCAPEX_OVERRIDE: the structures the CCAPEX added, each a NEW assignment without offers; the rest"
            " repeats what the procedure's alerts show (its last decision, or without one its latest notice)."
            " A NOTIFICATION decision may also list as NEW, once, a structure the CCAPEX added before"
            " orientation knew the procedure."
            " WINTER_TRUCE_END: the last decision repeated for the end of the trêve hivernale, every"
            " structure that holds the procedure as a STAGE_UPDATE and each SIAO or Département structure"
            " added as NEW; earliest_expulsion_date is the day the trêve ends"
        ),
    )


class OrientationDecidedEvent(Envelope):
    """Orientation's decision for one notification, keyed by ``procedure_id``.

    Schema 1.1 added ``DecidedAssignment.warnings`` (optional): a 1.0 event is still read, with none.
    Schema 1.2 added ``act_received_at`` and, for the alerts a partner acts on, ``hearing_date``,
    ``commandement_deadline``, ``closest_offers`` and each assignment's ``offer_names`` and ``respond_by``
    (all optional): an older event is still read, without them.
    """

    SCHEMA_VERSION: ClassVar[str] = "1.2"
    event_type: Literal["orientation.decided"] = "orientation.decided"
    schema_version: Literal["1.0", "1.1", "1.2"]
    payload: OrientationDecided


class OfferRejection(Contract):
    """Why one offer did not match: every failed clause, amount-free (e.g. ``allocataire NON ∉ {OUI}``)."""

    offer_id: RefId
    reasons: list[RuleText] = Field(min_length=1)


class OrientationUnmatched(Contract):
    """Payload of ``orientation.unmatched``: no offer matched, the default referent was assigned (F1)."""

    procedure_id: uuid.UUID
    procedure_short_ref: str = Field(min_length=1, max_length=32)
    stage: Stage
    commune_insee: CommuneInsee
    fallback_structure_id: RefId
    reasons: list[OfferRejection]


class OrientationUnmatchedEvent(Envelope):
    """Fallback F1 was used for a notification, keyed by ``procedure_id``."""

    event_type: Literal["orientation.unmatched"] = "orientation.unmatched"
    payload: OrientationUnmatched
