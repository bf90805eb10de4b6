"""The préfecture as an emitter: its CFP acts in the act format, and every other stage refused with a code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from schemas import topics
from schemas.procedure import CfpDecision, EmitterType, ProcedureNotification, SourceSystem, Urgency
from schemas.registry import RAW_TOPIC_FORMATS
from schemas.sources import CJ_ACT_FORMAT, CjAct
from schemas.stages import Stage
from services.ingest.domain.emitter_stages import allowed_stages, may_send
from services.ingest.domain.normalise import Accepted, Emitter
from services.ingest.domain.rejections import Rejected
from services.ingest.emitters import load_emitters
from services.ingest.submissions import api_source_system

Run = Callable[..., Accepted | Rejected]
Example = Callable[[str], dict[str, Any]]
EMITTERS_FILE = Path(__file__).resolve().parents[3] / "deploy" / "emitters" / "emitters.yaml"
PREFECTURE_ID = "13000090000015"
PREFECTURE_DEV_KEY = "prevex-dev-key-prefecture-0004"  # published in docs/ingest.md; never deployed
DEMANDE = "prefecture-demande-cfp"
DECISION = "prefecture-decision-cfp"
NOT_ALLOWED = "prefecture-assignation-not-allowed"
FORBIDDEN = sorted(CjAct.STAGES - {Stage.DEMANDE_CFP, Stage.DECISION_CFP})


def codes(outcome: Accepted | Rejected) -> list[tuple[str, str | None]]:
    assert isinstance(outcome, Rejected), outcome
    return [(error.code, error.field) for error in outcome.codes]


def test_the_registry_knows_the_prefecture_by_its_kafka_key_and_its_api_key() -> None:
    registry = load_emitters(EMITTERS_FILE)
    by_key = registry.get(PREFECTURE_ID)
    assert by_key is not None
    assert by_key.emitter_type is EmitterType.PREFECTURE
    assert registry.authenticate(PREFECTURE_DEV_KEY) == by_key
    assert registry.authenticate("prevex-dev-key-prefecture-0005") is None


def test_the_prefecture_sends_the_act_format_on_a_raw_topic_of_its_own() -> None:
    assert topics.RAW_PREFECTURE in topics.ALL_TOPICS
    assert RAW_TOPIC_FORMATS[topics.RAW_PREFECTURE] == CJ_ACT_FORMAT
    prefecture = Emitter(PREFECTURE_ID, EmitterType.PREFECTURE, "Préfecture fictive")
    assert api_source_system(prefecture) is SourceSystem.EXPLOC_EXPORT


def test_only_the_prefecture_is_restricted_within_its_formats() -> None:
    assert allowed_stages(EmitterType.PREFECTURE, CjAct.STAGES) == {Stage.DEMANDE_CFP, Stage.DECISION_CFP}
    assert allowed_stages(EmitterType.COMMISSAIRE_JUSTICE, CjAct.STAGES) == CjAct.STAGES
    assert all(may_send(EmitterType.COMMISSAIRE_JUSTICE, stage) for stage in CjAct.STAGES)
    assert not any(may_send(EmitterType.PREFECTURE, stage) for stage in FORBIDDEN)


def _accepted(outcome: Accepted | Rejected) -> ProcedureNotification:
    assert isinstance(outcome, Accepted), outcome
    return outcome.notification


def test_a_cfp_request_received_by_the_prefecture_is_accepted(
    run: Run, example: Example, emitters: dict[str, Emitter]
) -> None:
    record = _accepted(run(example(DEMANDE), emitter=emitters["prefecture"]))
    assert (record.source.emitter_type, record.source.emitter_id) == (EmitterType.PREFECTURE, PREFECTURE_ID)
    assert record.source.system is SourceSystem.EXPLOC_EXPORT
    assert record.source.procedure_ref == "EXPLOC-90-2025-000417"
    assert record.act.stage is Stage.DEMANDE_CFP
    assert record.act.cfp is not None
    assert record.act.cfp.requested_on == date(2026, 4, 15)
    assert record.derived.urgency is Urgency.HIGH
    assert record.warnings == []


def test_a_cfp_granted_by_the_prefecture_is_accepted_and_critical(
    run: Run, example: Example, emitters: dict[str, Emitter]
) -> None:
    record = _accepted(run(example(DECISION), emitter=emitters["prefecture"]))
    assert record.act.stage is Stage.DECISION_CFP
    assert record.act.cfp is not None
    assert (record.act.cfp.decision, record.act.cfp.decided_on) == (CfpDecision.ACCORDE, date(2026, 5, 20))
    assert record.derived.earliest_expulsion_date == date(2026, 5, 20)
    assert record.derived.urgency is Urgency.CRITICAL  # the concours is usable at once


def test_a_refusal_without_its_own_date_is_dated_by_the_act(
    run: Run, example: Example, emitters: dict[str, Emitter]
) -> None:
    document = example(DECISION)
    document["cfp"] = {"decision": "REFUS_IMPLICITE"}
    record = _accepted(run(document, emitter=emitters["prefecture"]))
    assert record.act.cfp is not None
    assert (record.act.cfp.decision, record.act.cfp.decided_on) == (CfpDecision.REFUS_IMPLICITE, date(2026, 5, 20))
    assert record.derived.urgency is Urgency.HIGH


def test_the_assignation_notice_it_receives_is_refused_with_the_code(
    run: Run, example: Example, emitters: dict[str, Emitter]
) -> None:
    rejected = run(example(NOT_ALLOWED), emitter=emitters["prefecture"])
    assert codes(rejected) == [("STAGE_NOT_ALLOWED_FOR_EMITTER", "stage")]
    assert isinstance(rejected, Rejected)
    assert rejected.codes[0].message == "expected one of: DECISION_CFP, DEMANDE_CFP"
    assert (rejected.emitter_id, rejected.external_ref) == (PREFECTURE_ID, "PREF90-ASS-2026-0112")


@pytest.mark.parametrize("stage", FORBIDDEN)
def test_every_other_stage_of_the_act_format_is_refused_with_the_code(
    run: Run, example: Example, emitters: dict[str, Emitter], stage: Stage
) -> None:
    document = example(DECISION)
    document["stage"] = stage.value
    assert codes(run(document, emitter=emitters["prefecture"])) == [("STAGE_NOT_ALLOWED_FOR_EMITTER", "stage")]


def test_the_same_stages_from_a_commissaire_de_justice_are_still_accepted(
    run: Run, example: Example, emitters: dict[str, Emitter]
) -> None:
    document = example(NOT_ALLOWED)
    document["emitter"] = {"siret": emitters["cj"].emitter_id}
    record = _accepted(run(document, emitter=emitters["cj"]))
    assert (record.act.stage, record.source.emitter_type) == (Stage.ASSIGNATION, EmitterType.COMMISSAIRE_JUSTICE)


@pytest.mark.parametrize(
    ("stage", "code"),
    [
        ("EXPULSION_IMMINENTE", "STAGE_UNKNOWN"),  # no such stage
        ("decision_cfp", "STAGE_UNKNOWN"),  # codes are upper case
        ("IMPAYE_CONSTATE", "STAGE_UNKNOWN"),  # a stage the act format does not carry
        ("CLOTURE", "STAGE_NOT_ALLOWED_FOR_EMITTER"),
    ],
)
def test_an_unknown_stage_stays_unknown_and_lists_what_the_prefecture_may_send(
    run: Run, example: Example, emitters: dict[str, Emitter], stage: str, code: str
) -> None:
    document = example(DEMANDE)
    document["stage"] = stage
    rejected = run(document, emitter=emitters["prefecture"])
    assert codes(rejected) == [(code, "stage")]
    assert isinstance(rejected, Rejected)
    assert rejected.codes[0].message == "expected one of: DECISION_CFP, DEMANDE_CFP"


def test_a_forbidden_stage_is_reported_with_every_other_fault(
    run: Run, example: Example, emitters: dict[str, Emitter]
) -> None:
    document = example(NOT_ALLOWED)
    document["tenants"] = []
    document["dwelling"]["address"]["commune_insee"] = "25056"  # Besançon: outside the territory
    assert sorted(codes(run(document, emitter=emitters["prefecture"]))) == [
        ("COMMUNE_OUT_OF_TERRITORY", "dwelling.address.commune_insee"),
        ("STAGE_NOT_ALLOWED_FOR_EMITTER", "stage"),
        ("TENANT_MISSING", "tenants"),
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"cfp": {"decision": "ACCORDEE"}}, ("SCHEMA_INVALID", "cfp.decision")),
        ({"cfp": {"decision": 1}}, ("SCHEMA_INVALID", "cfp.decision")),
        ({"cfp": None}, ("REQUIRED_FOR_STAGE_MISSING:act.cfp.decision", "cfp.decision")),
        ({"cfp": {"decision": "REFUSE", "decided_on": "20/05/2026"}}, ("DATE_INVALID", "cfp.decided_on")),
        ({"cfp": {"decision": "REFUSE", "prefet": "x"}}, ("SCHEMA_INVALID", "cfp.prefet")),
        ({"emitter": {"siret": "12345678900011"}}, ("EMITTER_MISMATCH", "emitter.siret")),
        ({"format": "prevex.bailleur-notice/1"}, ("EMITTER_MISMATCH", "format")),
    ],
)
def test_a_malformed_decision_is_refused_with_a_clear_code(
    run: Run, example: Example, emitters: dict[str, Emitter], change: dict[str, Any], expected: tuple[str, str]
) -> None:
    document = example(DECISION) | change
    if document["cfp"] is None:
        del document["cfp"]
    assert expected in codes(run(document, emitter=emitters["prefecture"]))
