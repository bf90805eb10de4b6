"""Ranking, cap, merging, mandatory offers, capacity, open structures and fallbacks F1 / F2."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from schemas.orientation import AssignmentKind
from schemas.stages import Stage
from services.orientation.domain import (
    Eligibility,
    MatchFacts,
    MatchResult,
    Offer,
    Referential,
    Zone,
    ZoneEntry,
    ZoneKind,
    decide,
)

MakeOffer = Callable[..., Offer]
BELFORT_ONLY = Zone(include=(ZoneEntry(kind=ZoneKind.COMMUNE, code="90010"),))
NEW, STAGE_UPDATE = AssignmentKind.NEW, AssignmentKind.STAGE_UPDATE


@pytest.fixture(name="run")
def fixture_run(
    make_facts: Callable[..., MatchFacts], make_referential: Callable[..., Referential]
) -> Callable[..., MatchResult]:
    """``run(*offers, stage=ASSIGNATION, **decide_kwargs)`` in Belfort, every household value unknown."""

    def run(*offers: Offer, stage: Stage = Stage.ASSIGNATION, **kwargs: Any) -> MatchResult:
        return decide(make_facts(stage), make_referential(*offers), **kwargs)

    return run


def _kept(result: MatchResult) -> list[tuple[str, tuple[str, ...]]]:
    return [(a.structure_id, a.offer_ids) for a in result.assignments]


@dataclass(frozen=True)
class RankCase:
    criterion: str
    offer_a: dict[str, Any]
    offer_b: dict[str, Any]
    capacity: dict[str, int | None]
    kept: str  # the structure kept with k=1


RANKING = [
    RankCase("(a) commune beats a higher priority", {"zone": BELFORT_ONLY}, {"priority": 100}, {}, "SA"),
    RankCase("(b) higher priority first", {"priority": 10}, {"priority": 20}, {}, "SB"),
    RankCase(
        "(c) fewer UNKNOWN first",
        {"eligibility": Eligibility.model_validate({"resources_max": 1800}, strict=False)},
        {},
        {},
        "SB",
    ),
    RankCase("(d) more remaining capacity first", {}, {}, {"A": 2, "B": 5}, "SB"),
    RankCase("(d) unlimited beats any capacity", {}, {}, {"A": None, "B": 50}, "SA"),
    RankCase("(e) offer id breaks ties", {}, {}, {}, "SA"),
]


@pytest.mark.parametrize("case", RANKING, ids=lambda r: r.criterion)
def test_ranking_criteria(case: RankCase, run: Callable[..., MatchResult], make_offer: MakeOffer) -> None:
    offers = (make_offer("B", "SB", **case.offer_b), make_offer("A", "SA", **case.offer_a))

    result = run(*offers, k=1, remaining_capacity=case.capacity)

    assert [assignment.structure_id for assignment in result.assignments] == [case.kept]
    assert len(result.also_eligible) == 1


def test_an_absent_capacity_is_the_full_weekly_capacity(run: Callable[..., MatchResult], make_offer: MakeOffer) -> None:
    result = run(
        make_offer("A", "SA", max_new_assignments_per_week=1),
        make_offer("B", "SB", max_new_assignments_per_week=5),
        k=1,
    )

    assert _kept(result) == [("SB", ("B",))]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_the_cap_counts_structures(k: int, run: Callable[..., MatchResult], make_offer: MakeOffer) -> None:
    offers = [make_offer(f"O{i}", f"S{i}", priority=10 - i) for i in range(5)]

    result = run(*offers, k=k)

    assert [a.structure_id for a in result.assignments] == [f"S{i}" for i in range(k)]
    assert [o.offer_id for o in result.also_eligible] == [f"O{i}" for i in range(k, 5)]


def test_offers_of_one_structure_merge_without_taking_a_slot(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    result = run(
        make_offer("O1", "S1", priority=50),
        make_offer("O2", "S1", priority=0),
        make_offer("O3", "S2", priority=40),
        make_offer("O4", "S3", priority=30),
        k=2,
    )

    assert _kept(result) == [("S1", ("O1", "O2")), ("S2", ("O3",))]
    assert result.assignments[0].priority == 50
    assert [o.offer_id for o in result.also_eligible] == ["O4"]


def test_mandatory_offers_come_first_outside_the_cap_and_absorb_their_structure(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    result = run(
        make_offer("X", "S1", priority=90),
        make_offer("M", "S1", mandatory_stages=frozenset({Stage.ASSIGNATION})),
        make_offer("O2", "S2", priority=3),
        make_offer("O3", "S3", priority=2),
        make_offer("O4", "S4", priority=1),
        make_offer("O5", "S5", priority=0),
        k=3,
    )

    assert _kept(result) == [("S1", ("M", "X")), ("S2", ("O2",)), ("S3", ("O3",)), ("S4", ("O4",))]
    assert [a.mandatory for a in result.assignments] == [True, False, False, False]
    assert "S1" not in {o.structure_id for o in result.also_eligible}


def test_a_mandatory_stage_only_binds_at_that_stage(run: Callable[..., MatchResult], make_offer: MakeOffer) -> None:
    offers = (
        make_offer("M", "S1", mandatory_stages=frozenset({Stage.ASSIGNATION})),
        make_offer("O2", "S2", priority=1),
    )

    result = run(*offers, stage=Stage.AUDIENCE, k=1)

    assert _kept(result) == [("S2", ("O2",))]


def test_a_mandatory_offer_over_capacity_is_assigned_anyway(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    result = run(make_offer("M", "S1", mandatory_stages=frozenset({Stage.ASSIGNATION})), remaining_capacity={"M": 0})

    [assignment] = result.assignments
    assert (assignment.mandatory, assignment.over_capacity) == (True, True)
    assert "over capacity: weekly capacity used up, assigned anyway as mandatory" in assignment.explanation
    assert result.over_capacity


def test_an_offer_over_capacity_gives_way_to_the_next_candidate(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    result = run(make_offer("A", "SA", priority=9), make_offer("B", "SB"), k=1, remaining_capacity={"A": 0})

    assert _kept(result) == [("SB", ("B",))]
    assert [(o.offer_id, o.over_capacity) for o in result.also_eligible] == [("A", True)]
    assert not result.over_capacity


def test_an_offer_over_capacity_does_not_merge_into_its_kept_structure(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    result = run(make_offer("A1", "SA", priority=9), make_offer("A2", "SA"), remaining_capacity={"A2": 0})

    assert _kept(result) == [("SA", ("A1",))]
    assert [(o.offer_id, o.over_capacity) for o in result.also_eligible] == [("A2", True)]


def test_f2_all_eligible_offers_over_capacity(run: Callable[..., MatchResult], make_offer: MakeOffer) -> None:
    result = run(make_offer("A", "SA", priority=9), make_offer("B", "SB"), remaining_capacity={"A": 0, "B": -1})

    [assignment] = result.assignments
    assert (assignment.structure_id, assignment.offer_ids, assignment.over_capacity) == ("SA", ("A",), True)
    assert "(F2)" in assignment.explanation
    assert not result.fallback_used
    assert result.over_capacity
    assert [(o.offer_id, o.over_capacity) for o in result.also_eligible] == [("B", True)]


def test_f1_no_eligible_offer_goes_to_the_default_referent(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    late_only = Eligibility(stages=frozenset({Stage.DEMANDE_CFP}))
    delle_only = Zone(include=(ZoneEntry(kind=ZoneKind.COMMUNE, code="90033"),))
    result = run(
        make_offer("A", "SA", eligibility=late_only), make_offer("B", "SB", zone=delle_only), stage=Stage.AUDIENCE
    )

    [assignment] = result.assignments
    assert (assignment.structure_id, assignment.offer_ids, assignment.kind) == ("DEFAULT", (), NEW)
    assert result.fallback_used
    assert [(r.offer_id, r.reasons) for r in result.rejected] == [
        ("A", ("stage AUDIENCE ∉ {DEMANDE_CFP}",)),
        ("B", ("zone 90010 ∉ {COMMUNE 90033}",)),
    ]
    assert result.also_eligible == ()


def test_f1_with_an_empty_referential(run: Callable[..., MatchResult]) -> None:
    result = run()

    assert (result.fallback_used, _kept(result)) == (True, [("DEFAULT", ())])


def test_an_open_default_referent_gets_a_stage_update_on_f1(run: Callable[..., MatchResult]) -> None:
    [assignment] = run(open_structures=frozenset({"DEFAULT"})).assignments

    assert assignment.kind is STAGE_UPDATE


def test_open_structures_get_stage_updates_and_keep_their_slot(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    result = run(
        make_offer("A", "SA", priority=3),
        make_offer("B", "SB", priority=2),
        make_offer("C", "SC", priority=1),
        open_structures=frozenset({"SA"}),
        k=2,
    )

    assert [(a.structure_id, a.kind) for a in result.assignments] == [("SA", STAGE_UPDATE), ("SB", NEW)]
    assert [o.offer_id for o in result.also_eligible] == ["C"]
    assert "stage update: the structure already holds an open assignment" in result.assignments[0].explanation


def test_the_chosen_structures_do_not_depend_on_open_ones(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    offers = [make_offer(f"O{i}", f"S{i}", priority=i) for i in range(4)]

    without = run(*offers, k=2)
    with_open = run(*offers, k=2, open_structures=frozenset({"S0", "S3"}))

    assert _kept(without) == _kept(with_open) == [("S3", ("O3",)), ("S2", ("O2",))]
    assert [a.kind for a in with_open.assignments] == [STAGE_UPDATE, NEW]


def test_a_stage_update_consumes_no_capacity(run: Callable[..., MatchResult], make_offer: MakeOffer) -> None:
    result = run(
        make_offer("A", "SA", priority=9),
        make_offer("B", "SB"),
        k=1,
        remaining_capacity={"A": 0},
        open_structures=frozenset({"SA"}),
    )

    [assignment] = result.assignments
    assert (assignment.structure_id, assignment.kind, assignment.over_capacity) == ("SA", STAGE_UPDATE, False)


def test_a_mandatory_open_structure_gets_a_mandatory_stage_update(
    run: Callable[..., MatchResult], make_offer: MakeOffer
) -> None:
    result = run(
        make_offer("M", "S1", mandatory_stages=frozenset({Stage.ASSIGNATION})), open_structures=frozenset({"S1"})
    )

    assert [(a.mandatory, a.kind) for a in result.assignments] == [(True, STAGE_UPDATE)]


def test_offers_are_judged_on_the_given_date(run: Callable[..., MatchResult], make_offer: MakeOffer) -> None:
    ended = make_offer("A", "SA", eligibility=Eligibility(valid_to=date(2026, 3, 1)))

    assert run(ended).fallback_used  # the act date, 2026-03-02, by default
    assert not run(ended, on=date(2026, 2, 28)).fallback_used


def test_the_cap_must_be_positive(run: Callable[..., MatchResult]) -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        run(k=0)
