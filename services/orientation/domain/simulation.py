"""Simulation: a decision and, for every offer of the référentiel, why it was kept or not (pure).

What the CCAPEX secretariat reads before changing a rule or when a partner asks "why not us?"
(Histologe's ``AutoAssignerSimulatorController``): the same ``Matcher.decide`` as the service, plus
every offer's full clause list. Nothing is written anywhere; the caller supplies the procedure's open
and removed structures and the capacities it read, or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Unpack

from services.orientation.domain.eligibility import Clause
from services.orientation.domain.facts import MatchFacts
from services.orientation.domain.matching import (
    DEFAULT_CAP,
    MATCHING_RULES_VERSION,
    DecideOptions,
    Matcher,
    MatchResult,
)

__all__ = ["OfferOutcome", "OfferReport", "Simulation", "simulate"]


class OfferOutcome(StrEnum):
    KEPT = "KEPT"
    ALSO_ELIGIBLE = "ALSO_ELIGIBLE"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class OfferReport:
    """One offer's fate. ``clauses``: every clause evaluated (passed, unknown, failed); ``reasons``: why it
    failed (a CCAPEX removal first); ``unknowns``: household facts to check, for eligible offers."""

    offer_id: str
    structure_id: str
    outcome: OfferOutcome
    clauses: tuple[Clause, ...]
    reasons: tuple[str, ...]
    unknowns: tuple[str, ...]
    over_capacity: bool

    def line(self) -> str:
        """``KEPT  CCAS-BELFORT (CCAS-BELFORT): zone COMMUNE 90010 ✓; …`` (failed: the reasons only)."""
        shown = self.reasons if self.outcome is OfferOutcome.FAILED else [str(c) for c in self.clauses]
        capacity = " [over capacity]" if self.over_capacity else ""
        label = self.outcome.value.replace("_", " ")
        return f"{label:<13} {self.offer_id} ({self.structure_id}){capacity}: {'; '.join(shown)}"


@dataclass(frozen=True, slots=True)
class Simulation:
    """A decision and every offer's report, sorted by offer id."""

    facts: MatchFacts
    result: MatchResult
    offers: tuple[OfferReport, ...]
    k: int
    on: date

    def text(self, *, referentiel_version: int | None = None) -> str:
        """The whole simulation for a person: the decision with its explanations, then offer by offer."""
        version = f"référentiel v{referentiel_version}, " if referentiel_version is not None else ""
        counts = {outcome: sum(o.outcome is outcome for o in self.offers) for outcome in OfferOutcome}
        lines = [
            f"Orientation of {self.facts.stage} in commune {self.facts.commune_insee}"
            f" ({version}rules {MATCHING_RULES_VERSION}, cap {self.k}, on {self.on.isoformat()})",
            f"Decision: {len(self.result.assignments)} assignment(s)"
            + (", fallback F1: no eligible offer" if self.result.fallback_used else ""),
        ]
        for assignment in self.result.assignments:
            offers = ", ".join(assignment.offer_ids) or "no offer"
            flags = [assignment.kind.value]
            flags += ["mandatory"] * assignment.mandatory + ["over capacity"] * assignment.over_capacity
            lines.append(f"  {assignment.structure_id} [{', '.join(flags)}]: {offers}")
            lines += [f"    {line}" for line in assignment.explanation.splitlines()]
        lines.append(
            f"Offers ({len(self.offers)}): {counts[OfferOutcome.KEPT]} kept,"
            f" {counts[OfferOutcome.ALSO_ELIGIBLE]} also eligible, {counts[OfferOutcome.FAILED]} failed"
        )
        lines += [f"  {report.line()}" for report in self.offers]
        return "\n".join(lines)


def simulate(matcher: Matcher, facts: MatchFacts, **options: Unpack[DecideOptions]) -> Simulation:
    """Decide as the service would (same options as ``Matcher.decide``) and explain every offer."""
    day = options.get("on") or facts.act_date
    k = options.get("k", DEFAULT_CAP)
    result = matcher.decide(facts, **(options | {"on": day}))
    kept = {offer_id for assignment in result.assignments for offer_id in assignment.offer_ids}
    also = {o.offer_id: o for o in result.also_eligible}
    over = {o for a in result.assignments if a.over_capacity for o in a.offer_ids}
    failed = {r.offer_id: r.reasons for r in result.rejected}
    reports = []
    for evaluation in matcher.evaluate_all(facts, day):
        offer_id = evaluation.offer.id
        if offer_id in kept:
            outcome = OfferOutcome.KEPT
        elif offer_id in also:
            outcome = OfferOutcome.ALSO_ELIGIBLE
        else:
            outcome = OfferOutcome.FAILED
        reports.append(
            OfferReport(
                offer_id=offer_id,
                structure_id=evaluation.offer.structure_id,
                outcome=outcome,
                clauses=evaluation.clauses,
                reasons=failed.get(offer_id, ()),
                unknowns=evaluation.unknowns if outcome is not OfferOutcome.FAILED else (),
                over_capacity=(offer_id in over) or (offer_id in also and also[offer_id].over_capacity),
            )
        )
    return Simulation(facts, result, tuple(reports), k, day)
