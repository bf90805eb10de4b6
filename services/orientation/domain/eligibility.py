"""Per-offer eligibility: every clause yields PASS, FAIL(reason) or UNKNOWN (docs/domain.md §5.1).

This is Histologe's ``AndSpecification`` with a third state. A clause exists only for a constraint the
offer sets; an offer is eligible when no clause FAILs. UNKNOWN (household value missing) passes for
ceilings and categorical filters and is shown "to check"; floors fail on an unknown value.

Texts are meant for people. PASS and UNKNOWN texts go into an assignment's explanation and may quote
household amounts, as docs/domain.md §5.6 shows (``debt 2400 ≤ 6000 ✓``). FAIL texts become rejection
reasons, which travel in ``orientation.unmatched``: they quote the offer's bounds, never the household's
amounts (``debt below minimum 8000``). No text ever names a person or quotes an address.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from schemas.referential import RecordStatus
from schemas.stages import Stage
from services.orientation.domain.facts import MatchFacts
from services.orientation.domain.referential import (
    AllocataireFilter,
    Eligibility,
    Offer,
    ParcFilter,
    Structure,
    Zone,
    ZoneKind,
    as_stage_range,
    sorted_stages,
)

__all__ = ["Clause", "OfferEvaluation", "Outcome", "evaluate_offer", "stage_set_text"]

_ZONE_RANK = {kind: rank for rank, kind in enumerate(ZoneKind)}  # from the most to the least specific


class Outcome(StrEnum):
    PASS = "PASS"  # noqa: S105 -- a clause outcome, not a password
    FAIL = "FAIL"
    UNKNOWN = "UNKNOWN"


class Clause(NamedTuple):
    """One checked constraint. ``rule`` is the référentiel field (``debt_max``), ``subject`` the household
    fact it reads (``debt``), ``text`` the human statement without its mark.

    The text is ``template`` filled with ``values`` (amounts, sets, zones) when it is read: matching reads
    outcomes for every candidate offer but texts only for the few offers it explains, and formatting
    them all would cost more than the decision. A named tuple: matching builds hundreds per decision.
    """

    rule: str
    subject: str
    outcome: Outcome
    template: str
    values: tuple[object, ...] = ()

    @property
    def text(self) -> str:
        return self.template.format(*map(_shown, self.values)) if self.values else self.template

    def __str__(self) -> str:
        return f"{self.text} ✓" if self.outcome is Outcome.PASS else self.text


class OfferEvaluation(NamedTuple):
    """The clauses of one offer against one set of facts, and the zone granularity it matched at.

    ``eligible`` (no clause FAILs) and ``unknowns`` (household facts that were unknown and let a clause
    pass "to check", e.g. ``resources``) are computed once, by ``of``: ranking reads them for every
    candidate. A named tuple, like ``Clause``: matching builds one per candidate offer.
    """

    offer: Offer
    clauses: tuple[Clause, ...]
    specificity: ZoneKind | None
    eligible: bool
    unknowns: tuple[str, ...]

    @classmethod
    def of(cls, offer: Offer, clauses: tuple[Clause, ...], specificity: ZoneKind | None) -> OfferEvaluation:
        eligible = True
        unknowns = []
        for clause in clauses:
            if clause.outcome is Outcome.FAIL:
                eligible = False
            elif clause.outcome is Outcome.UNKNOWN:
                unknowns.append(clause.subject)
        return cls(offer, clauses, specificity, eligible, tuple(unknowns))

    @property
    def reasons(self) -> tuple[str, ...]:
        """Texts of the failed clauses, in evaluation order."""
        return tuple(clause.text for clause in self.clauses if clause.outcome is Outcome.FAIL)

    @property
    def matched_rules(self) -> tuple[str, ...]:
        """``<offer_id>.<rule>`` for every passed clause."""
        return tuple(f"{self.offer.id}.{c.rule}" for c in self.clauses if c.outcome is Outcome.PASS)

    @property
    def specificity_rank(self) -> int:
        """0 for a commune match, 1 for an EPCI, 2 for a département (lower is more specific)."""
        return _ZONE_RANK[self.specificity] if self.specificity else len(_ZONE_RANK)

    def explanation(self) -> str:
        """``offer ID: clause ✓; clause UNKNOWN (to check); …`` (docs/domain.md §5.6)."""
        shown = "; ".join(str(c) for c in self.clauses if c.outcome is not Outcome.FAIL)
        return f"offer {self.offer.id}: {shown}"


def evaluate_offer(offer: Offer, structure: Structure, facts: MatchFacts, on: date) -> OfferEvaluation:
    """Evaluate every clause of ``offer`` (of ``structure``) against ``facts`` on date ``on``.

    Availability (structure and offer active, not suspended on ``on``, eligibility valid on ``on``) only
    produces clauses when it fails. All failures are collected, not only the first: the CCAPEX audits
    the full list of reasons.
    """
    zone_clause, specificity = _zone(offer.zone, facts)
    clauses = (*_availability(offer, structure, on), zone_clause, *_criteria(offer.eligibility, facts))
    return OfferEvaluation.of(offer, clauses, specificity)


@functools.lru_cache(maxsize=1024)
def stage_set_text(stages: frozenset[Stage]) -> str:
    """``{SIGNALEMENT_CAF…DECISION}`` for a full range of 3 stages or more, else the list in rank order.

    Cached: every evaluated offer quotes its stage set, and a référentiel has few distinct ones.
    """
    bounds = as_stage_range(stages)
    if bounds is not None:
        return f"{{{bounds[0]}…{bounds[1]}}}"
    return _set_text(sorted_stages(stages))


def _availability(offer: Offer, structure: Structure, on: date) -> list[Clause]:
    validity = offer.eligibility
    dated = offer.suspension_date or validity.valid_from or validity.valid_to
    if structure.status is RecordStatus.ACTIVE and offer.status is RecordStatus.ACTIVE and dated is None:
        return []  # the usual case, checked first: every candidate offer goes through here
    problems: list[tuple[str, tuple[object, ...]]] = []
    if structure.status is not RecordStatus.ACTIVE:
        problems.append(("structure {} {}", (structure.id, structure.status)))
    if offer.status is not RecordStatus.ACTIVE:
        problems.append(("offer {}", (offer.status,)))
    if offer.suspension_date is not None and on >= offer.suspension_date:
        problems.append(("offer suspended since {}", (offer.suspension_date,)))
    if validity.valid_from is not None and on < validity.valid_from:
        problems.append(("eligibility valid from {}", (validity.valid_from,)))
    if validity.valid_to is not None and on > validity.valid_to:
        problems.append(("eligibility expired on {}", (validity.valid_to,)))
    return [Clause("status", "offer", Outcome.FAIL, template, values) for template, values in problems]


def _zone(zone: Zone, facts: MatchFacts) -> tuple[Clause, ZoneKind | None]:
    """The zone clause and, when it passes, the most specific entry's kind (ranking criterion (a))."""
    commune = facts.commune_insee
    if commune in zone.exclude_communes:
        return _fail("zone", "zone", "zone: commune {} excluded", commune), None
    # The référentiel's one rule (schemas.referential), which the workspace's search by commune shows too.
    best = zone.covering_entry(commune, facts.departement, facts.epci_siren)
    if best is None:
        return _fail("zone", "zone", "zone {} ∉ {}", commune, zone.include), None
    return Clause("zone", "zone", Outcome.PASS, "zone {}", (best,)), best.kind


