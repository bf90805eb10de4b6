"""docs/domain.md §9 scenarios S-01 … S-08, ingest part, through the raw Kafka topics and the running service.

Every scenario's input goes on its raw topic keyed by its emitter, in the scenario's order; what ingest
publishes (procedure.notification, ingest.rejected, ingest.duplicate) and stores is checked against the
scenario's "ingest:" line. Urgency is computed against the processing day (docs/domain.md §2.9, the reference
clock), so it is only checked where the scenario's value does not depend on the day (the unit tests run
the scenarios with the clock on the act date).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from schemas import topics
from schemas.procedure import ProcedureNotificationEvent

if TYPE_CHECKING:
    from tests.e2e.ingest.conftest import IngestService

pytestmark = pytest.mark.e2e

CJ, TERRITOIRE_HABITAT, GESTIONNAIRE = b"12345678900011", b"99990000100015", b"55512345600019"
Outputs = Any


def _notices(outputs: Outputs, external_ref: str) -> list[dict[str, Any]]:
    """The notifications of an act, decoded by the contract, once per event id, in publication order."""
    events = outputs.distinct(
        topics.PROCEDURE_NOTIFICATION, lambda e: e["payload"]["notification"]["source"]["external_ref"] == external_ref
    )
    notices = [ProcedureNotificationEvent.model_validate_json(json.dumps(e)).payload for e in events]
    return [notice.model_dump(mode="json") for notice in notices]


def _rejection(outputs: Outputs, external_ref: str) -> dict[str, Any]:
    [event] = outputs.distinct(topics.INGEST_REJECTED, lambda e: e["payload"]["external_ref"] == external_ref)
    payload: dict[str, Any] = event["payload"]
    return payload


@pytest.fixture(scope="module")
async def scenarios(
    ingest_service: IngestService, publish: Callable[..., Any], example: Callable[..., bytes], outputs: Outputs
) -> Outputs:
    """Publish every scenario input in the order of docs/domain.md §9, then wait for every expected output."""
    await publish(topics.RAW_CJ, [(CJ, example("s01-cj-commandement-payer"))])  # S-01
    await publish(topics.RAW_BAILLEUR, [(TERRITOIRE_HABITAT, example("s02-bailleur-saisine-ccapex"))])  # S-02
    await publish(
        topics.RAW_CJ,
        [
            (CJ, example("s01-cj-commandement-payer")),  # S-03: byte-identical retry
            (CJ, example("s01-cj-commandement-payer", debt__amount=2460)),  # S-03 variant: correction
            (CJ, example("s04-cj-assignation")),  # S-04 input 1
            (CJ, example("s04-cj-commandement-payer-late")),  # S-04 input 2, a day later
            (CJ, example("s06-cj-commandement-quitter")),  # S-06
            (CJ, example("s07-cj-address-missing")),  # S-07
        ],
    )
    await publish(topics.RAW_BAILLEUR, [(GESTIONNAIRE, example("s05-bailleur-impaye-constate"))])  # S-05
    await publish(
        topics.RAW_BAILLEUR,
        [
            (TERRITOIRE_HABITAT, example("s08-bailleur-debt-negative")),  # S-08
            (TERRITOIRE_HABITAT, example("s08-bailleur-amount-invalid")),  # S-08, second input
        ],
    )
    expected_notices = Counter(["CP-2026-0412", "CP-2026-0412", "TH-SAI-2026-0057", "AS-2026-0601", "CP-2026-0310"])
    expected_notices.update(["GEST-IMP-2026-0088", "CQL-2025-1210"])
    expected_rejections = {"CP-2026-0777", "TH-CAF-2026-0311", "TH-CAF-2026-0312"}

    def arrived() -> bool:
        notices = Counter(
            e["payload"]["notification"]["source"]["external_ref"]
            for e in outputs.distinct(topics.PROCEDURE_NOTIFICATION)
        )
        rejections = {e["payload"]["external_ref"] for e in outputs.distinct(topics.INGEST_REJECTED)}
        duplicates = {e["payload"]["external_ref"] for e in outputs.distinct(topics.INGEST_DUPLICATE)}
        return notices >= expected_notices and rejections >= expected_rejections and "CP-2026-0412" in duplicates

    # Other tests of the session publish on the same topics: wait for this scenario's own outputs.
    await outputs.wait(arrived, "7 notifications, 3 rejections and 1 duplicate")
    return outputs


async def test_s01_commandement_de_payer_is_accepted_with_its_derived_fields(scenarios: Outputs) -> None:
    [notice] = [n for n in _notices(scenarios, "CP-2026-0412") if n["revision"] == 1]
    record = notice["notification"]
    assert record["derived"]["months_of_rent"] == "4.00"
    assert record["derived"]["ccapex_cp_threshold_met"] is True
    assert record["derived"]["commandement_deadline"] == "2026-04-13"  # 6 weeks: lease of 2024
    assert record["derived"]["urgency"] == "NORMAL"  # a commandement de payer, whatever the day
    assert record["dwelling"]["parc"] == "PRIVE"
    assert (notice["is_late"], notice["stage_advanced"], notice["is_correction"]) == (False, True, False)


async def test_s02_saisine_is_accepted_with_the_apl_impaye_and_assignation_bound(scenarios: Outputs) -> None:
    [notice] = _notices(scenarios, "TH-SAI-2026-0057")
    derived = notice["notification"]["derived"]
    assert derived["apl_impaye_constitue"] is True  # 1,500 ≥ 2 × (420 + 80), pre-2027 regime
    assert derived["earliest_assignation_date"] == "2026-07-04"
    assert derived["urgency"] == "LOW"
    assert notice["notification"]["source"]["emitter_type"] == "BAILLEUR_SOCIAL"


async def test_s03_a_retry_is_a_duplicate_and_a_changed_debt_a_correction(
    scenarios: Outputs, ingest_db: asyncpg.Pool
) -> None:
    [duplicate] = scenarios.distinct(topics.INGEST_DUPLICATE, lambda e: e["payload"]["external_ref"] == "CP-2026-0412")
    assert duplicate["payload"]["external_ref"] == "CP-2026-0412"
    assert duplicate["payload"]["duplicate_count"] == 1
    notices = _notices(scenarios, "CP-2026-0412")
    assert [(n["revision"], n["is_correction"]) for n in notices] == [(1, False), (2, True)]  # no event for the retry
    assert notices[0]["procedure_id"] == notices[1]["procedure_id"]
    assert notices[1]["notification"]["debt"]["amount"] == "2460.00"
    outcomes = await ingest_db.fetch(
        "SELECT outcome FROM raw_inbound WHERE position('CP-2026-0412'::bytea IN payload) > 0"
        " ORDER BY kafka_partition, kafka_offset"
    )
    assert [r["outcome"] for r in outcomes] == ["ACCEPTED", "DUPLICATE_IGNORED", "CORRECTION"]


async def test_s04_an_earlier_stage_received_later_is_linked_and_late(
    scenarios: Outputs, ingest_db: asyncpg.Pool
) -> None:
    [assignation] = _notices(scenarios, "AS-2026-0601")
    [late] = _notices(scenarios, "CP-2026-0310")
    assert assignation["notification"]["derived"]["prefect_notice_ok"] is True  # 48 days ≥ 42
    assert (assignation["is_late"], assignation["stage_advanced"]) == (False, True)
    assert late["procedure_id"] == assignation["procedure_id"]
    assert (late["is_late"], late["stage_advanced"]) == (True, False)
    assert "LATE_EARLIER_STAGE" in late["notification"]["warnings"]
    current = await ingest_db.fetchval(
        "SELECT current_stage FROM procedure WHERE procedure_id = $1::uuid", assignation["procedure_id"]
    )
    assert current == "ASSIGNATION"


async def test_s05_an_administrateur_de_biens_early_impaye_is_accepted(scenarios: Outputs) -> None:
    [notice] = _notices(scenarios, "GEST-IMP-2026-0088")
    assert notice["notification"]["source"]["emitter_type"] == "ADMINISTRATEUR_BIENS"
    assert notice["notification"]["dwelling"]["address"]["commune_insee"] == "90052"


async def test_s06_a_cql_in_winter_waits_for_the_end_of_the_truce(scenarios: Outputs) -> None:
    [notice] = _notices(scenarios, "CQL-2025-1210")
    derived = notice["notification"]["derived"]
    assert derived["winter_truce_on_act_date"] is True
    assert derived["earliest_expulsion_date"] == "2026-04-01"
    assert date.fromisoformat(derived["earliest_expulsion_date"]) > date(2026, 2, 10)


async def test_s07_a_missing_address_is_rejected_with_the_reference_only(
    scenarios: Outputs, ingest_db: asyncpg.Pool
) -> None:
    rejection = _rejection(scenarios, "CP-2026-0777")
    assert {error["code"] for error in rejection["errors"]} == {"ADDRESS_MISSING"}
    assert rejection["emitter_id"] == CJ.decode()
    # Its id, hash and timestamp are left out: random digits could spell "90000" by chance.
    volatile = {"rejection_id", "payload_sha256", "received_at"}
    text = str({key: value for key, value in rejection.items() if key not in volatile})
    for personal in ("Lefèvre", "Chloé", "90000"):
        assert personal not in text
    kept = await ingest_db.fetchval(
        "SELECT r.payload FROM rejection j JOIN raw_inbound r USING (raw_id) WHERE j.rejection_id = $1::uuid",
        rejection["rejection_id"],
    )
    assert b"CP-2026-0777" in kept  # the raw payload is kept (≤ 90 days)


@pytest.mark.parametrize(
    ("external_ref", "code"), [("TH-CAF-2026-0311", "DEBT_NEGATIVE"), ("TH-CAF-2026-0312", "AMOUNT_INVALID")]
)
async def test_s08_a_malformed_debt_is_rejected(scenarios: Outputs, external_ref: str, code: str) -> None:
    rejection = _rejection(scenarios, external_ref)
    assert [(error["code"], error["field"]) for error in rejection["errors"]] == [(code, "debt.amount")]


async def test_no_personal_data_reaches_the_service_log(scenarios: Outputs, ingest_service: IngestService) -> None:
    log_text = ingest_service.log_path.read_text("utf-8")
    for personal in ("Durand", "Martin", "Mulhouse", "Jaurès", "612345678", "1 200,50"):
        assert personal not in log_text
