"""Scenarios S-01, S-02, S-04, S-05 and S-06 of docs/domain.md §9, orientation part, on the seed référentiel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from schemas.orientation import AssignmentKind
from schemas.procedure import Allocataire, LandlordType, Parc, ProcedureNotice
from schemas.stages import Stage
from services.orientation.domain import MatchFacts, MatchResult, Referential, decide, facts_from_notice, should_orient

MakeFacts = Callable[..., MatchFacts]
TH_SIREN = "999900001"  # Territoire habitat, fictional (seed-90.yaml)


@dataclass(frozen=True)
class Scenario:
    name: str
    facts: dict[str, Any]
    # (structure_id, offer_ids, mandatory), in the order the decision lists them
    assignments: list[tuple[str, tuple[str, ...], bool]]
    also_eligible: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fallback_used: bool = False


S01: dict[str, Any] = {
    "stage": Stage.COMMANDEMENT_PAYER,
    "commune": "90010",  # Belfort
    "epci_siren": "200069052",
    "parc": Parc.PRIVE,
    "landlord_type": LandlordType.PERSONNE_PHYSIQUE,
    "debt": Decimal("2400.00"),
    "months_of_rent": Decimal("4.0"),
}
S02: dict[str, Any] = {
    "stage": Stage.SAISINE_CCAPEX_BAILLEUR,
    "commune": "90075",  # Offemont
    "act_date": date(2026, 5, 4),
    "parc": Parc.SOCIAL,
    "landlord_type": LandlordType.BAILLEUR_SOCIAL,
    "landlord_siren": TH_SIREN,
    "debt": Decimal("1500.00"),
    "months_of_rent": Decimal("3.57"),
    "allocataire": Allocataire.OUI,
}
S04: dict[str, Any] = {
    "stage": Stage.ASSIGNATION,
    "commune": "90099",  # Valdoie
    "act_date": date(2026, 6, 1),
    "parc": Parc.PRIVE,
    "landlord_type": LandlordType.PERSONNE_PHYSIQUE,
    "debt": Decimal("3100.00"),
    "allocataire": Allocataire.NON,
}
S05: dict[str, Any] = {
    "stage": Stage.IMPAYE_CONSTATE,
    "commune": "90052",  # Giromagny
    "parc": Parc.PRIVE,
    "landlord_type": LandlordType.PERSONNE_MORALE_PRIVEE,
    "debt": Decimal("700.00"),
    "months_of_rent": Decimal("1.08"),
    "allocataire": Allocataire.NON,
}
S06: dict[str, Any] = {
    "stage": Stage.COMMANDEMENT_QUITTER,
    "commune": "90010",
    "act_date": date(2025, 12, 10),
    "parc": Parc.SOCIAL,
    "landlord_type": LandlordType.BAILLEUR_SOCIAL,
    "landlord_siren": TH_SIREN,
}

SCENARIOS = [
    Scenario(
        "S-01 commandement de payer, private landlord, Belfort",
        S01,
        [
            ("CCAS-BELFORT", ("CCAS-BELFORT",), False),
            ("CDAD90", ("PJ90-INFO",), False),
            ("CD90", ("CD90-ACCOMP",), False),
        ],
        also_eligible={"CAF90-MAINTIEN": ("allocataire",), "FSL90-MAINTIEN": ("resources",)},
    ),
    Scenario(
        "S-02 bailleur social saisine, allocataire, Offemont",
        S02,
        [
            ("CD90", ("CD90-ACCOMP",), False),
            ("CAF90", ("CAF90-MAINTIEN",), False),
            ("FSL90", ("FSL90-MAINTIEN",), False),
        ],
    ),
    Scenario(
        "S-04 input 1 assignation, Valdoie",
        S04,
        [
            ("CD90", ("CD90-DSF", "CD90-ACCOMP"), True),
            ("CDAD90", ("PJ90-INFO",), False),
            ("FSL90", ("FSL90-MAINTIEN",), False),
        ],
    ),
    Scenario("S-05 no matching offer, Giromagny", S05, [("CCAPEX90", (), False)], fallback_used=True),
    Scenario(
        "S-06 CQL in the winter truce, social stock, Belfort",
        S06,
        [
            ("CCAS-BELFORT", ("CCAS-BELFORT",), False),
            ("CD90", ("CD90-ACCOMP",), False),
            ("TH90", ("TH-PROTOCOLE",), False),
        ],
        also_eligible={"SIAO90": ()},
    ),
]


@pytest.fixture(name="orient")
def fixture_orient(seed: Referential, make_facts: MakeFacts) -> Callable[[dict[str, Any]], MatchResult]:
    """Decide on the seed référentiel from a scenario's facts."""
    return lambda scenario_facts: decide(make_facts(**scenario_facts), seed)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_assignments(scenario: Scenario, orient: Callable[[dict[str, Any]], MatchResult]) -> None:
    result = orient(scenario.facts)

    assert [(a.structure_id, a.offer_ids, a.mandatory) for a in result.assignments] == scenario.assignments
    assert {o.offer_id: o.unknowns for o in result.also_eligible} == scenario.also_eligible
    assert result.fallback_used is scenario.fallback_used
    assert all(a.kind is AssignmentKind.NEW and not a.over_capacity for a in result.assignments)


