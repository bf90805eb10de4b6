"""The inbound source formats (schemas.sources) and their example payloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from schemas.sources import SOURCE_FORMATS, BailleurNotice, CjAct
from schemas.stages import Stage

NAMES = [
    "s01-cj-commandement-payer",
    "s02-bailleur-saisine-ccapex",
    "s04-cj-assignation",
    "s04-cj-commandement-payer-late",
    "s05-bailleur-impaye-constate",
    "s06-cj-commandement-quitter",
    "s07-cj-address-missing",
    "s08-bailleur-amount-invalid",
    "s08-bailleur-debt-negative",
]


@pytest.mark.parametrize("name", NAMES)
def test_every_example_is_structurally_valid(example_bytes: Callable[[str], bytes], name: str) -> None:
    """Examples of rejections too: their faults are content (coded rejections), not structure."""
    document = json.loads(example_bytes(name), parse_float=Decimal)
    model = SOURCE_FORMATS[document["format"]]
    record = model.model_validate(document)
    assert document["format"] == record.FORMAT_ID
    assert Stage(record.stage) in model.STAGES


def test_formats_cover_the_stages_of_their_emitters() -> None:
    assert {Stage.COMMANDEMENT_PAYER, Stage.ASSIGNATION, Stage.COMMANDEMENT_QUITTER, Stage.DEMANDE_CFP} <= CjAct.STAGES
    assert {Stage.EXPULSION_REALISEE, Stage.SIGNIFICATION_DECISION, Stage.DECISION} <= CjAct.STAGES
    assert {
        Stage.IMPAYE_CONSTATE,
        Stage.SIGNALEMENT_CAF,
        Stage.SAISINE_CCAPEX_BAILLEUR,
        Stage.PLAN_APUREMENT,
        Stage.PROTOCOLE_COHESION_SOCIALE,
        Stage.CLOTURE,
    } == BailleurNotice.STAGES


@pytest.mark.parametrize("model", [CjAct, BailleurNotice])
def test_json_schema_documents_the_format_for_integrators(model: type[CjAct] | type[BailleurNotice]) -> None:
    schema: dict[str, Any] = model.model_json_schema()
    json.dumps(schema)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]["stage"]["enum"]) == {stage.value for stage in model.STAGES}
    assert schema["$defs"]["SourceDebt"]["properties"]["amount"]["type"] == ["number", "null"]
    assert "cj-act" in schema["properties"]["format"]["const"] or "bailleur" in schema["properties"]["format"]["const"]


def test_bailleur_notices_have_no_court_blocks(example: Callable[[str], dict[str, Any]]) -> None:
    document = json.loads(json.dumps(example("s02-bailleur-saisine-ccapex")), parse_float=Decimal)
    document["court_case"] = {"hearing_date": "2026-07-20"}
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        BailleurNotice.model_validate(document)
