"""Procedure placement (docs/domain.md §1.2) and linking keys (§1.3), as pure decisions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from schemas.procedure import LandlordType, ProcedureNotification
from schemas.stages import Stage, stage_rank
from services.ingest.domain.linking import (
    ProcedureState,
    ProcedureStatus,
    fold,
    link_keys,
    place,
    with_saisine,
)

OPEN, CLOSED = ProcedureStatus.OPEN, ProcedureStatus.CLOSED


def _rank(stage: Stage) -> int:
    rank = stage_rank(stage)
    assert rank is not None
    return rank


def _state(current: Stage | None, status: ProcedureStatus = OPEN, *, is_new: bool = False) -> ProcedureState:
    return ProcedureState(0 if current is None else _rank(current), status, is_new)


@pytest.mark.parametrize(
    ("state", "stage", "expected"),
    [
        # (is_late, advanced, reopened, skipped, status after)
        (ProcedureState.new(), Stage.ASSIGNATION, (False, True, False, (), OPEN)),
        (_state(Stage.ASSIGNATION), Stage.COMMANDEMENT_PAYER, (True, False, False, (), OPEN)),
        (_state(Stage.AUDIENCE), Stage.AUDIENCE, (False, False, False, (), OPEN)),  # a renvoi
        (_state(Stage.COMMANDEMENT_PAYER), Stage.ASSIGNATION, (False, True, False, (), OPEN)),
        (
            _state(Stage.COMMANDEMENT_PAYER),
            Stage.COMMANDEMENT_QUITTER,
            (False, True, False, (Stage.ASSIGNATION, Stage.DECISION), OPEN),
        ),
        (
            _state(Stage.SAISINE_CCAPEX_BAILLEUR),
            Stage.ASSIGNATION,
            (False, True, False, (Stage.COMMANDEMENT_PAYER,), OPEN),
        ),
        # Audience, DSF and signification may never reach us: not "skipped".
        (_state(Stage.ASSIGNATION), Stage.DECISION, (False, True, False, (), OPEN)),
        (_state(Stage.DECISION), Stage.COMMANDEMENT_QUITTER, (False, True, False, (), OPEN)),
        # A procedure known only by unranked events, or created by this act, has nothing to skip from.
        (_state(None), Stage.DECISION, (False, True, False, (), OPEN)),
        (ProcedureState.new(), Stage.DEMANDE_CFP, (False, True, False, (), OPEN)),
        # CLOTURE closes; a ranked act afterwards reopens, even a lower one; an unranked one does not.
        (_state(Stage.ASSIGNATION), Stage.CLOTURE, (False, False, False, (), CLOSED)),
        (_state(Stage.ASSIGNATION, CLOSED), Stage.COMMANDEMENT_PAYER, (False, True, True, (), OPEN)),
        (_state(Stage.ASSIGNATION, CLOSED), Stage.PLAN_APUREMENT, (False, False, False, (), CLOSED)),
        (_state(Stage.ASSIGNATION, CLOSED), Stage.CLOTURE, (False, False, False, (), CLOSED)),
        (_state(Stage.ASSIGNATION), Stage.PROTOCOLE_COHESION_SOCIALE, (False, False, False, (), OPEN)),
    ],
)
def test_placement(state: ProcedureState, stage: Stage, expected: tuple[object, ...]) -> None:
    placement = place(state, stage)
    assert (placement.is_late, placement.advanced, placement.reopened, placement.skipped, placement.status) == expected
    rank = stage_rank(stage)
    assert placement.current_rank == (rank if placement.advanced else state.current_rank)


def test_placement_warnings_follow_the_flags() -> None:
    assert place(_state(Stage.ASSIGNATION), Stage.COMMANDEMENT_PAYER).warnings == ("LATE_EARLIER_STAGE",)
    assert place(_state(Stage.COMMANDEMENT_PAYER), Stage.DEMANDE_CFP).warnings == ("STAGE_SKIPPED",)
    assert place(_state(Stage.DECISION, CLOSED), Stage.COMMANDEMENT_PAYER).warnings == ("REOPENED",)
    assert place(ProcedureState.new(), Stage.COMMANDEMENT_PAYER).warnings == ()


def test_fold_ignores_case_accents_and_punctuation() -> None:
    assert fold("Rue de  l’Église") == fold("RUE DE L EGLISE") == "rue de l eglise"
    assert fold("Léa-Marie") == fold("LEA MARIE")
    assert fold("12 rue de Mulhouse") != fold("12 rue de Mulhouse bis")


def test_link_keys_identify_the_household_not_its_spelling(accept: Callable[[str], ProcedureNotification]) -> None:
    record = accept("s01-cj-commandement-payer")

    def variant(line1: str, last_name: str, first_name: str) -> ProcedureNotification:
        address = record.dwelling.address.model_copy(update={"line1": line1})
        tenant = record.household.tenants[0].model_copy(update={"last_name": last_name, "first_name": first_name})
        return record.model_copy(
            update={
                "dwelling": record.dwelling.model_copy(update={"address": address}),
                "household": record.household.model_copy(update={"tenants": [tenant]}),
            }
        )

    respelled = variant("12, RUE DE MULHOUSE", "DURAND", "Lea")
    neighbour = variant("12 rue de Mulhouse", "Petit", "Léa")
    assert link_keys(respelled) == link_keys(record)
    assert link_keys(neighbour).address_key == link_keys(record).address_key
    assert link_keys(neighbour).link_key != link_keys(record).link_key
    assert "Durand" not in link_keys(record).link_key


@pytest.mark.parametrize(
    ("landlord", "saisine", "expected"),
    [
        (LandlordType.BAILLEUR_SOCIAL, date(2026, 3, 1), date(2026, 5, 1)),  # saisine + 2 months beats 13 April
        (LandlordType.BAILLEUR_SOCIAL, date(2026, 1, 1), date(2026, 4, 13)),  # the commandement's 6 weeks beat it
        (LandlordType.PERSONNE_MORALE_PRIVEE, date(2026, 3, 1), date(2026, 5, 1)),
        (LandlordType.SCI_FAMILIALE, date(2026, 3, 1), date(2026, 4, 13)),  # not bound by the saisine
        (LandlordType.PERSONNE_PHYSIQUE, date(2026, 3, 1), date(2026, 4, 13)),
        (LandlordType.BAILLEUR_SOCIAL, None, date(2026, 4, 13)),
    ],
)
def test_a_known_saisine_bounds_the_earliest_assignation_of_legal_persons(
    accept: Callable[[str], ProcedureNotification], landlord: LandlordType, saisine: date | None, expected: date
) -> None:
    record = accept("s01-cj-commandement-payer")  # commandement of 2 March 2026, deadline 13 April
    record = record.model_copy(update={"landlord": record.landlord.model_copy(update={"type": landlord})})
    updated = with_saisine(record, saisine, clock=date(2026, 3, 2))
    assert updated.derived.earliest_assignation_date == expected
    assert updated.derived.commandement_deadline == date(2026, 4, 13)
