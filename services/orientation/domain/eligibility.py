"""Per-offer eligibility: every clause yields PASS, FAIL(reason) or UNKNOWN (domain.md §6b.2 point 1).

This is Histologe's ``AndSpecification`` with a third state. A clause exists only for a constraint the
offer sets; an offer is eligible when no clause FAILs. UNKNOWN (household value missing) passes for
ceilings and categorical filters and is shown "to check"; floors fail on an unknown value.

Texts are meant for people. PASS and UNKNOWN texts go into an assignment's explanation and may quote
household amounts, as domain.md's example does (``debt 2400 ≤ 6000 ✓``). FAIL texts become rejection
reasons, which travel in ``orientation.unmatched``: they quote the offer's bounds, never the household's
amounts (``debt below minimum 8000``). No text ever names a person or quotes an address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from schemas.procedure import Allocataire, Composition, LandlordType, Parc
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
    ZoneEntry,
    ZoneKind,
    as_stage_range,
    sorted_stages,
)

__all__ = ["Clause", "OfferEvaluation", "Outcome", "evaluate_offer", "stage_set_text"]

_ZONE_ORDER = list(ZoneKind)


class Outcome(StrEnum):
    PASS = "PASS"  # noqa: S105 -- a clause outcome, not a password
    FAIL = "FAIL"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Clause:
    """One checked constraint. ``rule`` is the référentiel field (``debt_max``), ``subject`` the household
    fact it reads (``debt``), ``text`` the human statement without its mark."""

    rule: str
    subject: str
    outcome: Outcome
    text: str

    def __str__(self) -> str:
        return f"{self.text} ✓" if self.outcome is Outcome.PASS else self.text


@dataclass(frozen=True, slots=True)
class OfferEvaluation:
    """The clauses of one offer against one set of facts, and the zone granularity it matched at."""

    offer: Offer
    clauses: tuple[Clause, ...]
    specificity: ZoneKind | None

    @property
    def eligible(self) -> bool:
        return all(clause.outcome is not Outcome.FAIL for clause in self.clauses)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Texts of the failed clauses, in evaluation order."""
        return tuple(clause.text for clause in self.clauses if clause.outcome is Outcome.FAIL)

    @property
    def unknowns(self) -> tuple[str, ...]:
        """Household facts that were unknown and let a clause pass "to check" (e.g. ``resources``)."""
        return tuple(clause.subject for clause in self.clauses if clause.outcome is Outcome.UNKNOWN)

    @property
    def matched_rules(self) -> tuple[str, ...]:
        """``<offer_id>.<rule>`` for every passed clause."""
        return tuple(f"{self.offer.id}.{c.rule}" for c in self.clauses if c.outcome is Outcome.PASS)

    @property
    def specificity_rank(self) -> int:
        """0 for a commune match, 1 for an EPCI, 2 for a département (lower is more specific)."""
        return _ZONE_ORDER.index(self.specificity) if self.specificity else len(_ZONE_ORDER)

    def explanation(self) -> str:
        """``offer ID: clause ✓; clause UNKNOWN (to check); …`` (domain.md §6b.2 point 6)."""
        shown = "; ".join(str(c) for c in self.clauses if c.outcome is not Outcome.FAIL)
        return f"offer {self.offer.id}: {shown}"


def evaluate_offer(offer: Offer, structure: Structure, facts: MatchFacts, on: date) -> OfferEvaluation:
    """Evaluate every clause of ``offer`` (of ``structure``) against ``facts`` on date ``on``.

    Availability (structure and offer active, not suspended on ``on``, eligibility valid on ``on``) only
    produces clauses when it fails. All failures are collected, not only the first: the CCAPEX audits
    the full list of reasons.
    """
    zone_clause, specificity = _zone(offer.zone, facts)
    criteria = (clause for clause in _criteria(offer.eligibility, facts) if clause is not None)
    clauses = (*_availability(offer, structure, on), zone_clause, *criteria)
    return OfferEvaluation(offer, clauses, specificity)


