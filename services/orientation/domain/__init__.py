"""Orientation's pure domain: the référentiel, eligibility clauses, matching and event payloads.

No I/O here: ``referential_yaml`` takes and returns text; handlers read files, topics and tables.
"""

from services.orientation.domain.eligibility import Clause, OfferEvaluation, Outcome, evaluate_offer
from services.orientation.domain.events import decided_payload, structure_records, unmatched_payload
from services.orientation.domain.facts import MatchFacts, facts_from_notice, should_orient
from services.orientation.domain.matching import (
    DEFAULT_CAP,
    MATCHING_RULES_VERSION,
    AlsoEligible,
    Assignment,
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
    content_hash,
    dump_referential,
    load_referential,
)

__all__ = [
    "DEFAULT_CAP",
    "MATCHING_RULES_VERSION",
    "AllocataireFilter",
    "AlsoEligible",
    "Assignment",
    "Clause",
    "Eligibility",
    "MatchFacts",
    "MatchResult",
    "Offer",
    "OfferEvaluation",
    "Outcome",
    "ParcFilter",
    "Referential",
    "ReferentialError",
    "Rejected",
    "Structure",
    "Zone",
    "ZoneEntry",
    "ZoneKind",
    "content_hash",
    "decide",
    "decided_payload",
    "dump_referential",
    "evaluate_offer",
    "facts_from_notice",
    "load_referential",
    "should_orient",
    "structure_records",
    "unmatched_payload",
]