def _criteria(rules: Eligibility, facts: MatchFacts) -> list[Clause]:
    """A clause per constraint the offer sets. Order = order of the explanation: where and when first,
    then who, then amounts. (Absent constraints are skipped here, not in each clause: this runs for
    every candidate offer of every decision.)"""
    found = []
    if rules.stages is not None:
        found.append(_stages(rules.stages, facts.stage))
    if rules.parc is not None:
        found.append(_filter("parc", facts.parc, rules.parc, ParcFilter.ALL))
    if rules.landlord_types is not None:
        found.append(_categorical("landlord_types", "landlord_type", facts.landlord_type, rules.landlord_types))
    if rules.landlord_siren_in is not None:
        found.append(_landlord_siren(rules.landlord_siren_in, facts.landlord_siren))
    if rules.debt_min is not None:
        found.append(_floor("debt_min", "debt", facts.debt, rules.debt_min))
    if rules.debt_max is not None:
        found.append(_ceiling("debt_max", "debt", facts.debt, rules.debt_max))
    if rules.months_of_rent_min is not None:
        found.append(_floor("months_of_rent_min", "months_of_rent", facts.months_of_rent, rules.months_of_rent_min))
    if rules.resources_max is not None:
        found.append(_ceiling("resources_max", "resources", facts.resources, rules.resources_max))
    if rules.allocataire is not None:
        found.append(_filter("allocataire", facts.allocataire, rules.allocataire, AllocataireFilter.ANY))
    if rules.compositions is not None:
        found.append(_categorical("compositions", "composition", facts.composition, rules.compositions))
    if rules.children_min is not None:
        found.append(_floor("children_min", "children", facts.children_count, rules.children_min))
    if rules.requires_surendettement:
        found.append(_surendettement(facts.surendettement))
    return found


