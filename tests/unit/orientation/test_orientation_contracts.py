"""Event payloads built from decisions and from the référentiel, and the contracts they satisfy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from schemas.envelope import new_envelope_fields
from schemas.orientation import (
    EXPLANATION_MAX_LENGTH,
    AssignmentKind,
    OrientationDecided,
    OrientationDecidedEvent,
    OrientationUnmatchedEvent,
)
from schemas.procedure import ProcedureNotice
from schemas.referential import ReferentialChangedEvent
from schemas.stages import Stage, stages_between
from services.orientation.domain import (
    Assignment,
    MatchResult,
    Referential,
    decide,
    decided_payload,
    facts_from_notice,
    structure_records,
    unmatched_payload,
)

MakeNotice = Callable[..., ProcedureNotice]
# Everything personal the S-01 notice carries: none of it may leave in orientation's events.
PERSONAL = ["Durand", "Léa", "Mulhouse", "+33612345678", "lea.durand", "Bernard", "Lefort", "90000"]


def _ids(result: MatchResult) -> dict[str, uuid.UUID]:
    return {a.structure_id: uuid.uuid5(uuid.NAMESPACE_URL, a.structure_id) for a in result.assignments}


def test_decided_event_carries_what_an_alert_shows_and_no_personal_data(
    make_notice: MakeNotice, seed: Referential
) -> None:
    notice = make_notice()
    result = decide(facts_from_notice(notice), seed)
    payload = decided_payload(notice, result, referentiel_version=7, assignment_ids=_ids(result))
    event = OrientationDecidedEvent(**new_envelope_fields("orientation"), payload=payload)
    wire = event.model_dump_json()

    assert OrientationDecidedEvent.model_validate_json(wire) == event
    assert (payload.procedure_short_ref, payload.stage, payload.commune_name, payload.urgency) == (
        "EXP-90-0001",
        Stage.COMMANDEMENT_PAYER,
        "Belfort",
        "NORMAL",
    )
    assert [(a.structure_id, a.kind) for a in payload.assignments] == [
        ("CCAS-BELFORT", AssignmentKind.NEW),
        ("CDAD90", AssignmentKind.NEW),
        ("CD90", AssignmentKind.NEW),
    ]
    assert [o.offer_id for o in payload.also_eligible] == ["CAF90-MAINTIEN", "FSL90-MAINTIEN"]
    assert (payload.referentiel_version, payload.rules_version, payload.fallback_used) == (7, "orientation-1", False)
    # The notifier's end-to-end latency starts when ingest received the act (schema 1.2).
    assert payload.act_received_at == notice.notification.source.received_at
    assert not [word for word in PERSONAL if word in wire]


def test_no_unmatched_event_when_an_offer_matched(make_notice: MakeNotice, seed: Referential) -> None:
    notice = make_notice()

    assert unmatched_payload(notice, decide(facts_from_notice(notice), seed)) is None


def test_unmatched_event_lists_every_offer_with_its_reasons(make_notice: MakeNotice, seed: Referential) -> None:
    notice = make_notice(Stage.PLAN_APUREMENT)  # a side event no seed offer covers
    result = decide(facts_from_notice(notice), seed)
    payload = unmatched_payload(notice, result)
    assert payload is not None
    event = OrientationUnmatchedEvent(**new_envelope_fields("orientation"), payload=payload)

    assert OrientationUnmatchedEvent.model_validate_json(event.model_dump_json()) == event
    assert payload.fallback_structure_id == "CCAPEX90"
    assert {r.offer_id for r in payload.reasons} == {o.id for o in seed.offers}
    assert all(any(text.startswith("stage PLAN_APUREMENT ∉ {") for text in r.reasons) for r in payload.reasons)
    decided = decided_payload(notice, result, referentiel_version=1, assignment_ids=_ids(result))
    assert (decided.fallback_used, decided.assignments[0].offer_ids) == (True, [])


def test_every_assignment_needs_an_id(make_notice: MakeNotice, seed: Referential) -> None:
    notice = make_notice()

    with pytest.raises(KeyError):
        decided_payload(notice, decide(facts_from_notice(notice), seed), referentiel_version=1, assignment_ids={})


def test_a_long_explanation_is_cut_to_the_contract_bound(make_notice: MakeNotice) -> None:
    long = Assignment("S1", ("O1",), False, 0, AssignmentKind.NEW, False, (), "x" * (EXPLANATION_MAX_LENGTH + 10))
    result = MatchResult((long,), (), (), fallback_used=False)

    payload = decided_payload(make_notice(), result, referentiel_version=1, assignment_ids={"S1": uuid.uuid4()})

    assert len(payload.assignments[0].explanation) == EXPLANATION_MAX_LENGTH
    assert payload.assignments[0].explanation.endswith("…")


def test_referential_records_one_per_structure(seed: Referential) -> None:
    records = {r.structure_id: r for r in structure_records(seed, referentiel_version=3)}

    assert list(records) == [s.id for s in seed.structures]
    assert [sid for sid, r in records.items() if r.default_referent] == ["CCAPEX90"]
    assert [(o.id, o.stages, o.mandatory_stages) for o in records["CD90"].offers] == [
        ("CD90-DSF", [Stage.ASSIGNATION, Stage.AUDIENCE], [Stage.ASSIGNATION, Stage.AUDIENCE]),
        ("CD90-ACCOMP", [s for s in Stage if s in stages_between(Stage.SIGNALEMENT_CAF, Stage.DECISION_CFP)], []),
    ]
    assert records["MEDIATION-SUD"].contacts[0].mobile == "+33600000001"
    assert {r.referentiel_version for r in records.values()} == {3}


def test_referential_changed_event_is_keyed_by_structure(seed: Referential) -> None:
    record = structure_records(seed, referentiel_version=3)[0]
    event = ReferentialChangedEvent(**new_envelope_fields("orientation"), payload=record)

    assert event.key == "CD90"
    assert ReferentialChangedEvent.model_validate_json(event.model_dump_json()) == event


def test_event_types_are_pinned(seed: Referential) -> None:
    record = structure_records(seed, referentiel_version=3)[0]
    fields = {**new_envelope_fields("orientation"), "event_type": "orientation.decided", "payload": record}

    with pytest.raises(ValidationError):
        ReferentialChangedEvent.model_validate(fields)


def test_payloads_refuse_unknown_fields(make_notice: MakeNotice, seed: Referential) -> None:
    notice = make_notice()
    result = decide(facts_from_notice(notice), seed)
    data = decided_payload(notice, result, referentiel_version=1, assignment_ids=_ids(result)).model_dump(mode="json")

    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        OrientationDecided.model_validate_json(json.dumps({**data, "tenant_name": "Durand"}))


def test_a_decided_event_before_1_2_decodes_without_the_acts_reception_time(
    make_notice: MakeNotice, seed: Referential
) -> None:
    notice = make_notice()
    result = decide(facts_from_notice(notice), seed)
    payload = decided_payload(notice, result, referentiel_version=1, assignment_ids=_ids(result))
    wire = OrientationDecidedEvent(**new_envelope_fields("orientation"), payload=payload).model_dump(mode="json")
    wire["schema_version"] = "1.1"
    del wire["payload"]["act_received_at"]
    assert OrientationDecidedEvent.model_validate_json(json.dumps(wire)).payload.act_received_at is None
