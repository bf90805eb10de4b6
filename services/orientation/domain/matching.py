"""Orientation: from a procedure notice's facts to explained assignments (domain.md §6b.2).

Pure and deterministic: the same facts, référentiel, open structures, capacities, cap and date give the
same ``MatchResult``, whatever the order of the offers in the référentiel.

**Caller contract.** ``decide`` is only called for notices that ``should_orient`` accepts. A late
notice (``is_late``: an earlier stage received after a later one) is stored by ingest to enrich the
history but never matched and never alerted (domain.md §6a.1, scenario S-04); a ``CLOTURE`` is not
matched either.

**The steps**, each visible in the result:

1. every offer is evaluated (``eligibility.evaluate_offer``); failed offers are ``rejected`` with reasons;
2. offers whose ``mandatory_stages`` contain the stage are assigned first and do not count towards the
   cap; their structure absorbs its other eligible offers;
3. the other eligible offers are ranked by (a) zone specificity, (b) priority, (c) fewer UNKNOWN
   clauses, (d) remaining capacity, (e) offer id; the first ``k`` *structures* are kept, each with all
   its eligible offers merged into one assignment; the eligible offers not kept are ``also_eligible``;
4. a structure that already holds an open (OUVERTE/ACCEPTEE) assignment gets a ``STAGE_UPDATE``
   instead of a new assignment;
5. fallbacks: F1, no eligible offer → the default referent (``fallback_used``); F2, every eligible
   offer is over capacity → the best one anyway (``over_capacity``).

**Why an open structure takes a cap slot.** The open set only changes an assignment's *kind*, never
*which* structures are chosen: the chosen set is a function of the facts alone, so a CCAPEX can audit
"why this structure" without replaying the file's history, and a correction re-run picks the same
structures (no new alert, scenario S-03). Counting re-selected structures also keeps the number of
partners asked to act on a household at one stage within ``k`` (+ mandatory), instead of piling up
``k`` new structures at every stage. A structure that holds an open assignment but is not chosen again
is left alone: orientation never closes an assignment (human override, §6b.2 point 8). Capacity, on
the other hand, is a count of *new* assignments: a stage update consumes none, so an open structure's
offer stays available even when its weekly capacity is used up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

from schemas.orientation import AssignmentKind
from schemas.stages import Stage
from services.orientation.domain.eligibility import OfferEvaluation, evaluate_offer
from services.orientation.domain.facts import MatchFacts, facts_from_notice, should_orient
from services.orientation.domain.referential import Offer, Referential

__all__ = [
    "DEFAULT_CAP",
    "MATCHING_RULES_VERSION",
    "AlsoEligible",
    "Assignment",
    "MatchFacts",
    "MatchResult",
    "Rejected",
    "decide",
    "facts_from_notice",
    "should_orient",
]

DEFAULT_CAP: Final = 3
"""K: structures kept beyond the mandatory ones (domain.md §6b.2 proposal)."""

MATCHING_RULES_VERSION: Final = "orientation-1"
"""Version of these matching rules, recorded with every decision next to the référentiel version."""

_STAGE_UPDATE_NOTE = "stage update: the structure already holds an open assignment on this procedure"

RankKey = tuple[int, int, int, tuple[int, int], str]


@dataclass(frozen=True, slots=True)
class Assignment:
    """One structure asked to act, on one or more of its offers.

    ``priority`` is the highest priority among its offers; ``matched_rules`` are
    ``<offer_id>.<rule>`` for every passed clause; ``offer_ids`` is empty only for fallback F1.
    """

    structure_id: str
    offer_ids: tuple[str, ...]
    mandatory: bool
    priority: int
    kind: AssignmentKind
    over_capacity: bool
    matched_rules: tuple[str, ...]
    explanation: str


@dataclass(frozen=True, slots=True)
class AlsoEligible:
    """An eligible offer not kept; ``unknowns`` are the household facts to check (e.g. ``resources``)."""

    offer_id: str
    structure_id: str
    unknowns: tuple[str, ...]
    over_capacity: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """An offer that failed at least one clause, with every failed clause's text."""

    offer_id: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Every offer of the référentiel appears exactly once: in an assignment, ``also_eligible`` or
    ``rejected``. ``assignments`` is never empty (F1 assigns the default referent)."""

    assignments: tuple[Assignment, ...]
    also_eligible: tuple[AlsoEligible, ...]
    rejected: tuple[Rejected, ...]
    fallback_used: bool

    @property
    def over_capacity(self) -> bool:
        """True when an assignment exceeds a weekly capacity (F2 or a mandatory offer): ops are told."""
        return any(assignment.over_capacity for assignment in self.assignments)


@dataclass(frozen=True, slots=True)
class _Candidate:
    evaluation: OfferEvaluation
    remaining: int | None
    open: bool

    @property
    def offer(self) -> Offer:
        return self.evaluation.offer

    @property
    def structure_id(self) -> str:
        return self.evaluation.offer.structure_id

    @property
    def over_capacity(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    @property
    def available(self) -> bool:
        # A stage update creates no new assignment, so it consumes no capacity.
        return self.open or not self.over_capacity

    @property
    def key(self) -> RankKey:
        capacity = (0, 0) if self.remaining is None else (1, -self.remaining)
        return (
            self.evaluation.specificity_rank,
            -self.offer.priority,
            len(self.evaluation.unknowns),
            capacity,
            self.offer.id,
        )


@dataclass(frozen=True, slots=True)
class _Pick:
    structure_id: str
    members: tuple[_Candidate, ...]
    mandatory: bool
    note: str


def decide(
    facts: MatchFacts,
    referential: Referential,
    *,
    open_structures: frozenset[str] = frozenset(),
    remaining_capacity: Mapping[str, int | None] | None = None,
    k: int = DEFAULT_CAP,
    on: date | None = None,
) -> MatchResult:
    """Orient one notice: which structures to assign, on which offers, and why.

    ``open_structures``: structures already holding an OUVERTE/ACCEPTEE assignment on this procedure.
    ``remaining_capacity``: offer id → new assignments still possible this week (``None`` = unlimited);
    an offer absent from the mapping has its full ``max_new_assignments_per_week`` left.
    ``k``: cap on structures kept beyond the mandatory ones (≥ 1). ``on``: the date offers' status and
    validity are judged at, the processing date in production; defaults to the act date.
    Only for notices accepted by ``should_orient`` (late notices are never matched).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    day = on or facts.act_date
    structures = referential.structures_by_id()
    evaluations = [
        evaluate_offer(offer, structures[offer.structure_id], facts, day)
        for offer in sorted(referential.offers, key=lambda offer: offer.id)
    ]
    rejected = tuple(Rejected(e.offer.id, e.reasons) for e in evaluations if not e.eligible)
    capacity = remaining_capacity or {}
    candidates = sorted(
        (
            _Candidate(e, _remaining(e.offer, capacity), e.offer.structure_id in open_structures)
            for e in evaluations
            if e.eligible
        ),
        key=lambda candidate: candidate.key,
    )
    if not candidates:
        fallback = _default_referent(referential.default_referent, open_structures, len(evaluations))
        return MatchResult((fallback,), (), rejected, fallback_used=True)
    picks = _pick(candidates, facts.stage, k) or [_over_capacity_pick(candidates[0])]
    assignments = tuple(_assignment(pick, facts.stage) for pick in picks)
    kept = {offer_id for assignment in assignments for offer_id in assignment.offer_ids}
    also_eligible = tuple(
        AlsoEligible(c.offer.id, c.structure_id, c.evaluation.unknowns, over_capacity=not c.available)
        for c in candidates
        if c.offer.id not in kept
    )
    return MatchResult(assignments, also_eligible, rejected, fallback_used=False)


