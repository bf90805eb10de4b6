"""The sortie-de-trêve reminder rules (docs/domain.md §7, scenario S-06), without I/O."""

from __future__ import annotations

import uuid
from datetime import date
from itertools import count

import pytest

from schemas.orientation import (
    AlsoEligibleOffer,
    AssignmentKind,
    DecidedAssignment,
    DecisionTrigger,
    OrientationDecided,
)
from schemas.procedure import Urgency
from schemas.referential import RecordStatus
from schemas.stages import Stage
from services.orientation.domain import Referential
from services.orientation.domain.truce import AddedStructure, structures_to_add, truce_end_ahead, truce_end_payload

TRUCE_END = date(2026, 4, 1)


def _assignment(structure_id: str, *offers: str, kind: AssignmentKind = AssignmentKind.NEW) -> DecidedAssignment:
    return DecidedAssignment(
        assignment_id=uuid.uuid4(),
        structure_id=structure_id,
        offer_ids=list(offers),
        kind=kind,
        mandatory=False,
        priority=50,
        over_capacity=False,
        matched_rules=[f"{offer}.stages" for offer in offers],
        explanation=f"matched on {', '.join(offers)}",
    )


def _s06_decision(*also: AlsoEligibleOffer) -> OrientationDecided:
    """S-06's decision: a CQL served on 2025-12-10, earliest expulsion 1 April, three structures kept."""
    return OrientationDecided(
        procedure_id=uuid.uuid4(),
        procedure_short_ref="90-2025-000006",
        notification_id=uuid.uuid4(),
        stage=Stage.COMMANDEMENT_QUITTER,
        urgency=Urgency.NORMAL,
        commune_insee="90010",
        commune_name="Belfort",
        earliest_expulsion_date=TRUCE_END,
        is_correction=True,
        referentiel_version=1,
        rules_version="2026-03",
        assignments=[
            _assignment("CCAS-BELFORT", "CCAS-BELFORT"),
            _assignment("CD90", "CD90-ACCOMP"),
            _assignment("TH90", "TH-PROTOCOLE"),
        ],
        also_eligible=list(also) or [AlsoEligibleOffer(offer_id="SIAO90", structure_id="SIAO90", unknowns=[])],
        fallback_used=False,
    )


def _holding(decision: OrientationDecided) -> dict[str, uuid.UUID]:
    return {a.structure_id: a.assignment_id for a in decision.assignments}


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 2, 28), None),
        (date(2028, 2, 29), None),
        (date(2026, 3, 1), TRUCE_END),
        (date(2026, 3, 31), TRUCE_END),
        (date(2026, 4, 1), None),
        (date(2026, 11, 1), None),
        (date(2027, 3, 15), date(2027, 4, 1)),
    ],
)
def test_reminders_are_due_in_march_for_the_first_of_april(today: date, expected: date | None) -> None:
    assert truce_end_ahead(today) == expected


def test_s06_adds_the_siao_that_was_eligible_but_not_kept(seed: Referential) -> None:
    decision = _s06_decision()
    added = structures_to_add(
        decision, structures=seed.structures_by_id(), holding=_holding(decision), removed=frozenset()
    )
    assert added == [AddedStructure("SIAO90", ("SIAO90",), over_capacity=False)]


def test_only_siao_and_departement_structures_are_added_and_their_offers_merge(seed: Referential) -> None:
    also = (
        AlsoEligibleOffer(offer_id="PJ90-INFO", structure_id="CDAD90", unknowns=[]),
        AlsoEligibleOffer(offer_id="CD90-ACCOMP", structure_id="CD90", unknowns=[]),
        AlsoEligibleOffer(offer_id="CD90-DSF", structure_id="CD90", unknowns=[], over_capacity=True),
        AlsoEligibleOffer(offer_id="SIAO90", structure_id="SIAO90", unknowns=[]),
    )
    decision = _s06_decision(*also)
    added = structures_to_add(decision, structures=seed.structures_by_id(), holding={}, removed=frozenset())
    assert added == [
        AddedStructure("CD90", ("CD90-ACCOMP", "CD90-DSF"), over_capacity=True),
        AddedStructure("SIAO90", ("SIAO90",), over_capacity=False),
    ]


