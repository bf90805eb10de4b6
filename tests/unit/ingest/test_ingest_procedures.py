"""A batch's deduplication, correction, linking and placement decisions (docs/domain.md §1.2–§1.4),
decided by the pure ``ProcedureBook`` without a database: the intake only loads what it needs and saves
what it decided (tests/integration/ingest checks that the rows and events say the same)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import pytest

from schemas.sources.samples import variant
from services.ingest.domain.linking import ProcedureStatus, link_keys
from services.ingest.domain.normalise import Accepted
from services.ingest.domain.procedures import Duplicate, LatestRevision, Procedure, ProcedureBook, Recorded, lookup

CLOCK = date(2026, 6, 20)
S01 = "s01-cj-commandement-payer"
S04_ASSIGNATION = "s04-cj-assignation"
S04_LATE_COMMANDEMENT = "s04-cj-commandement-payer-late"
S02_SAISINE = "s02-bailleur-saisine-ccapex"
DURAND = {
    "tenants": [{"last_name": "Durand", "first_name": "Léa"}],
    "dwelling__address": {"line1": "12 rue de Mulhouse", "postal_code": "90000", "commune_insee": "90010"},
}
PETIT = {"last_name": "Petit", "first_name": "Jean"}
CLOTURE = {"stage": "CLOTURE", "external_ref": "CL-1", "cloture": {"reason": "DETTE_SOLDEE"}}

Act = tuple[str, dict[str, Any]]
MakeAccepted = Callable[..., Accepted]
Decide = Callable[..., list[Recorded | Duplicate]]


@pytest.fixture(scope="session")
def accepted(run: Callable[..., Any]) -> MakeAccepted:
    """``accepted(name, **changes)``: the example (with ``__``-dotted changes) accepted as a new input."""

    def _accepted(name: str, **changes: Any) -> Accepted:
        return _new_input(run(variant(name, **changes)))

    return _accepted


def _new_input(outcome: Any) -> Accepted:
    """An accepted outcome with a notification id of its own, as each input gets in the intake."""
    assert isinstance(outcome, Accepted), outcome
    notification = outcome.notification.model_copy(update={"notification_id": uuid.uuid4()})
    return dataclasses.replace(outcome, notification=notification)


def _decide(acts: Sequence[Accepted], *, stored: Sequence[Procedure] = ()) -> tuple[ProcedureBook, list[Any]]:
    """Decide ``acts`` in order, in one batch, over ``stored`` procedures (none: an empty database)."""
    book = ProcedureBook(lookup(acts), {}, stored, clock=CLOCK)
    return book, [book.decide(act) for act in acts]


def _added_warnings(decision: Recorded) -> tuple[str, ...]:
    """The warnings deciding added to the normalised record's."""
    return tuple(decision.record.warnings[len(decision.accepted.notification.warnings) :])


@pytest.mark.parametrize(
    ("acts", "expected"),
    [
        # Each act's expected decision: (kind, index of the act whose procedure it joins, revision, warnings).
        pytest.param([(S01, {})], [("recorded", 0, 1, ())], id="new procedure"),
        pytest.param(
            [(S04_LATE_COMMANDEMENT, {}), (S04_ASSIGNATION, {})],
            [("recorded", 0, 1, ()), ("recorded", 0, 1, ())],
            id="same household, next stage",
        ),
        pytest.param(
            [(S01, {}), (S01, {})],
            [("recorded", 0, 1, ()), ("duplicate", 0, 1, ())],
            id="exact duplicate",
        ),
        pytest.param(
            [(S01, {}), (S01, {"debt__amount": 2460}), (S01, {"debt__amount": 2460})],
            [("recorded", 0, 1, ()), ("recorded", 0, 2, ()), ("duplicate", 0, 2, ())],
            id="correction, then the correction re-sent",
        ),
        pytest.param(
            [
                (S01, {}),
                (S01, {"external_ref": "CP-2026-0999", "tenants": [{"last_name": "Petit", "first_name": "J"}]}),
            ],
            [("recorded", 0, 1, ()), ("recorded", 1, 1, ("LINK_LOW_CONFIDENCE",))],
            id="same address, other household: never merged, flagged",
        ),
        pytest.param(
            [(S04_ASSIGNATION, {}), (S04_LATE_COMMANDEMENT, {})],
            [("recorded", 0, 1, ()), ("recorded", 0, 1, ("LATE_EARLIER_STAGE",))],
            id="late earlier stage",
        ),
        pytest.param(
            [(S01, {}), ("s06-cj-commandement-quitter", DURAND)],
            [("recorded", 0, 1, ()), ("recorded", 0, 1, ("STAGE_SKIPPED",))],
            id="stage jump over the legal chain",
        ),
        pytest.param(
            [
                (S04_ASSIGNATION, {}),
                (S04_ASSIGNATION, CLOTURE),
                (S04_LATE_COMMANDEMENT, {"external_ref": "CP-2026-9000", "act_date": "2026-06-02"}),
            ],
            [("recorded", 0, 1, ()), ("recorded", 0, 1, ()), ("recorded", 0, 1, ("REOPENED",))],
            id="ranked act after cloture reopens, even a lower one",
        ),
        pytest.param(
            [
                (S02_SAISINE, {}),
                (S02_SAISINE, {**CLOTURE, "cloture": {"reason": "AUTRE"}}),
                (S02_SAISINE, {"stage": "PLAN_APUREMENT", "external_ref": "TH-PLAN-1"}),
            ],
            [("recorded", 0, 1, ()), ("recorded", 0, 1, ()), ("recorded", 0, 1, ())],
            id="unranked event after cloture does not reopen",
        ),
    ],
)
def test_each_act_of_a_batch_is_decided_against_the_ones_before_it(
    accepted: MakeAccepted, acts: list[Act], expected: list[tuple[str, int, int, tuple[str, ...]]]
) -> None:
    _, decisions = _decide([accepted(name, **changes) for name, changes in acts])
    procedures = [decision.procedure.procedure_id for decision in decisions]
    kinds = {Recorded: "recorded", Duplicate: "duplicate"}
    actual = [
        (
            kinds[type(decision)],
            procedures.index(decision.procedure.procedure_id),
            decision.revision if isinstance(decision, Recorded) else decision.original.revision,
            _added_warnings(decision) if isinstance(decision, Recorded) else (),
        )
        for decision in decisions
    ]
    assert actual == expected


