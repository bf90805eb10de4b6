"""Orientation: from a procedure notice's facts to explained assignments (docs/domain.md §5).

Pure and deterministic: the same facts, référentiel, open and removed structures, capacities, cap and
date give the same ``MatchResult``, whatever the order of the offers in the référentiel.

**Caller contract.** ``decide`` is only called for notices that ``should_orient`` accepts. A late
notice (``is_late``: an earlier stage received after a later one) is stored by ingest to enrich the
history but never matched and never alerted (docs/domain.md §1.2, scenario S-04); a ``CLOTURE`` is not
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
is left alone: orientation never closes an assignment (human override, docs/domain.md §5.7). Capacity, on
the other hand, is a count of *new* assignments: a stage update consumes none, so an open structure's
offer stays available even when its weekly capacity is used up.

**CCAPEX overrides** (docs/domain.md §5.7) are never undone by a re-run. A structure the CCAPEX removed from
the procedure (``excluded_structures``) is not chosen again for it: its offers are ``rejected`` with the
override as first reason until the CCAPEX adds the structure back. A structure it added holds an open
assignment, so it is in ``open_structures`` like any other.

**Speed.** A ``Matcher`` indexes a référentiel once per version by stage, zone (commune, EPCI,
département), parc and allocataire filter. A decision evaluates only the offers those can match, a
few dozen out of thousands on a large référentiel; every other offer fails one of these clauses
whatever the rest of the household, so it is ``rejected`` unevaluated and its reasons are computed
only when read (the unmatched event, a simulation). The result equals the one evaluating every offer
would give (a property test checks it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final, TypedDict, Unpack

from schemas.orientation import AssignmentKind
from schemas.procedure import Allocataire, Parc
from schemas.stages import Stage
from services.orientation.domain.eligibility import OfferEvaluation, evaluate_offer
from services.orientation.domain.facts import MatchFacts, facts_from_notice, should_orient
from services.orientation.domain.referential import AllocataireFilter, Offer, ParcFilter, Referential, ZoneKind

__all__ = [
    "DEFAULT_CAP",
    "MATCHING_RULES_VERSION",
    "AlsoEligible",
    "Assignment",
    "DecideOptions",
    "MatchFacts",
    "MatchResult",
    "Matcher",
    "Rejected",
    "decide",
    "facts_from_notice",
    "removed_reason",
    "should_orient",
]

DEFAULT_CAP: Final = 3
"""K: structures kept beyond the mandatory ones (docs/domain.md §5.3)."""

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


Reasons = tuple[str, ...]


class Rejected:
    """An offer that failed at least one clause, with every failed clause's text.

    ``reasons`` may be given as a function, called on first access and then kept (see "Speed" above).
    Equal to another ``Rejected`` with the same offer and reasons.
    """

    __slots__ = ("_compute", "_reasons", "offer_id")

    def __init__(self, offer_id: str, reasons: Reasons | Callable[[], Reasons]) -> None:
        self.offer_id = offer_id
        self._reasons: Reasons | None = None if callable(reasons) else reasons
        self._compute: Callable[[], Reasons] | None = reasons if callable(reasons) else None

    @property
    def reasons(self) -> Reasons:
        """Texts of the failed clauses, in evaluation order."""
        if self._reasons is None:
            compute, self._compute = self._compute, None
            self._reasons = compute() if compute is not None else ()
        return self._reasons

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rejected):
            return NotImplemented
        return (self.offer_id, self.reasons) == (other.offer_id, other.reasons)

    def __hash__(self) -> int:
        return hash((self.offer_id, self.reasons))

    def __repr__(self) -> str:
        return f"Rejected({self.offer_id!r}, {self.reasons!r})"


class MatchResult:
    """Every offer of the référentiel appears exactly once: in an assignment, ``also_eligible`` or
    ``rejected``. ``assignments`` is never empty (F1 assigns the default referent).

    ``rejected`` may be given as a function, called on first access and then kept: listing thousands of
    offers the index ruled out costs more than the decision, and the decided event does not need them.
    A value: equal to another result with the same four parts; treat it as immutable.
    """

    __slots__ = ("_rejected", "_rejected_source", "also_eligible", "assignments", "fallback_used")

    def __init__(
        self,
        assignments: tuple[Assignment, ...],
        also_eligible: tuple[AlsoEligible, ...],
        rejected: tuple[Rejected, ...] | Callable[[], tuple[Rejected, ...]],
        fallback_used: bool,
    ) -> None:
        self.assignments = assignments
        self.also_eligible = also_eligible
        self.fallback_used = fallback_used
        self._rejected: tuple[Rejected, ...] | None = None if callable(rejected) else rejected
        self._rejected_source = rejected if callable(rejected) else None

    @property
    def rejected(self) -> tuple[Rejected, ...]:
        """The offers that failed, sorted by offer id."""
        if self._rejected is None:
            source, self._rejected_source = self._rejected_source, None
            self._rejected = source() if source is not None else ()
        return self._rejected

    @property
    def over_capacity(self) -> bool:
        """True when an assignment exceeds a weekly capacity (F2 or a mandatory offer): ops are told."""
        return any(assignment.over_capacity for assignment in self.assignments)

    def _parts(self) -> tuple[object, ...]:
        return (self.assignments, self.also_eligible, self.rejected, self.fallback_used)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MatchResult):
            return NotImplemented
        return self._parts() == other._parts()

    def __hash__(self) -> int:
        return hash(self._parts())

    def __repr__(self) -> str:
        return (
            f"MatchResult(assignments={self.assignments!r}, also_eligible={self.also_eligible!r},"
            f" rejected={self.rejected!r}, fallback_used={self.fallback_used!r})"
        )


@dataclass(frozen=True, slots=True)
class _Candidate:
    evaluation: OfferEvaluation
    remaining: int | None
    open: bool
    key: RankKey = field(init=False)
    available: bool = field(init=False)
    """A stage update creates no new assignment, so it consumes no capacity."""

    def __post_init__(self) -> None:
        # Computed once: ranking and picking read them for every eligible offer.
        capacity = (0, 0) if self.remaining is None else (1, -self.remaining)
        offer = self.evaluation.offer
        key = (self.evaluation.specificity_rank, -offer.priority, len(self.evaluation.unknowns), capacity, offer.id)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "available", self.open or not self.over_capacity)

    @property
    def offer(self) -> Offer:
        return self.evaluation.offer

    @property
    def structure_id(self) -> str:
        return self.evaluation.offer.structure_id

    @property
    def over_capacity(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


@dataclass(frozen=True, slots=True)
class _Pick:
    structure_id: str
    members: tuple[_Candidate, ...]
    mandatory: bool
    note: str


class DecideOptions(TypedDict, total=False):
    """What a decision knows besides the notice; every key is optional.

    ``open_structures``: structures already holding an OUVERTE/ACCEPTEE assignment on this procedure,
    those the CCAPEX added included (default: none). ``excluded_structures``: structures the CCAPEX
    removed from this procedure, never chosen (default: none). ``remaining_capacity``: offer id → new
    assignments still possible this week (``None`` = unlimited); an offer absent from the mapping has its
    full ``max_new_assignments_per_week`` left. ``k``: cap on structures kept beyond the mandatory ones
    (≥ 1, default ``DEFAULT_CAP``). ``on``: the date offers' status and validity are judged at, the
    processing date in production; defaults to the act date.
    """

    open_structures: frozenset[str]
    excluded_structures: frozenset[str]
    remaining_capacity: Mapping[str, int | None] | None
    k: int
    on: date | None


class Matcher:
    """A référentiel prepared for matching: offers sorted by id and indexed by stage, zone, parc and
    allocataire filter.

    Immutable once built; services build one per référentiel version and share it between decisions.
    """

    def __init__(self, referential: Referential) -> None:
        self.referential = referential
        self._structures = referential.structures_by_id()
        self._offers = tuple(sorted(referential.offers, key=lambda offer: offer.id))
        by_stage: dict[Stage, set[int]] = {stage: set() for stage in Stage}
        by_zone: dict[tuple[ZoneKind, str], set[int]] = {}
        by_parc: dict[Parc, set[int]] = {parc: set() for parc in Parc}
        by_allocataire: dict[Allocataire, set[int]] = {value: set() for value in Allocataire}
        for position, offer in enumerate(self._offers):
            rules = offer.eligibility
            for stage in rules.stages or Stage:  # no stage constraint: every stage
                by_stage[stage].add(position)
            for entry in offer.zone.include:
                by_zone.setdefault((entry.kind, entry.code), set()).add(position)
            # A known household value fails a filter that names another one; an unknown one never does.
            for parc in Parc:
                if rules.parc in (None, ParcFilter.ALL) or parc in (Parc.INCONNU, rules.parc):
                    by_parc[parc].add(position)
            for value in Allocataire:
                if rules.allocataire in (None, AllocataireFilter.ANY) or value in (
                    Allocataire.INCONNU,
                    rules.allocataire,
                ):
                    by_allocataire[value].add(position)
        self._by_stage = {stage: frozenset(positions) for stage, positions in by_stage.items()}
        self._by_zone = {key: frozenset(positions) for key, positions in by_zone.items()}
        self._by_parc = {parc: frozenset(positions) for parc, positions in by_parc.items()}
        self._by_allocataire = {value: frozenset(positions) for value, positions in by_allocataire.items()}
        self.capped_offers: frozenset[str] = frozenset(
            offer.id for offer in self._offers if offer.max_new_assignments_per_week is not None
        )
        """Offers with a weekly capacity: the only ones whose use a caller needs to count."""

    @property
    def offers(self) -> tuple[Offer, ...]:
        """Every offer, sorted by id."""
        return self._offers

    def evaluate_all(self, facts: MatchFacts, on: date | None = None) -> tuple[OfferEvaluation, ...]:
        """Every offer evaluated in full, sorted by id: what a simulation shows, clause by clause."""
        day = on or facts.act_date
        return tuple(self._evaluate(offer, facts, day) for offer in self._offers)

    def decide(self, facts: MatchFacts, **options: Unpack[DecideOptions]) -> MatchResult:
        """Orient one notice: which structures to assign, on which offers, and why (see ``DecideOptions``).

        Only for notices accepted by ``should_orient``.
        """
        open_structures = options.get("open_structures", frozenset())
        excluded_structures = options.get("excluded_structures", frozenset())
        remaining_capacity = options.get("remaining_capacity")
        k = options.get("k", DEFAULT_CAP)
        on = options.get("on")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        day = on or facts.act_date
        evaluations = {
            position: self._evaluate(self._offers[position], facts, day) for position in self._candidates(facts)
        }
        capacity = remaining_capacity or {}
        ranked = sorted(
            (
                _Candidate(e, _remaining(e.offer, capacity), e.offer.structure_id in open_structures)
                for e in evaluations.values()
                if e.eligible and e.offer.structure_id not in excluded_structures
            ),
            key=lambda candidate: candidate.key,
        )
        rejected = functools.partial(self._rejected, evaluations, facts, day, excluded_structures)
        if not ranked:
            fallback = _default_referent(self.referential.default_referent, open_structures, len(self._offers))
            return MatchResult((fallback,), (), rejected, fallback_used=True)
        picks = _pick(ranked, facts.stage, k) or [_over_capacity_pick(ranked[0])]
        assignments = tuple(_assignment(pick, facts.stage) for pick in picks)
        kept = {offer_id for assignment in assignments for offer_id in assignment.offer_ids}
        also_eligible = tuple(
            AlsoEligible(c.offer.id, c.structure_id, c.evaluation.unknowns, over_capacity=not c.available)
            for c in ranked
            if c.offer.id not in kept
        )
        return MatchResult(assignments, also_eligible, rejected, fallback_used=False)

    def _candidates(self, facts: MatchFacts) -> frozenset[int]:
        """Offers whose stages contain the notice's, whose zone includes its commune, EPCI or département,
        and whose parc and allocataire filters a known household value does not fail. Everything else
        (exclusions, amounts, status…) is left to the full evaluation."""
        keys = [(ZoneKind.COMMUNE, facts.commune_insee), (ZoneKind.DEPARTEMENT, facts.departement)]
        if facts.epci_siren is not None:
            keys.append((ZoneKind.EPCI, facts.epci_siren))
        in_zone: frozenset[int] = frozenset().union(*(self._by_zone.get(key, frozenset()) for key in keys))
        filters = (self._by_stage[facts.stage], self._by_parc[facts.parc], self._by_allocataire[facts.allocataire])
        return in_zone.intersection(*filters)

    def _evaluate(self, offer: Offer, facts: MatchFacts, day: date) -> OfferEvaluation:
        return evaluate_offer(offer, self._structures[offer.structure_id], facts, day)

    def _rejected(
        self,
        evaluations: Mapping[int, OfferEvaluation],
        facts: MatchFacts,
        day: date,
        excluded_structures: frozenset[str],
    ) -> tuple[Rejected, ...]:
        """Every offer not eligible for this notice: a failed clause, a CCAPEX removal, or ruled out by
        the index (then evaluated only if its reasons are read)."""
        rejected = []
        for position, offer in enumerate(self._offers):
            removed = offer.structure_id in excluded_structures
            evaluation = evaluations.get(position)
            if evaluation is None:
                rejected.append(Rejected(offer.id, functools.partial(self._reasons, offer, facts, day, removed)))
            elif removed:
                rejected.append(Rejected(offer.id, (removed_reason(offer.structure_id), *evaluation.reasons)))
            elif not evaluation.eligible:
                rejected.append(Rejected(offer.id, evaluation.reasons))
        return tuple(rejected)

    def _reasons(self, offer: Offer, facts: MatchFacts, day: date, removed: bool) -> Reasons:
        own = self._evaluate(offer, facts, day).reasons
        return (removed_reason(offer.structure_id), *own) if removed else own


def decide(facts: MatchFacts, referential: Referential, **options: Unpack[DecideOptions]) -> MatchResult:
    """``Matcher(referential).decide(...)`` for a one-off decision (services keep a ``Matcher`` per version)."""
    return Matcher(referential).decide(facts, **options)


def removed_reason(structure_id: str) -> str:
    """The first rejection reason of the offers of a structure the CCAPEX removed from the procedure."""
    return f"structure {structure_id} removed from this procedure by the CCAPEX (override)"


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