def stage_set_text(stages: frozenset[Stage]) -> str:
    """``{SIGNALEMENT_CAF…DECISION}`` for a full range of 3 stages or more, else the list in rank order."""
    bounds = as_stage_range(stages)
    if bounds is not None:
        return f"{{{bounds[0]}…{bounds[1]}}}"
    return _set_text(sorted_stages(stages))


def _availability(offer: Offer, structure: Structure, on: date) -> list[Clause]:
    problems = []
    if structure.status is not RecordStatus.ACTIVE:
        problems.append(f"structure {structure.id} {structure.status}")
    if offer.status is not RecordStatus.ACTIVE:
        problems.append(f"offer {offer.status}")
    if offer.suspension_date is not None and on >= offer.suspension_date:
        problems.append(f"offer suspended since {offer.suspension_date}")
    validity = offer.eligibility
    if validity.valid_from is not None and on < validity.valid_from:
        problems.append(f"eligibility valid from {validity.valid_from}")
    if validity.valid_to is not None and on > validity.valid_to:
        problems.append(f"eligibility expired on {validity.valid_to}")
    return [Clause("status", "offer", Outcome.FAIL, text) for text in problems]


def _zone(zone: Zone, facts: MatchFacts) -> tuple[Clause, ZoneKind | None]:
    """The zone clause and, when it passes, the most specific entry's kind (ranking criterion (a))."""
    commune = facts.commune_insee
    if commune in zone.exclude_communes:
        return _fail("zone", "zone", f"zone: commune {commune} excluded"), None
    covering = [entry for entry in zone.include if _covers(entry, facts)]
    if not covering:
        return _fail("zone", "zone", f"zone {commune} ∉ {_set_text(str(e) for e in zone.include)}"), None
    best = min(covering, key=lambda entry: _ZONE_ORDER.index(entry.kind))
    return Clause("zone", "zone", Outcome.PASS, f"zone {best}"), best.kind


def _covers(entry: ZoneEntry, facts: MatchFacts) -> bool:
    household_code = {
        ZoneKind.COMMUNE: facts.commune_insee,
        ZoneKind.EPCI: facts.epci_siren,
        ZoneKind.DEPARTEMENT: facts.departement,
    }[entry.kind]
    return entry.code == household_code


def _criteria(rules: Eligibility, facts: MatchFacts) -> tuple[Clause | None, ...]:
    # Order = order of the explanation: where and when first, then who, then amounts.
    return (
        _stages(rules, facts),
        _parc(rules.parc, facts.parc),
        _categorical("landlord_types", "landlord_type", _known(facts.landlord_type), rules.landlord_types),
        _landlord_siren(rules.landlord_siren_in, facts.landlord_siren),
        _floor("debt_min", "debt", facts.debt, rules.debt_min),
        _ceiling("debt_max", "debt", facts.debt, rules.debt_max),
        _floor("months_of_rent_min", "months_of_rent", facts.months_of_rent, rules.months_of_rent_min),
        _ceiling("resources_max", "resources", facts.resources, rules.resources_max),
        _allocataire(rules.allocataire, facts.allocataire),
        _categorical("compositions", "composition", _known(facts.composition), rules.compositions),
        _floor("children_min", "children", facts.children_count, rules.children_min),
        _surendettement(rules.requires_surendettement, facts.surendettement),
    )


def _stages(rules: Eligibility, facts: MatchFacts) -> Clause | None:
    if rules.stages is None:
        return None
    shown = stage_set_text(rules.stages)
    if facts.stage in rules.stages:
        return Clause("stages", "stage", Outcome.PASS, f"stage {facts.stage} ∈ {shown}")
    return _fail("stages", "stage", f"stage {facts.stage} ∉ {shown}")