def _stages(stages: frozenset[Stage], stage: Stage) -> Clause:
    if stage in stages:
        return Clause("stages", "stage", Outcome.PASS, "stage {} ∈ {}", (stage, stages))
    return _fail("stages", "stage", "stage {} ∉ {}", stage, stages)


def _filter(rule: str, value: StrEnum, allowed: StrEnum, everyone: StrEnum) -> Clause:
    """``parc`` / ``allocataire``: one allowed value, or ``everyone`` (ALL, ANY) that any value passes."""
    if allowed is everyone:
        return Clause(rule, rule, Outcome.PASS, rule + " {} ∈ {{" + everyone + "}}", (value,))
    return _categorical(rule, rule, value, frozenset({allowed}))


def _landlord_siren(allowed: frozenset[str], siren: str | None) -> Clause:
    # The landlord's SIREN is not quoted: for a natural person it would be personal data.
    if siren is None:
        return _unknown("landlord_siren_in", "landlord_siren")
    if siren in allowed:
        return Clause("landlord_siren_in", "landlord_siren", Outcome.PASS, "landlord_siren ∈ {}", (allowed,))
    return _fail("landlord_siren_in", "landlord_siren", "landlord_siren ∉ {}", allowed)


def _surendettement(value: bool | None) -> Clause:
    # A requirement, like a floor: an unknown situation does not meet it.
    if value:
        return Clause("requires_surendettement", "surendettement", Outcome.PASS, "surendettement OUI")
    state = "UNKNOWN" if value is None else "NON"
    return _fail("requires_surendettement", "surendettement", "surendettement {} (required)", state)


def _categorical(rule: str, subject: str, value: StrEnum, allowed: frozenset[StrEnum]) -> Clause:
    # Every household enum spells "unknown" INCONNU; filters and household values compare as strings.
    if value == "INCONNU":
        return _unknown(rule, subject)
    if value in allowed:
        return Clause(rule, subject, Outcome.PASS, subject + " {} ∈ {}", (value, allowed))
    return _fail(rule, subject, subject + " {} ∉ {}", value, allowed)


def _ceiling(rule: str, subject: str, value: Decimal | None, limit: Decimal) -> Clause:
    if value is None:
        return _unknown(rule, subject)
    if value <= limit:
        return Clause(rule, subject, Outcome.PASS, subject + " {} ≤ {}", (value, limit))
    return _fail(rule, subject, subject + " above ceiling {}", limit)


def _floor(rule: str, subject: str, value: Decimal | int | None, limit: Decimal | int) -> Clause:
    if value is None:
        return _fail(rule, subject, subject + " UNKNOWN (required ≥ {})", limit)
    if value >= limit:
        return Clause(rule, subject, Outcome.PASS, subject + " {} ≥ {}", (value, limit))
    return _fail(rule, subject, subject + " below minimum {}", limit)


def _unknown(rule: str, subject: str) -> Clause:
    return Clause(rule, subject, Outcome.UNKNOWN, subject + " UNKNOWN (to check)")


def _fail(rule: str, subject: str, template: str, *values: object) -> Clause:
    return Clause(rule, subject, Outcome.FAIL, template, values)


def _shown(value: object) -> str:
    """A clause value as a person reads it: amounts without trailing zeros, sets sorted, stage ranges."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return _number(value)
    if isinstance(value, frozenset):
        if all(isinstance(item, Stage) for item in value):
            return stage_set_text(value)
        return _set_text(sorted(str(item) for item in value))
    if isinstance(value, tuple):  # zone entries, in the référentiel's order
        return _set_text(str(item) for item in value)
    return str(value)


def _set_text(items: Iterable[str]) -> str:
    return "{" + ", ".join(items) + "}"


def _number(value: Decimal | int) -> str:
    """``2400`` for 2400.00, ``3.69`` for 3.6923…: amounts and ratios as a person writes them."""
    if isinstance(value, int):
        return str(value)
    return format(value.quantize(Decimal("0.01")).normalize(), "f")
