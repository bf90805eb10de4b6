"""Properties of ``decide`` over random households and random variants of the seed référentiel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas.orientation import AssignmentKind
from schemas.procedure import Allocataire, Composition, LandlordType, Parc
from schemas.stages import Stage
from services.orientation.domain import MatchFacts, MatchResult, Offer, Referential, decide, evaluate_offer

# Generation, not decide (≈0.5 ms), dominates the run time: 150 examples keep the file under ~10 s.
PROPERTY = settings(max_examples=150, deadline=None)
COMMUNES = ["90010", "90033", "90009", "90053", "90099", "90075", "90052"]
amounts = st.decimals(min_value=0, max_value=20000, places=2, allow_nan=False, allow_infinity=False)

facts_strategy = st.builds(
    MatchFacts,
    stage=st.sampled_from(Stage),
    act_date=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    commune_insee=st.sampled_from(COMMUNES),
    departement=st.sampled_from(["90", "90", "90", "25"]),
    epci_siren=st.none() | st.just("200069052"),
    parc=st.sampled_from(Parc),
    landlord_type=st.sampled_from(LandlordType),
    landlord_siren=st.none() | st.sampled_from(["999900001", "123456789"]),
    debt=st.none() | amounts,
    months_of_rent=st.none() | st.decimals(min_value=0, max_value=30, places=2),
    resources=st.none() | amounts,
    allocataire=st.sampled_from(Allocataire),
    composition=st.sampled_from(Composition),
    children_count=st.none() | st.integers(0, 6),
    surendettement=st.none() | st.booleans(),
)


@dataclass(frozen=True)
class Case:
    facts: MatchFacts
    referential: Referential
    open_structures: frozenset[str]
    remaining: dict[str, int | None]
    k: int

    def decide(self, referential: Referential | None = None) -> MatchResult:
        return decide(
            self.facts,
            referential or self.referential,
            open_structures=self.open_structures,
            remaining_capacity=self.remaining,
            k=self.k,
        )


@st.composite
def offer_variant(draw: st.DrawFn, offer: Offer) -> Offer:
    """The seed offer with a random priority, mandatory stages and capacity (still a valid offer)."""
    stages = sorted(offer.eligibility.stages or Stage)
    mandatory = draw(st.sets(st.sampled_from(stages), max_size=3))
    capacity = draw(st.none() | st.integers(1, 5))
    update = {"priority": draw(st.integers(-5, 100)), "mandatory_stages": frozenset(mandatory)}
    return offer.model_copy(update={**update, "max_new_assignments_per_week": capacity})


@st.composite
def cases(draw: st.DrawFn, seed: Referential) -> Case:
    kept = draw(st.lists(st.sampled_from(seed.offers), unique_by=lambda o: o.id))
    offers = tuple(draw(offer_variant(offer)) for offer in kept)
    structure_ids = [s.id for s in seed.structures]
    return Case(
        facts=draw(facts_strategy),
        referential=seed.model_copy(update={"offers": offers}),
        open_structures=frozenset(draw(st.sets(st.sampled_from(structure_ids)))),
        remaining=draw(
            st.dictionaries(st.sampled_from([o.id for o in offers] or ["-"]), st.none() | st.integers(-1, 3))
        ),
        k=draw(st.integers(1, 5)),
    )


def _eligible(case: Case) -> list[Offer]:
    ref = case.referential
    return [
        offer
        for offer in ref.offers
        if evaluate_offer(offer, ref.structure(offer.structure_id), case.facts, case.facts.act_date).eligible
    ]


@PROPERTY
@given(data=st.data())
def test_deterministic_and_independent_of_file_order(data: st.DataObject, seed: Referential) -> None:
    case = data.draw(cases(seed))
    shuffled = case.referential.model_copy(
        update={"offers": tuple(data.draw(st.permutations(case.referential.offers)))}
    )

    assert case.decide() == case.decide() == case.decide(shuffled)


@PROPERTY
@given(data=st.data())
def test_cap_is_respected_beyond_mandatory(data: st.DataObject, seed: Referential) -> None:
    case = data.draw(cases(seed))
    result = case.decide()

    assert result.assignments
    assert sum(not a.mandatory for a in result.assignments) <= case.k
    assert len({a.structure_id for a in result.assignments}) == len(result.assignments)


@PROPERTY
@given(data=st.data())
def test_eligible_mandatory_offers_are_always_assigned_as_mandatory(data: st.DataObject, seed: Referential) -> None:
    case = data.draw(cases(seed))
    result = case.decide()
    mandatory_kept = {o for a in result.assignments if a.mandatory for o in a.offer_ids}

    for offer in _eligible(case):
        if case.facts.stage in offer.mandatory_stages:
            assert offer.id in mandatory_kept


@PROPERTY
@given(data=st.data())
def test_every_offer_is_kept_also_eligible_or_rejected_with_reasons(data: st.DataObject, seed: Referential) -> None:
    case = data.draw(cases(seed))
    result = case.decide()
    kept = [o for a in result.assignments for o in a.offer_ids]
    also = [o.offer_id for o in result.also_eligible]
    rejected = [r.offer_id for r in result.rejected]

    assert sorted(kept + also + rejected) == sorted(o.id for o in case.referential.offers)
    assert all(r.reasons for r in result.rejected)
    assert sorted(kept + also) == sorted(o.id for o in _eligible(case))
    assert result.fallback_used is (not kept and not also)


@PROPERTY
@given(data=st.data())
def test_kind_follows_open_structures_and_capacity_is_only_exceeded_when_allowed(
    data: st.DataObject, seed: Referential
) -> None:
    case = data.draw(cases(seed))
    result = case.decide()

    for assignment in result.assignments:
        expected = (
            AssignmentKind.STAGE_UPDATE if assignment.structure_id in case.open_structures else AssignmentKind.NEW
        )
        assert assignment.kind is expected
        if assignment.over_capacity and not assignment.mandatory:
            assert len([a for a in result.assignments if not a.mandatory]) == 1  # F2 only


@PROPERTY
@given(facts=facts_strategy)
def test_rejection_reasons_quote_no_household_amount(facts: MatchFacts, seed: Referential) -> None:
    amounts = [_shown(value) for value in (facts.debt, facts.resources, facts.months_of_rent) if value is not None]
    assume(not set(amounts) & SEED_BOUNDS)  # a bound equal to the amount would be quoted as the bound

    reasons = " | ".join(reason for rejected in decide(facts, seed).rejected for reason in rejected.reasons)

    assert not any(re.search(rf"(?<![\d.-]){re.escape(amount)}(?![\d.-])", reasons) for amount in amounts)


SEED_BOUNDS = {"6000", "1800", "8000"}


def _shown(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")).normalize(), "f")