def test_s01_specificity_puts_the_commune_offer_first(orient: Callable[[dict[str, Any]], MatchResult]) -> None:
    ccas = orient(S01).assignments[0]

    assert ccas.explanation.splitlines() == [
        "offer CCAS-BELFORT: zone COMMUNE 90010 ✓; stage COMMANDEMENT_PAYER ∈ {COMMANDEMENT_PAYER…DEMANDE_CFP} ✓; "
        "parc PRIVE ∈ {ALL} ✓",
        "ranked 1/5 candidate structures, cap 3: zone COMMUNE, priority 0, 0 UNKNOWN",
    ]
    assert ccas.matched_rules == ("CCAS-BELFORT.zone", "CCAS-BELFORT.stages", "CCAS-BELFORT.parc")


def test_s01_from_the_notice_ingest_publishes(
    make_notice: Callable[..., ProcedureNotice], make_facts: MakeFacts, seed: Referential
) -> None:
    notice = make_notice()

    assert should_orient(notice)
    assert facts_from_notice(notice) == make_facts(**S01)
    assert [a.structure_id for a in decide(facts_from_notice(notice), seed).assignments] == [
        "CCAS-BELFORT",
        "CDAD90",
        "CD90",
    ]


def test_s02_caf_ranks_before_fsl_with_fewer_unknowns(orient: Callable[[dict[str, Any]], MatchResult]) -> None:
    _cd90, caf, fsl = orient(S02).assignments

    assert "allocataire OUI ∈ {OUI} ✓" in caf.explanation
    assert "resources UNKNOWN (to check)" in fsl.explanation


def test_s04_explanations_follow_the_domain_example(orient: Callable[[dict[str, Any]], MatchResult]) -> None:
    cd90, _pj90, fsl = orient(S04).assignments

    assert fsl.explanation.splitlines()[0] == (
        "offer FSL90-MAINTIEN: zone DEPARTEMENT 90 ✓; stage ASSIGNATION ∈ {SIGNALEMENT_CAF…DECISION} ✓; "
        "parc PRIVE ∈ {ALL} ✓; debt 3100 ≤ 6000 ✓; resources UNKNOWN (to check)"
    )
    assert cd90.explanation.splitlines() == [
        "offer CD90-DSF: zone DEPARTEMENT 90 ✓; stage ASSIGNATION ∈ {ASSIGNATION, AUDIENCE} ✓; parc PRIVE ∈ {ALL} ✓",
        "offer CD90-ACCOMP: zone DEPARTEMENT 90 ✓; stage ASSIGNATION ∈ {SIGNALEMENT_CAF…DECISION_CFP} ✓; "
        "parc PRIVE ∈ {ALL} ✓",
        "mandatory at ASSIGNATION: outside the cap",
    ]
    assert "CD90-DSF.mandatory_stages" in cd90.matched_rules


def test_s04_caf_is_rejected_as_not_allocataire(orient: Callable[[dict[str, Any]], MatchResult]) -> None:
    reasons = {r.offer_id: r.reasons for r in orient(S04).rejected}

    assert reasons["CAF90-MAINTIEN"] == ("allocataire NON ∉ {OUI}",)
    assert reasons["MEDIATION-SUD"] == ("zone 90099 ∉ {COMMUNE 90033, COMMUNE 90009, COMMUNE 90053}",)


def test_s04_the_late_commandement_is_not_oriented(make_notice: Callable[..., ProcedureNotice]) -> None:
    assert not should_orient(make_notice(Stage.COMMANDEMENT_PAYER, is_late=True))


def test_a_closure_is_not_oriented(make_notice: Callable[..., ProcedureNotice]) -> None:
    assert not should_orient(make_notice(Stage.CLOTURE))


def test_s05_every_offer_is_rejected_with_its_reasons(
    orient: Callable[[dict[str, Any]], MatchResult], seed: Referential
) -> None:
    result = orient(S05)
    reasons = {r.offer_id: r.reasons for r in result.rejected}

    assert set(reasons) == {o.id for o in seed.offers}
    assert all(reasons.values())
    assert reasons["CAF90-MAINTIEN"] == ("allocataire NON ∉ {OUI}",)
    assert reasons["CD90-ACCOMP"] == ("stage IMPAYE_CONSTATE ∉ {SIGNALEMENT_CAF…DECISION_CFP}",)
    assert result.assignments[0].explanation == (
        "no eligible offer among 10: default referent, manual orientation required (F1)"
    )


def test_s06_protocole_matches_territoire_habitat(orient: Callable[[dict[str, Any]], MatchResult]) -> None:
    protocole = orient(S06).assignments[2]

    assert "landlord_siren ∈ {999900001} ✓" in protocole.explanation


def test_siao_becomes_mandatory_at_demande_cfp(seed: Referential, make_facts: MakeFacts) -> None:
    result = decide(make_facts(Stage.DEMANDE_CFP, parc=Parc.SOCIAL), seed)

    assert (result.assignments[0].structure_id, result.assignments[0].mandatory) == ("SIAO90", True)