def test_a_structure_holding_removed_or_inactive_is_not_added(seed: Referential) -> None:
    decision = _s06_decision()
    structures = seed.structures_by_id()
    assert structures_to_add(decision, structures=structures, holding={}, removed=frozenset())
    assert not structures_to_add(decision, structures=structures, holding={"SIAO90": uuid.uuid4()}, removed=frozenset())
    assert not structures_to_add(decision, structures=structures, holding={}, removed=frozenset({"SIAO90"}))
    archived = structures | {"SIAO90": structures["SIAO90"].model_copy(update={"status": RecordStatus.ARCHIVED})}
    assert not structures_to_add(decision, structures=archived, holding={}, removed=frozenset())
    gone = {sid: s for sid, s in structures.items() if sid != "SIAO90"}
    assert not structures_to_add(decision, structures=gone, holding={}, removed=frozenset())


def test_the_reminder_repeats_the_last_decision_for_its_holders_and_opens_the_added() -> None:
    decision = _s06_decision()
    holding = _holding(decision)
    siao_id = uuid.uuid4()
    payload = truce_end_payload(
        decision,
        truce_end=TRUCE_END,
        holding=holding,
        added=[AddedStructure("SIAO90", ("SIAO90",), over_capacity=False)],
        new_id=lambda: siao_id,
        referentiel_version=4,
    )
    assert payload is not None
    assert payload.trigger is DecisionTrigger.WINTER_TRUCE_END
    assert (payload.procedure_id, payload.procedure_short_ref, payload.notification_id, payload.stage) == (
        decision.procedure_id,
        decision.procedure_short_ref,
        decision.notification_id,
        decision.stage,
    )
    assert (payload.urgency, payload.commune_name, payload.earliest_expulsion_date) == (
        Urgency.NORMAL,
        "Belfort",
        TRUCE_END,
    )
    assert not payload.is_correction
    assert payload.referentiel_version == 4
    assert payload.also_eligible == []
    assert [(a.structure_id, a.assignment_id, a.kind) for a in payload.assignments] == [
        ("CCAS-BELFORT", holding["CCAS-BELFORT"], AssignmentKind.STAGE_UPDATE),
        ("CD90", holding["CD90"], AssignmentKind.STAGE_UPDATE),
        ("TH90", holding["TH90"], AssignmentKind.STAGE_UPDATE),
        ("SIAO90", siao_id, AssignmentKind.NEW),
    ]
    cd90 = payload.assignments[1]
    assert (cd90.offer_ids, cd90.matched_rules) == (["CD90-ACCOMP"], ["CD90-ACCOMP.stages"])
    assert "2026-04-01" in payload.assignments[3].explanation


def test_structures_holding_the_procedure_since_an_override_are_reminded_after_the_others() -> None:
    decision = _s06_decision()
    added_by_ccapex = uuid.uuid4()
    holding = {"ADIL90": added_by_ccapex, "TH90": uuid.uuid4(), "CCAS-BELFORT": uuid.uuid4()}
    payload = truce_end_payload(
        decision, truce_end=TRUCE_END, holding=holding, added=[], new_id=uuid.uuid4, referentiel_version=1
    )
    assert payload is not None
    assert [a.structure_id for a in payload.assignments] == ["CCAS-BELFORT", "TH90", "ADIL90"]
    assert payload.assignments[2].offer_ids == []


def test_nobody_to_remind_gives_no_decision() -> None:
    ids = count()
    payload = truce_end_payload(
        _s06_decision(),
        truce_end=TRUCE_END,
        holding={},
        added=[],
        new_id=lambda: uuid.UUID(int=next(ids)),
        referentiel_version=1,
    )
    assert payload is None