def _remaining(offer: Offer, capacity: Mapping[str, int | None]) -> int | None:
    # An explicit None in the mapping means unlimited; an absent offer has used none of its capacity.
    return capacity.get(offer.id, offer.max_new_assignments_per_week)


def _pick(candidates: list[_Candidate], stage: Stage, k: int) -> list[_Pick]:
    """Mandatory structures first, then the ``k`` best-ranked available structures; empty means F2."""
    mandatory_ids = _unique(c.structure_id for c in candidates if stage in c.offer.mandatory_stages)
    picks = [_mandatory_pick(structure_id, candidates, stage) for structure_id in mandatory_ids]
    pool = [c for c in candidates if c.available and c.structure_id not in mandatory_ids]
    ranked = _unique(c.structure_id for c in pool)
    for place, structure_id in enumerate(ranked[:k], start=1):
        members = tuple(c for c in pool if c.structure_id == structure_id)
        picks.append(_Pick(structure_id, members, False, _rank_note(members[0], place, len(ranked), k)))
    return picks


def _mandatory_pick(structure_id: str, candidates: list[_Candidate], stage: Stage) -> _Pick:
    # Mandatory offers are assigned even over capacity (the law or the charte requires them); the
    # structure absorbs its other eligible offers that still have capacity.
    own = [c for c in candidates if c.structure_id == structure_id]
    mandatory = [c for c in own if stage in c.offer.mandatory_stages]
    absorbed = [c for c in own if stage not in c.offer.mandatory_stages and c.available]
    note = f"mandatory at {stage}: outside the cap"
    return _Pick(structure_id, (*mandatory, *absorbed), True, note)


