"""The matcher's index (stage, zone, parc, allocataire) and CCAPEX removals: the same outcome as evaluating
every offer, on any référentiel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.procedure import Allocataire, Parc
from schemas.stages import Stage
from services.orientation.domain import (
    AllocataireFilter,
    Eligibility,
    Matcher,
    MatchFacts,
    Offer,
    ParcFilter,
    Referential,
    Zone,
    ZoneEntry,
    ZoneKind,
    evaluate_offer,
)
from services.orientation.domain.matching import removed_reason

MakeOffer = Callable[..., Offer]
MakeReferential = Callable[..., Referential]
MakeFacts = Callable[..., MatchFacts]
PROPERTY = settings(max_examples=60, deadline=None)
# Communes of the 90 in its three EPCI (COG), and one commune of the 25 next door.
COMMUNES = {
    "90010": "200069052",
    "90099": "200069052",
    "90052": "200069060",
    "90033": "249000241",
    "25056": "242504496",
}
STRUCTURES = ["S1", "S2", "S3", "S4"]

zone_entries = st.one_of(
    st.builds(ZoneEntry, kind=st.just(ZoneKind.COMMUNE), code=st.sampled_from(sorted(COMMUNES))),
    st.builds(ZoneEntry, kind=st.just(ZoneKind.EPCI), code=st.sampled_from(sorted(set(COMMUNES.values())))),
    st.builds(ZoneEntry, kind=st.just(ZoneKind.DEPARTEMENT), code=st.sampled_from(["90", "25"])),
)
zones = st.builds(
    Zone,
    include=st.lists(zone_entries, min_size=1, max_size=3).map(tuple),
    exclude_communes=st.frozensets(st.sampled_from(sorted(COMMUNES)), max_size=1),
)
stage_sets = st.none() | st.frozensets(st.sampled_from([s for s in Stage if s is not Stage.CLOTURE]), min_size=1)


@st.composite
def referentials(draw: st.DrawFn, make_offer: MakeOffer, make_referential: MakeReferential) -> Referential:
    count = draw(st.integers(1, 12))
    offers = [
        make_offer(
            f"O{n:02}",
            draw(st.sampled_from(STRUCTURES)),
            zone=draw(zones),
            eligibility=Eligibility(
                stages=draw(stage_sets),
                parc=draw(st.none() | st.sampled_from(ParcFilter)),
                allocataire=draw(st.none() | st.sampled_from(AllocataireFilter)),
            ),
            priority=draw(st.integers(0, 5)),
        )
        for n in range(count)
    ]
    return make_referential(*offers)


@PROPERTY
@given(data=st.data())
def test_the_index_changes_nothing(
    data: st.DataObject, make_offer: MakeOffer, make_referential: MakeReferential, make_facts: MakeFacts
) -> None:
    referential = data.draw(referentials(make_offer, make_referential))
    commune = data.draw(st.sampled_from(sorted(COMMUNES)))
    facts = make_facts(
        data.draw(st.sampled_from(list(Stage))),
        commune=commune,
        departement=commune[:2],
        epci_siren=data.draw(st.none() | st.just(COMMUNES[commune])),
        parc=data.draw(st.sampled_from(Parc)),
        allocataire=data.draw(st.sampled_from(Allocataire)),
    )
    excluded = frozenset(data.draw(st.sets(st.sampled_from(STRUCTURES), max_size=2)))

    result = Matcher(referential).decide(facts, excluded_structures=excluded)

    structures = referential.structures_by_id()
    full = {o.id: evaluate_offer(o, structures[o.structure_id], facts, facts.act_date) for o in referential.offers}
    eligible = {i for i, e in full.items() if e.eligible and e.offer.structure_id not in excluded}
    chosen = {o for a in result.assignments for o in a.offer_ids} | {o.offer_id for o in result.also_eligible}
    assert chosen == eligible
    expected_reasons = {
        i: ((removed_reason(e.offer.structure_id),) if e.offer.structure_id in excluded else ()) + e.reasons
        for i, e in full.items()
        if i not in eligible
    }
    assert {r.offer_id: r.reasons for r in result.rejected} == expected_reasons
    assert [r.offer_id for r in result.rejected] == sorted(expected_reasons)
    assert not {a.structure_id for a in result.assignments} & excluded


def test_a_removed_structure_is_not_chosen_and_says_why(
    make_offer: MakeOffer, make_referential: MakeReferential, make_facts: MakeFacts
) -> None:
    referential = make_referential(make_offer("A1", "SA", priority=10), make_offer("B1", "SB"))
    matcher = Matcher(referential)
    facts = make_facts(Stage.ASSIGNATION)

    result = matcher.decide(facts, excluded_structures=frozenset({"SA"}), k=1)

    assert [a.structure_id for a in result.assignments] == ["SB"]
    assert [(r.offer_id, r.reasons) for r in result.rejected] == [
        ("A1", ("structure SA removed from this procedure by the CCAPEX (override)",))
    ]
    assert [a.structure_id for a in matcher.decide(facts, k=1).assignments] == ["SA"]


def test_offers_ruled_out_by_the_index_still_give_their_reasons(
    make_offer: MakeOffer, make_referential: MakeReferential, make_facts: MakeFacts
) -> None:
    elsewhere = Zone(include=(ZoneEntry(kind=ZoneKind.COMMUNE, code="90033"),))
    referential = make_referential(make_offer("A1", "SA", zone=elsewhere), make_offer("B1", "SB"))
    result = Matcher(referential).decide(make_facts(Stage.ASSIGNATION, act_date=date(2026, 3, 2)))

    [rejected] = result.rejected
    assert rejected.reasons == ("zone 90010 ∉ {COMMUNE 90033}",)