def test_the_same_content_reformatted_is_a_duplicate(run: Callable[..., Any]) -> None:
    """docs/domain.md §1.4: the content is compared, not the bytes (key order, indentation, 2400 vs 2400.0)."""
    document = json.loads(variant(S01))
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=2).encode()
    amount_as_integer = variant(S01, debt__amount=2400)  # the example says 2400.0
    _, decisions = _decide([_new_input(run(payload)) for payload in (variant(S01), reordered, amount_as_integer)])
    assert [type(decision) for decision in decisions] == [Recorded, Duplicate, Duplicate]


def test_the_procedures_state_follows_its_acts(accepted: MakeAccepted) -> None:
    """Highest stage kept by a late act; CLOTURE closes; a ranked act reopens and is counted."""
    book, decisions = _decide(
        [
            accepted(S04_ASSIGNATION),
            accepted(S04_LATE_COMMANDEMENT),
            accepted(S04_ASSIGNATION, **CLOTURE),
            accepted(S04_LATE_COMMANDEMENT, external_ref="CP-2026-9000", act_date="2026-06-02"),
        ]
    )
    assignation, late, closing, reopening = decisions
    assert isinstance(late, Recorded)
    assert isinstance(closing, Recorded)
    assert isinstance(reopening, Recorded)
    assert (late.placement.is_late, late.placement.advanced) == (True, False)
    assert closing.placement.status is ProcedureStatus.CLOSED
    assert (reopening.placement.reopened, reopening.placement.advanced) == (True, True)
    [procedure] = book.created()
    assert (procedure.current_stage, procedure.status, procedure.reopened) == (
        "COMMANDEMENT_PAYER",
        ProcedureStatus.OPEN,
        1,
    )
    assert book.changed() == []  # a procedure the batch created is inserted, not updated
    assert assignation.procedure is procedure


def test_a_low_confidence_link_names_the_open_neighbour_as_candidate(accepted: MakeAccepted) -> None:
    neighbour = accepted(S01, external_ref="CP-2026-0999", tenants=[PETIT])
    _, (first, second) = _decide([accepted(S01), neighbour])
    assert isinstance(first, Recorded)
    assert isinstance(second, Recorded)
    assert (first.link_candidate, second.link_candidate) == (None, first.procedure.procedure_id)


def test_a_closed_neighbour_at_the_address_is_no_candidate(accepted: MakeAccepted) -> None:
    act = accepted(S01, external_ref="CP-2026-0999", tenants=[PETIT])
    closed = _stored(accepted(S01), status=ProcedureStatus.CLOSED)
    _, [decision] = _decide([act], stored=[closed])
    assert isinstance(decision, Recorded)
    assert (decision.procedure.is_new, decision.link_candidate) == (True, None)
    assert "LINK_LOW_CONFIDENCE" not in decision.record.warnings


def _stored(act: Accepted, *, status: ProcedureStatus = ProcedureStatus.OPEN, ref: str | None = None) -> Procedure:
    """The procedure ``act`` would have created, as the repository loads it from an earlier batch."""
    keys = link_keys(act.notification)
    return dataclasses.replace(
        Procedure.create(act.notification, keys),
        short_ref="90-2026-000007",
        procedure_ref=ref,
        current_stage="COMMANDEMENT_PAYER",
        current_rank=1,
        status=status,
        is_new=False,
    )


def test_a_stored_procedure_of_the_household_is_linked_and_written_back(accepted: MakeAccepted) -> None:
    stored = _stored(accepted(S01))
    book, [decision] = _decide([accepted("s06-cj-commandement-quitter", **DURAND)], stored=[stored])
    assert isinstance(decision, Recorded)
    assert decision.procedure is stored
    assert "STAGE_SKIPPED" in decision.record.warnings
    assert (book.created(), book.changed()) == ([], [stored])
    assert stored.current_stage == "COMMANDEMENT_QUITTER"