def _parc(rule: ParcFilter | None, parc: Parc) -> Clause | None:
    if rule is ParcFilter.ALL:
        return Clause("parc", "parc", Outcome.PASS, f"parc {parc} ∈ {{ALL}}")
    allowed = None if rule is None else frozenset({rule.value})
    return _categorical("parc", "parc", _known(parc), allowed)


def _allocataire(rule: AllocataireFilter | None, value: Allocataire) -> Clause | None:
    if rule is AllocataireFilter.ANY:
        return Clause("allocataire", "allocataire", Outcome.PASS, f"allocataire {value} ∈ {{ANY}}")
    allowed = None if rule is None else frozenset({rule.value})
    return _categorical("allocataire", "allocataire", _known(value), allowed)


def _landlord_siren(allowed: frozenset[str] | None, siren: str | None) -> Clause | None:
    # The landlord's SIREN is not quoted: for a natural person it would be personal data.
    if allowed is None:
        return None
    shown = _set_text(sorted(allowed))
    if siren is None:
        return _unknown("landlord_siren_in", "landlord_siren")
    if siren in allowed:
        return Clause("landlord_siren_in", "landlord_siren", Outcome.PASS, f"landlord_siren ∈ {shown}")
    return _fail("landlord_siren_in", "landlord_siren", f"landlord_siren ∉ {shown}")


def _surendettement(required: bool, value: bool | None) -> Clause | None:
    # A requirement, like a floor: an unknown situation does not meet it.
    if not required:
        return None
    if value:
        return Clause("requires_surendettement", "surendettement", Outcome.PASS, "surendettement OUI")
    state = "UNKNOWN" if value is None else "NON"
    return _fail("requires_surendettement", "surendettement", f"surendettement {state} (required)")


def _categorical(rule: str, subject: str, value: str | None, allowed: Iterable[str] | None) -> Clause | None:
    if allowed is None:
        return None
    allowed_values = frozenset(allowed)
    shown = _set_text(sorted(allowed_values))
    if value is None:
        return _unknown(rule, subject)
    if value in allowed_values:
        return Clause(rule, subject, Outcome.PASS, f"{subject} {value} ∈ {shown}")
    return _fail(rule, subject, f"{subject} {value} ∉ {shown}")


def _ceiling(rule: str, subject: str, value: Decimal | None, limit: Decimal | None) -> Clause | None:
    if limit is None:
        return None
    if value is None:
        return _unknown(rule, subject)
    if value <= limit:
        return Clause(rule, subject, Outcome.PASS, f"{subject} {_number(value)} ≤ {_number(limit)}")
    return _fail(rule, subject, f"{subject} above ceiling {_number(limit)}")


def _floor(rule: str, subject: str, value: Decimal | int | None, limit: Decimal | int | None) -> Clause | None:
    if limit is None:
        return None
    if value is None:
        return _fail(rule, subject, f"{subject} UNKNOWN (required ≥ {_number(limit)})")
    if value >= limit:
        return Clause(rule, subject, Outcome.PASS, f"{subject} {_number(value)} ≥ {_number(limit)}")
    return _fail(rule, subject, f"{subject} below minimum {_number(limit)}")


def _known(value: Parc | LandlordType | Allocataire | Composition) -> str | None:
    # Every household enum spells "unknown" INCONNU.
    return None if value.value == "INCONNU" else value.value


def _unknown(rule: str, subject: str) -> Clause:
    return Clause(rule, subject, Outcome.UNKNOWN, f"{subject} UNKNOWN (to check)")


def _fail(rule: str, subject: str, text: str) -> Clause:
    return Clause(rule, subject, Outcome.FAIL, text)


def _set_text(items: Iterable[str]) -> str:
    return "{" + ", ".join(items) + "}"


def _number(value: Decimal | int) -> str:
    """``2400`` for 2400.00, ``3.69`` for 3.6923…: amounts and ratios as a person writes them."""
    if isinstance(value, int):
        return str(value)
    return format(value.quantize(Decimal("0.01")).normalize(), "f")
