"""Eligibility clauses one by one: PASS / FAIL(reason) / UNKNOWN, zone and availability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from schemas.procedure import Allocataire, Composition, LandlordType, Parc
from schemas.referential import RecordStatus, StructureTypology
from schemas.stages import Stage
from services.orientation.domain import (
    Eligibility,
    MatchFacts,
    Offer,
    OfferEvaluation,
    Outcome,
    Zone,
    ZoneEntry,
    ZoneKind,
    evaluate_offer,
)
from services.orientation.domain.referential import Structure

PASS, FAIL, UNKNOWN = Outcome.PASS, Outcome.FAIL, Outcome.UNKNOWN
TH_SIREN = "999900001"
ON = date(2026, 3, 2)
S1 = Structure(id="S1", nom="Structure S1", typologie=StructureTypology.AUTRE)


@dataclass(frozen=True)
class ClauseCase:
    rule: str
    eligibility: dict[str, Any]
    household: dict[str, Any]
    outcome: Outcome
    shown: str


C = ClauseCase
CLAUSES = [
    C("stages", {"stages": [Stage.ASSIGNATION]}, {}, PASS, "stage ASSIGNATION ∈ {ASSIGNATION} ✓"),
    C("stages", {"stages": [Stage.AUDIENCE]}, {}, FAIL, "stage ASSIGNATION ∉ {AUDIENCE}"),
    C("parc", {"parc": "PRIVE"}, {"parc": Parc.PRIVE}, PASS, "parc PRIVE ∈ {PRIVE} ✓"),
    C("parc", {"parc": "PRIVE"}, {"parc": Parc.SOCIAL}, FAIL, "parc SOCIAL ∉ {PRIVE}"),
    C("parc", {"parc": "SOCIAL"}, {}, UNKNOWN, "parc UNKNOWN (to check)"),
    C("parc", {"parc": "ALL"}, {}, PASS, "parc INCONNU ∈ {ALL} ✓"),
    C(
        "landlord_types",
        {"landlord_types": [LandlordType.PERSONNE_PHYSIQUE, LandlordType.SCI_FAMILIALE]},
        {"landlord_type": LandlordType.SCI_FAMILIALE},
        PASS,
        "landlord_type SCI_FAMILIALE ∈ {PERSONNE_PHYSIQUE, SCI_FAMILIALE} ✓",
    ),
    C(
        "landlord_types",
        {"landlord_types": [LandlordType.PERSONNE_PHYSIQUE]},
        {"landlord_type": LandlordType.BAILLEUR_SOCIAL},
        FAIL,
        "landlord_type BAILLEUR_SOCIAL ∉ {PERSONNE_PHYSIQUE}",
    ),
    C(
        "landlord_types",
        {"landlord_types": [LandlordType.PERSONNE_PHYSIQUE]},
        {},
        UNKNOWN,
        "landlord_type UNKNOWN (to check)",
    ),
    C(
        "landlord_siren_in",
        {"landlord_siren_in": [TH_SIREN]},
        {"landlord_siren": TH_SIREN},
        PASS,
        "landlord_siren ∈ {999900001} ✓",
    ),
    C(
        "landlord_siren_in",
        {"landlord_siren_in": [TH_SIREN]},
        {"landlord_siren": "123456789"},
        FAIL,
        "landlord_siren ∉ {999900001}",
    ),
    C("landlord_siren_in", {"landlord_siren_in": [TH_SIREN]}, {}, UNKNOWN, "landlord_siren UNKNOWN (to check)"),
    C("debt_min", {"debt_min": 8000}, {"debt": Decimal("9000.00")}, PASS, "debt 9000 ≥ 8000 ✓"),
    C("debt_min", {"debt_min": 8000}, {"debt": Decimal("8000.00")}, PASS, "debt 8000 ≥ 8000 ✓"),
    C("debt_min", {"debt_min": 8000}, {"debt": Decimal("2400.00")}, FAIL, "debt below minimum 8000"),
    C("debt_min", {"debt_min": 8000}, {}, FAIL, "debt UNKNOWN (required ≥ 8000)"),
    C("debt_max", {"debt_max": 6000}, {"debt": Decimal("6000.00")}, PASS, "debt 6000 ≤ 6000 ✓"),
    C("debt_max", {"debt_max": 6000}, {"debt": Decimal("6000.01")}, FAIL, "debt above ceiling 6000"),
    C("debt_max", {"debt_max": 6000}, {}, UNKNOWN, "debt UNKNOWN (to check)"),
    C(
        "months_of_rent_min",
        {"months_of_rent_min": 2},
        {"months_of_rent": Decimal("4.0")},
        PASS,
        "months_of_rent 4 ≥ 2 ✓",
    ),
    C(
        "months_of_rent_min",
        {"months_of_rent_min": 2},
        {"months_of_rent": Decimal("1.5")},
        FAIL,
        "months_of_rent below minimum 2",
    ),
    C("months_of_rent_min", {"months_of_rent_min": 2}, {}, FAIL, "months_of_rent UNKNOWN (required ≥ 2)"),
    C("resources_max", {"resources_max": 1800}, {"resources": Decimal("1520.50")}, PASS, "resources 1520.5 ≤ 1800 ✓"),
    C("resources_max", {"resources_max": 1800}, {"resources": Decimal("2000")}, FAIL, "resources above ceiling 1800"),
    C("resources_max", {"resources_max": 1800}, {}, UNKNOWN, "resources UNKNOWN (to check)"),
    C("allocataire", {"allocataire": "OUI"}, {"allocataire": Allocataire.OUI}, PASS, "allocataire OUI ∈ {OUI} ✓"),
    C("allocataire", {"allocataire": "OUI"}, {"allocataire": Allocataire.NON}, FAIL, "allocataire NON ∉ {OUI}"),
    C("allocataire", {"allocataire": "NON"}, {"allocataire": Allocataire.NON}, PASS, "allocataire NON ∈ {NON} ✓"),
    C("allocataire", {"allocataire": "OUI"}, {}, UNKNOWN, "allocataire UNKNOWN (to check)"),
    C("allocataire", {"allocataire": "ANY"}, {}, PASS, "allocataire INCONNU ∈ {ANY} ✓"),
    C(
        "compositions",
        {"compositions": [Composition.MONOPARENTALE, Composition.COUPLE_AVEC_ENFANTS]},
        {"composition": Composition.MONOPARENTALE},
        PASS,
        "composition MONOPARENTALE ∈ {COUPLE_AVEC_ENFANTS, MONOPARENTALE} ✓",
    ),
    C(
        "compositions",
        {"compositions": [Composition.MONOPARENTALE]},
        {"composition": Composition.PERSONNE_SEULE},
        FAIL,
        "composition PERSONNE_SEULE ∉ {MONOPARENTALE}",
    ),
    C("compositions", {"compositions": [Composition.MONOPARENTALE]}, {}, UNKNOWN, "composition UNKNOWN (to check)"),
    C("children_min", {"children_min": 1}, {"children_count": 2}, PASS, "children 2 ≥ 1 ✓"),
    C("children_min", {"children_min": 1}, {"children_count": 0}, FAIL, "children below minimum 1"),
    C("children_min", {"children_min": 1}, {}, FAIL, "children UNKNOWN (required ≥ 1)"),
    C(
        "requires_surendettement",
        {"requires_surendettement": True},
        {"surendettement": True},
        PASS,
        "surendettement OUI ✓",
    ),
    C(
        "requires_surendettement",
        {"requires_surendettement": True},
        {"surendettement": False},
        FAIL,
        "surendettement NON (required)",
    ),
    C("requires_surendettement", {"requires_surendettement": True}, {}, FAIL, "surendettement UNKNOWN (required)"),
]


@pytest.fixture(name="evaluate")
def fixture_evaluate(
    make_facts: Callable[..., MatchFacts], make_offer: Callable[..., Offer]
) -> Callable[..., OfferEvaluation]:
    """Evaluate one offer (built from ``offer_fields``) against ASSIGNATION facts in Belfort."""

    def evaluate(
        offer_fields: dict[str, Any], commune: str = "90010", on: date = ON, structure: Structure = S1, **facts: Any
    ) -> OfferEvaluation:
        return evaluate_offer(
            make_offer("O1", **offer_fields), structure, make_facts(Stage.ASSIGNATION, commune, **facts), on
        )

    return evaluate


@pytest.mark.parametrize("case", CLAUSES, ids=lambda c: c.shown)
def test_clause(
    case: ClauseCase, evaluate: Callable[..., OfferEvaluation], make_eligibility: Callable[..., Eligibility]
) -> None:
    evaluation = evaluate({"eligibility": make_eligibility(**case.eligibility)}, **case.household)
    [clause] = [c for c in evaluation.clauses if c.rule == case.rule]

    assert (clause.outcome, str(clause)) == (case.outcome, case.shown)
    assert evaluation.eligible is (case.outcome is not FAIL)
    assert (clause.subject in evaluation.unknowns) is (case.outcome is UNKNOWN)
    assert (f"O1.{case.rule}" in evaluation.matched_rules) is (case.outcome is PASS)


def test_no_constraint_means_no_clause_but_the_zone(evaluate: Callable[..., OfferEvaluation]) -> None:
    evaluation = evaluate({})

    assert [str(c) for c in evaluation.clauses] == ["zone DEPARTEMENT 90 ✓"]
    assert evaluation.eligible
    assert evaluation.unknowns == ()


def test_all_failures_are_reported_not_only_the_first(
    evaluate: Callable[..., OfferEvaluation], make_eligibility: Callable[..., Eligibility]
) -> None:
    rules = make_eligibility(stages=[Stage.AUDIENCE], parc="SOCIAL", debt_min=8000)
    evaluation = evaluate({"eligibility": rules, "status": RecordStatus.ARCHIVED}, parc=Parc.PRIVE)

    assert evaluation.reasons == (
        "offer archived",
        "stage ASSIGNATION ∉ {AUDIENCE}",
        "parc PRIVE ∉ {SOCIAL}",
        "debt UNKNOWN (required ≥ 8000)",
    )


def test_failure_reasons_never_quote_household_amounts(
    evaluate: Callable[..., OfferEvaluation], make_eligibility: Callable[..., Eligibility]
) -> None:
    rules = make_eligibility(debt_min=8000, resources_max=1000, months_of_rent_min=6)
    evaluation = evaluate(
        {"eligibility": rules}, debt=Decimal("2345.67"), resources=Decimal("1234.56"), months_of_rent=Decimal("3.9")
    )

    assert len(evaluation.reasons) == 3
    assert not any(amount in " ".join(evaluation.reasons) for amount in ("2345", "1234", "3.9"))


def _zone(*entries: tuple[ZoneKind, str], exclude: frozenset[str] = frozenset()) -> Zone:
    return Zone(include=tuple(ZoneEntry(kind=kind, code=code) for kind, code in entries), exclude_communes=exclude)


@dataclass(frozen=True)
class ZoneCase:
    name: str
    zone: Zone
    commune: str
    specificity: str | None  # None: the zone clause fails
    shown: str


ZONES = [
    ZoneCase("commune in", _zone((ZoneKind.COMMUNE, "90010")), "90010", "COMMUNE", "zone COMMUNE 90010 ✓"),
    ZoneCase("commune out", _zone((ZoneKind.COMMUNE, "90010")), "90099", None, "zone 90099 ∉ {COMMUNE 90010}"),
    ZoneCase("epci in", _zone((ZoneKind.EPCI, "200069052")), "90010", "EPCI", "zone EPCI 200069052 ✓"),
    ZoneCase("epci out", _zone((ZoneKind.EPCI, "200069052")), "90033", None, "zone 90033 ∉ {EPCI 200069052}"),
    ZoneCase("département", _zone((ZoneKind.DEPARTEMENT, "90")), "90033", "DEPARTEMENT", "zone DEPARTEMENT 90 ✓"),
    ZoneCase("other département", _zone((ZoneKind.DEPARTEMENT, "25")), "90010", None, "zone 90010 ∉ {DEPARTEMENT 25}"),
    ZoneCase(
        "most specific entry wins",
        _zone((ZoneKind.DEPARTEMENT, "90"), (ZoneKind.EPCI, "200069052"), (ZoneKind.COMMUNE, "90010")),
        "90010",
        "COMMUNE",
        "zone COMMUNE 90010 ✓",
    ),
    ZoneCase(
        "excluded commune",
        _zone((ZoneKind.DEPARTEMENT, "90"), exclude=frozenset({"90010"})),
        "90010",
        None,
        "zone: commune 90010 excluded",
    ),
    ZoneCase(
        "exclusion of another commune",
        _zone((ZoneKind.DEPARTEMENT, "90"), exclude=frozenset({"90010"})),
        "90099",
        "DEPARTEMENT",
        "zone DEPARTEMENT 90 ✓",
    ),
]


@pytest.mark.parametrize("case", ZONES, ids=lambda z: z.name)
def test_zone(case: ZoneCase, evaluate: Callable[..., OfferEvaluation]) -> None:
    # The EPCI is known only for Belfort in these cases, as ingest would derive it from the COG.
    epci = "200069052" if case.commune == "90010" else None
    evaluation = evaluate({"zone": case.zone}, case.commune, epci_siren=epci)

    assert [str(c) for c in evaluation.clauses if c.rule == "zone"] == [case.shown]
    assert evaluation.specificity == (ZoneKind(case.specificity) if case.specificity else None)
    assert evaluation.eligible is (case.specificity is not None)


def test_an_unknown_epci_does_not_match_an_epci_zone(evaluate: Callable[..., OfferEvaluation]) -> None:
    assert not evaluate({"zone": _zone((ZoneKind.EPCI, "200069052"))}, epci_siren=None).eligible


AVAILABILITY: list[tuple[str, dict[str, Any], Structure, str | None]] = [
    ("active", {}, S1, None),
    ("offer suspended", {"status": RecordStatus.SUSPENDED}, S1, "offer suspended"),
    ("offer archived", {"status": RecordStatus.ARCHIVED}, S1, "offer archived"),
    ("structure suspended", {}, S1.model_copy(update={"status": RecordStatus.SUSPENDED}), "structure S1 suspended"),
    ("suspension reached", {"suspension_date": date(2026, 3, 2)}, S1, "offer suspended since 2026-03-02"),
    ("suspension ahead", {"suspension_date": date(2026, 3, 3)}, S1, None),
    (
        "not yet valid",
        {"eligibility": Eligibility(valid_from=date(2026, 4, 1))},
        S1,
        "eligibility valid from 2026-04-01",
    ),
    ("valid on its last day", {"eligibility": Eligibility(valid_to=date(2026, 3, 2))}, S1, None),
    ("expired", {"eligibility": Eligibility(valid_to=date(2026, 3, 1))}, S1, "eligibility expired on 2026-03-01"),
]


@pytest.mark.parametrize(("case", "fields", "structure", "reason"), AVAILABILITY, ids=[a[0] for a in AVAILABILITY])
def test_availability(
    case: str,
    fields: dict[str, Any],
    structure: Structure,
    reason: str | None,
    evaluate: Callable[..., OfferEvaluation],
) -> None:
    evaluation = evaluate(fields, structure=structure)

    assert evaluation.reasons == ((reason,) if reason else ()), case
