"""Orientation's pure domain: the référentiel, eligibility clauses, matching and event payloads.

No I/O here: ``referential_yaml`` takes and returns text; handlers read files, topics and tables.
"""

from services.orientation.domain.diff import ChangeKind, EntityChange, EntityKind, ReferentialDiff, diff_referentials
from services.orientation.domain.eligibility import Clause, OfferEvaluation, Outcome, evaluate_offer
from services.orientation.domain.events import (
    decided_payload,
    override_payload,
    removed_structure_record,
    structure_records,
    unmatched_payload,
)
from services.orientation.domain.facts import MatchFacts, facts_from_notice, should_orient
from services.orientation.domain.lifecycle import OPEN_STATUSES, Refusal, StatusCheck, Verdict, check_change
from services.orientation.domain.matching import (
    DEFAULT_CAP,
    MATCHING_RULES_VERSION,
    AlsoEligible,
    Assignment,
    Matcher,
    MatchResult,
    Rejected,
    decide,
)
from services.orientation.domain.referential import (
    AllocataireFilter,
    Eligibility,
    Offer,
    ParcFilter,
    Referential,
    Structure,
    Zone,
    ZoneEntry,
    ZoneKind,
)
from services.orientation.domain.referential_yaml import (
    ReferentialError,
    assemble_referential,
    content_hash,
    dump_referential,
    load_referential,
)
from services.orientation.domain.simulation import OfferOutcome, OfferReport, Simulation, simulate

__all__ = [
    "DEFAULT_CAP",
    "MATCHING_RULES_VERSION",
    "OPEN_STATUSES",
    "AllocataireFilter",
    "AlsoEligible",
    "Assignment",
    "ChangeKind",
    "Clause",
    "Eligibility",
    "EntityChange",
    "EntityKind",
    "MatchFacts",
    "MatchResult",
    "Matcher",
    "Offer",
    "OfferEvaluation",
    "OfferOutcome",
    "OfferReport",
    "Outcome",
    "ParcFilter",
    "Referential",
    "ReferentialDiff",
    "ReferentialError",
    "Refusal",
    "Rejected",
    "Simulation",
    "StatusCheck",
    "Structure",
    "Verdict",
    "Zone",
    "ZoneEntry",
    "ZoneKind",
    "assemble_referential",
    "check_change",
    "content_hash",
    "decide",
    "decided_payload",
    "diff_referentials",
    "dump_referential",
    "evaluate_offer",
    "facts_from_notice",
    "load_referential",
    "override_payload",
    "removed_structure_record",
    "should_orient",
    "simulate",
    "structure_records",
    "unmatched_payload",
]
