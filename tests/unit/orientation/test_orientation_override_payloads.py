"""The payloads announcing a structure the CCAPEX added (issue 14): from a decision or a notice's header, and
folded into the decision of the procedure's first notice — always NEW, with the override's assignment id."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import TYPE_CHECKING

from schemas.orientation import AssignmentKind, DecisionTrigger, OrientationDecided
from schemas.stages import Stage
from services.orientation.domain import Referential, decide
from services.orientation.domain.events import (
    ALERT_HEADER_FIELDS,
    LEGAL_DATE_FIELDS,
    OVERRIDE_EXPLANATION,
    alert_header,
    decided_payload,
    override_payload,
    with_overrides,
)
from services.orientation.domain.facts import facts_from_notice

if TYPE_CHECKING:
    from tests.unit.orientation.conftest import MakeNotice

ADDED = uuid.UUID("00000000-0000-4000-8000-0000000000ad")


def _decided(seed: Referential, make_notice: MakeNotice) -> OrientationDecided:
    notice = make_notice(Stage.COMMANDEMENT_PAYER)
    result = decide(facts_from_notice(notice), seed)
    ids = {a.structure_id: uuid.uuid4() for a in result.assignments}
    return decided_payload(notice, result, referentiel_version=1, assignment_ids=ids)


def test_a_notice_s_header_is_what_an_alert_shows_and_nothing_of_the_household(make_notice: MakeNotice) -> None:
    header = alert_header(make_notice(Stage.ASSIGNATION))
    assert tuple(header) == ALERT_HEADER_FIELDS + LEGAL_DATE_FIELDS
    assert (header["stage"], header["commune_name"], header["commune_insee"]) == ("ASSIGNATION", "Belfort", "90010")
    text = json.dumps(header)  # stored as jsonb: JSON values only
    for personal in ("Durand", "Léa", "Mulhouse", "612345678", "lea.durand"):
        assert personal not in text


def test_an_override_from_a_notice_s_header_or_a_decision_announces_each_added_structure(
    seed: Referential, make_notice: MakeNotice
) -> None:
    notice = make_notice(Stage.COMMANDEMENT_PAYER)
    from_notice = override_payload(alert_header(notice), added={"SIAO90": ADDED}, referentiel_version=4)
    decided = _decided(seed, make_notice)
    stored = json.loads(decided.model_dump_json())  # as orientation reads its last decision back
    from_decision = override_payload(stored, added={"SIAO90": ADDED, "BDF90": uuid.uuid4()}, referentiel_version=4)

    for payload in (from_notice, from_decision):
        assert payload.trigger is DecisionTrigger.CCAPEX_OVERRIDE
        assert (payload.procedure_short_ref, payload.stage, payload.referentiel_version) == (
            notice.procedure_short_ref,
            Stage.COMMANDEMENT_PAYER,
            4,
        )
        assert all(a.kind is AssignmentKind.NEW and a.offer_ids == [] for a in payload.assignments)
        assert payload.assignments[0].assignment_id == ADDED
        assert payload.assignments[0].explanation == OVERRIDE_EXPLANATION
    assert [a.structure_id for a in from_decision.assignments] == ["SIAO90", "BDF90"]
    assert from_decision.rules_version == decided.rules_version


def test_an_added_structure_is_asked_to_answer_by_a_day_and_told_the_legal_dates(
    seed: Referential, make_notice: MakeNotice
) -> None:
    notice = make_notice(Stage.COMMANDEMENT_PAYER)
    deadline = notice.notification.derived.commandement_deadline
    assert deadline is not None
    answer_by = date(2026, 3, 20)
    stored = json.loads(_decided(seed, make_notice).model_dump_json())

    for header in (alert_header(notice), stored):
        payload = override_payload(header, added={"SIAO90": ADDED}, referentiel_version=4, respond_by=answer_by)
        assert payload.commandement_deadline == deadline
        assert [a.respond_by for a in payload.assignments] == [answer_by]

    without = override_payload(alert_header(notice), added={"SIAO90": ADDED}, referentiel_version=4)
    assert without.assignments[0].respond_by is None
    folded = with_overrides(_decided(seed, make_notice), {"SIAO90": ADDED}, respond_by=answer_by)
    assert folded.assignments[-1].respond_by == answer_by


def test_a_first_decision_announces_the_added_structures_as_new(seed: Referential, make_notice: MakeNotice) -> None:
    decided = _decided(seed, make_notice)
    assert with_overrides(decided, {}) == decided
    chosen = decided.assignments[0]
    # Matching chose an added structure (it holds the procedure): never told, it becomes NEW, its offers kept.
    held = chosen.model_copy(update={"kind": AssignmentKind.STAGE_UPDATE})
    decided = decided.model_copy(update={"assignments": [held, *decided.assignments[1:]]})

    announced = with_overrides(decided, {chosen.structure_id: chosen.assignment_id, "SIAO90": ADDED})

    assert announced.assignments[0] == held.model_copy(update={"kind": AssignmentKind.NEW})
    assert announced.assignments[1:-1] == decided.assignments[1:]
    added = announced.assignments[-1]
    assert (added.structure_id, added.assignment_id, added.kind, added.offer_ids) == (
        "SIAO90",
        ADDED,
        AssignmentKind.NEW,
        [],
    )
    assert announced.trigger is DecisionTrigger.NOTIFICATION