def test_the_emitters_procedure_reference_links_before_the_household(accepted: MakeAccepted) -> None:
    """Another household's name, but the emitter's own reference of a stored procedure: that procedure."""
    act = accepted(S01, procedure_ref="CJ-DOS-2026-17", tenants=[{"last_name": "Autre", "first_name": "Nom"}])
    by_ref = _stored(accepted(S04_ASSIGNATION), ref="CJ-DOS-2026-17")
    _, [decision] = _decide([act], stored=[_stored(accepted(S01)), by_ref])
    assert decision.procedure is by_ref


def test_a_stored_revision_makes_the_act_a_duplicate_or_a_correction(accepted: MakeAccepted) -> None:
    original = accepted(S01)
    stored = _stored(original)
    _, [first] = _decide([original])
    assert isinstance(first, Recorded)
    latest = {original.idempotency_key: _latest(first, stored)}
    again, corrected = accepted(S01), accepted(S01, debt__amount=2460)
    book = ProcedureBook(lookup([again, corrected]), latest, [stored], clock=CLOCK)
    duplicate, correction = book.decide(again), book.decide(corrected)
    assert isinstance(duplicate, Duplicate)
    assert isinstance(correction, Recorded)
    assert (duplicate.procedure, duplicate.original.revision) == (stored, 1)
    assert (correction.procedure, correction.revision, correction.is_correction) == (stored, 2, True)


def _latest(decision: Recorded, stored: Procedure) -> LatestRevision:
    """``decision``'s revision as the repository reads it back, stored under ``stored``."""
    return LatestRevision(
        stored.procedure_id,
        decision.revision,
        decision.accepted.content_sha256,
        decision.record.notification_id,
        tuple(decision.record.warnings),
    )


def test_an_earlier_saisine_bounds_the_earliest_assignation_date(accepted: MakeAccepted) -> None:
    """docs/domain.md §2.5: for a bailleur social, no assignation before 2 months after its CCAPEX saisine."""
    household_of_s02: dict[str, Any] = {
        "act_date": "2026-05-10",
        "tenants": [{"last_name": "Bernard", "first_name": "Inès"}],
        "dwelling__address": {"line1": "3 rue des Tilleuls", "postal_code": "90300", "commune_insee": "90075"},
        "landlord": {"type": "BAILLEUR_SOCIAL", "siren": "999900001"},
    }
    _, decisions = _decide(
        [
            accepted(S01, external_ref="CP-2026-0510", **household_of_s02),
            accepted(S02_SAISINE),
            accepted(S01, external_ref="CP-2026-0511", **household_of_s02),
        ]
    )
    alone, saisine, after = decisions
    assert isinstance(alone, Recorded)
    assert isinstance(saisine, Recorded)
    assert isinstance(after, Recorded)
    assert alone.record.derived.earliest_assignation_date == date(2026, 6, 21)  # 10 May + 6 weeks
    assert saisine.procedure is alone.procedure is after.procedure
    assert after.record.derived.earliest_assignation_date == date(2026, 7, 4)  # 4 May + 2 months


def test_adapter_warnings_come_before_the_linking_ones(accepted: MakeAccepted) -> None:
    first, late = accepted(S04_ASSIGNATION), accepted(S04_LATE_COMMANDEMENT)
    book = ProcedureBook(lookup([first, late]), {}, (), clock=CLOCK)
    book.decide(first)
    decision = book.decide(late, ("AMOUNT_COERCED",))
    assert isinstance(decision, Recorded)
    assert _added_warnings(decision) == ("AMOUNT_COERCED", "LATE_EARLIER_STAGE")


@pytest.mark.parametrize(("number", "short_ref"), [(42, "90-2026-000042"), (1_234_567, "90-2026-1234567")])
def test_a_new_procedure_is_numbered_per_departement_and_year(
    accepted: MakeAccepted, number: int, short_ref: str
) -> None:
    """Beyond 6 digits the number grows rather than being cut into a duplicate."""
    _, [decision] = _decide([accepted(S01)])
    decision.procedure.number(number)
    assert decision.procedure.short_ref == short_ref


def test_the_lookup_names_every_key_to_lock_and_read(accepted: MakeAccepted) -> None:
    acts = [accepted(S01), accepted(S01), accepted(S04_ASSIGNATION)]
    found = lookup(acts)
    keys = [link_keys(act.notification) for act in acts]
    assert found.idempotency_keys == {act.idempotency_key for act in acts}
    assert found.household_keys == {k.link_key for k in keys}
    assert found.address_keys == {k.address_key for k in keys}
    assert found.refs == {ref for act in acts if (ref := act.notification.source.procedure_ref)}
    assert set(found.lock_keys()) == found.idempotency_keys | found.household_keys | found.refs | found.address_keys
