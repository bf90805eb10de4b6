"""What orientation.decided carries for the alerts a partner acts on (issue 17): the offers' names, the day
to answer by, the legal dates, and under fallback F1 the offers that came closest — by référentiel name and
kind of failed clause, never a household fact."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from schemas.orientation import AssignmentKind, ClosestOffer, ExclusionReason, OrientationDecided
from schemas.procedure import Allocataire, LandlordType, Parc, ProcedureNotice
from schemas.stages import Stage
from services.orientation.domain import Referential, decide
from services.orientation.domain.closest import closest_offers, exclusion_reasons
from services.orientation.domain.events import decided_payload
from services.orientation.domain.matching import Rejected, removed_reason

if TYPE_CHECKING:
    from tests.unit.orientation.conftest import MakeFacts, MakeNotice

# S-05 (docs/domain.md §9.5): an unpaid rent in Giromagny, no offer matches.
S05: dict[str, Any] = {
    "stage": Stage.IMPAYE_CONSTATE,
    "commune": "90052",
    "parc": Parc.PRIVE,
    "landlord_type": LandlordType.PERSONNE_MORALE_PRIVEE,
    "debt": Decimal("700.00"),
    "months_of_rent": Decimal("1.08"),
    "allocataire": Allocataire.NON,
}


def _payload(notice: ProcedureNotice, seed: Referential, facts: Any, **options: Any) -> Any:
    result = decide(facts, seed)
    ids = {a.structure_id: uuid.uuid4() for a in result.assignments}
    return decided_payload(notice, result, referentiel_version=1, assignment_ids=ids, **options)


def test_f1_lists_the_three_closest_offers_by_name_and_kind_of_failed_clause(
    seed: Referential, make_facts: MakeFacts, make_notice: MakeNotice
) -> None:
    payload = _payload(make_notice(Stage.IMPAYE_CONSTATE), seed, make_facts(**S05), referential=seed)
    assert payload.fallback_used
    closest = payload.closest_offers
    assert len(closest) == 3
    names = {offer.id: offer.nom for offer in seed.offers}
    structures = {structure.id: structure.nom for structure in seed.structures}
    for offer in closest:
        assert offer.offer_name == names[offer.offer_id]
        assert offer.structure_name == structures[offer.structure_id]
    # S-05's closest: one failed clause each. The CAF's is on the household (not allocataire): said as
    # such, never which; the Département's is the stage.
    by_id = {offer.offer_id: offer.excluded_by for offer in closest}
    assert by_id["CAF90-MAINTIEN"] == [ExclusionReason.HOUSEHOLD]
    assert by_id["CD90-ACCOMP"] == [ExclusionReason.STAGE]
    rejected = {r.offer_id: len(r.reasons) for r in decide(make_facts(**S05), seed).rejected}
    assert max(rejected[o.offer_id] for o in closest) <= min(
        count for offer_id, count in rejected.items() if offer_id not in by_id
    )
    # The contract holds it (bounds and codes), and nothing of the household: no amount, no clause's value.
    wire = OrientationDecided.model_validate_json(payload.model_dump_json())
    text = wire.model_dump_json(include={"closest_offers"})
    assert "700" not in text
    assert "NON" not in text


def test_a_matched_decision_lists_no_closest_offer_and_names_each_assignments_offers(
    seed: Referential, make_facts: MakeFacts, make_notice: MakeNotice
) -> None:
    payload = _payload(make_notice(), seed, make_facts(stage=Stage.COMMANDEMENT_PAYER), referential=seed)
    assert not payload.fallback_used
    assert payload.closest_offers == []
    names = {offer.id: offer.nom for offer in seed.offers}
    for assignment in payload.assignments:
        assert assignment.offer_names == [names[offer_id] for offer_id in assignment.offer_ids]
    # Without the référentiel (older callers), neither names nor closest offers.
    bare = _payload(make_notice(), seed, make_facts(stage=Stage.COMMANDEMENT_PAYER))
    assert all(a.offer_names == [] for a in bare.assignments)


def test_respond_by_goes_to_new_assignments_and_the_legal_dates_come_from_the_act(
    seed: Referential, make_facts: MakeFacts, make_notice: MakeNotice
) -> None:
    notice = make_notice()
    payload = _payload(notice, seed, make_facts(stage=Stage.COMMANDEMENT_PAYER), respond_by=date(2026, 3, 9))
    assert {a.kind for a in payload.assignments} == {AssignmentKind.NEW}
    assert all(a.respond_by == date(2026, 3, 9) for a in payload.assignments)
    assert payload.commandement_deadline == notice.notification.derived.commandement_deadline
    assert payload.hearing_date == notice.notification.act.hearing_date


@pytest.mark.parametrize(
    ("reasons", "kinds"),
    [
        (("zone: commune 90052 excluded", "zone 90052 ∉ (COMMUNE 90010,)"), [ExclusionReason.ZONE]),
        (("stage IMPAYE_CONSTATE ∉ {SIGNALEMENT_CAF…DECISION_CFP}",), [ExclusionReason.STAGE]),
        (("parc PRIVE ∉ {SOCIAL}",), [ExclusionReason.PARC]),
        (("landlord_type PERSONNE_PHYSIQUE ∉ {BAILLEUR_SOCIAL}", "landlord_siren ∉ {…}"), [ExclusionReason.BAILLEUR]),
        (
            ("structure S1 ARCHIVED", "offer SUSPENDED", "eligibility expired on 2025-12-31"),
            [ExclusionReason.UNAVAILABLE],
        ),
        ((removed_reason("CCAS-BELFORT"), "stage X ∉ {Y}"), [ExclusionReason.REMOVED, ExclusionReason.STAGE]),
        # Household clauses: one kind, whichever failed; an unknown text tells the least.
        (
            ("debt above ceiling 6000", "resources above ceiling 1500", "children below minimum 1"),
            [ExclusionReason.HOUSEHOLD],
        ),
        (("allocataire NON ∉ {OUI}", "surendettement NON (required)", "something new"), [ExclusionReason.HOUSEHOLD]),
    ],
)
def test_rejection_texts_become_kinds(reasons: tuple[str, ...], kinds: list[ExclusionReason]) -> None:
    assert exclusion_reasons(reasons) == kinds


def test_closest_ranks_available_offers_first_then_fewest_failures(make_offer: Any, make_referential: Any) -> None:
    offers = [make_offer(f"O{n}", structure_id="S1") for n in range(4)]
    referential = make_referential(*offers)
    rejected = (
        Rejected("O0", ("offer ARCHIVED",)),
        Rejected("O1", ("stage A ∉ {B}", "zone 1 ∉ 2")),
        Rejected("O2", ("debt above ceiling 1",)),
        Rejected("O3", ("parc PRIVE ∉ {SOCIAL}",)),
        Rejected("UNKNOWN-OFFER", ("zone 1 ∉ 2",)),  # not in this référentiel: skipped
    )
    assert [c.offer_id for c in closest_offers(rejected, referential)] == ["O2", "O3", "O1"]
    assert closest_offers(rejected, referential, limit=5)[-1] == ClosestOffer(
        offer_id="O0",
        offer_name="Offre O0",
        structure_id="S1",
        structure_name="Structure S1",
        excluded_by=[ExclusionReason.UNAVAILABLE],
    )