def _over_capacity_pick(best: _Candidate) -> _Pick:
    note = "over capacity: every eligible offer has used up its weekly capacity; best one assigned anyway (F2)"
    return _Pick(best.structure_id, (best,), False, note)


def _rank_note(best: _Candidate, place: int, total: int, k: int) -> str:
    zone = best.evaluation.specificity
    unknowns = len(best.evaluation.unknowns)
    return (
        f"ranked {place}/{total} candidate structures, cap {k}: "
        f"zone {zone}, priority {best.offer.priority}, {unknowns} UNKNOWN"
    )


def _assignment(pick: _Pick, stage: Stage) -> Assignment:
    members = pick.members
    is_open = members[0].open
    over_capacity = any(not c.available for c in members)
    notes = [pick.note]
    if pick.mandatory and over_capacity:
        notes.append("over capacity: weekly capacity used up, assigned anyway as mandatory")
    if is_open:
        notes.append(_STAGE_UPDATE_NOTE)
    rules = [rule for c in members for rule in c.evaluation.matched_rules]
    rules += [f"{c.offer.id}.mandatory_stages" for c in members if stage in c.offer.mandatory_stages]
    return Assignment(
        structure_id=pick.structure_id,
        offer_ids=tuple(c.offer.id for c in members),
        mandatory=pick.mandatory,
        priority=max(c.offer.priority for c in members),
        kind=_kind(is_open),
        over_capacity=over_capacity,
        matched_rules=tuple(rules),
        explanation="\n".join([*(c.evaluation.explanation() for c in members), *notes]),
    )


def _default_referent(structure_id: str, open_structures: frozenset[str], offer_count: int) -> Assignment:
    is_open = structure_id in open_structures
    notes = [f"no eligible offer among {offer_count}: default referent, manual orientation required (F1)"]
    if is_open:
        notes.append(_STAGE_UPDATE_NOTE)
    return Assignment(
        structure_id=structure_id,
        offer_ids=(),
        mandatory=False,
        priority=0,
        kind=_kind(is_open),
        over_capacity=False,
        matched_rules=(),
        explanation="\n".join(notes),
    )


def _kind(is_open: bool) -> AssignmentKind:
    return AssignmentKind.STAGE_UPDATE if is_open else AssignmentKind.NEW


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
