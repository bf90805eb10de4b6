"""The préfecture's inputs on a real PostgreSQL: its HTTP API key, its raw topic, its CFP acts on a CJ's procedure."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from schemas import topics
from schemas.procedure import EmitterType, ProcedureNotice, ProcedureNotificationEvent, SourceSystem
from schemas.stages import Stage
from services.ingest.http import REPLAYED_HEADER
from services.ingest.intake import Outcome

pytestmark = pytest.mark.integration

PREFECTURE = "13000090000015"
PREFECTURE_KEY = "prevex-dev-key-prefecture-0004"  # development key of deploy/emitters/emitters.yaml
CJ = "12345678900011"
DEMANDE = "prefecture-demande-cfp"
DECISION = "prefecture-decision-cfp"
NOT_ALLOWED = "prefecture-assignation-not-allowed"

Example = Callable[..., bytes]
MakeRaw = Callable[..., Any]
Process = Callable[..., Any]
Outbox = Callable[[str], Any]


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {PREFECTURE_KEY}"}


async def _post(client: httpx.AsyncClient, payload: bytes, status: int) -> dict[str, Any]:
    """The answer to a notification posted with the préfecture's key, its status checked."""
    response = await client.post("/v1/notifications", content=payload, headers=_auth())
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def _notices(outbox: Outbox) -> list[ProcedureNotice]:
    values = await outbox(topics.PROCEDURE_NOTIFICATION)
    return [ProcedureNotificationEvent.model_validate_json(value).payload for value in values]


async def test_a_cfp_decision_posted_with_the_prefecture_key_is_accepted_as_an_exploc_input(
    client: httpx.AsyncClient, example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    body = await _post(client, example(DECISION), 201)
    expected = {"outcome": "ACCEPTED", "stage": "DECISION_CFP", "external_ref": "PREF90-CFP-2026-0031-DECISION"}
    assert {name: body[name] for name in expected} == expected
    [notice] = await _notices(outbox)
    source = notice.notification.source
    assert source.emitter_type is EmitterType.PREFECTURE
    assert (source.emitter_id, source.system) == (PREFECTURE, SourceSystem.EXPLOC_EXPORT)
    row = await pool.fetchrow("SELECT channel, source_system, emitter_key FROM raw_inbound")
    assert row is not None
    assert tuple(row) == ("http", "exploc_export", PREFECTURE)

    again = await client.post("/v1/notifications", content=example(DECISION), headers={"X-Api-Key": PREFECTURE_KEY})
    assert (again.status_code, again.json(), again.headers[REPLAYED_HEADER]) == (201, body, "true")
    assert len(await outbox(topics.PROCEDURE_NOTIFICATION)) == 1


async def test_a_stage_it_may_not_send_is_stored_rejected_and_published_with_the_code(
    client: httpx.AsyncClient, example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    body = await _post(client, example(NOT_ALLOWED), 422)
    assert [(e["code"], e["field"]) for e in body["errors"]] == [("STAGE_NOT_ALLOWED_FOR_EMITTER", "stage")]
    [value] = await outbox(topics.INGEST_REJECTED)
    rejected = json.loads(value)["payload"]
    assert rejected["rejection_id"] == body["rejection_id"]
    emitter = {"emitter_id": PREFECTURE, "emitter_type": "PREFECTURE", "source_system": "exploc_export"}
    assert {name: rejected[name] for name in emitter} == emitter
    assert await outbox(topics.PROCEDURE_NOTIFICATION) == []
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound WHERE outcome = 'REJECTED'") == 1
    assert "Martin" not in value.decode()


async def test_the_prefecture_may_not_upload_csv_files(
    client: httpx.AsyncClient, pool: asyncpg.Pool, csv_text: Callable[..., str]
) -> None:
    response = await client.post(
        "/v1/csv", content=csv_text({}).encode(), headers=_auth() | {"Content-Type": "text/csv"}
    )
    assert (response.status_code, response.json()["errors"][0]["code"]) == (403, "EMITTER_MISMATCH")
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound") == 0


async def test_its_cfp_acts_follow_the_commandement_de_quitter_of_the_same_household(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    """S-06's household: the CJ's CQL, then the préfecture's request and decision from its raw topic."""
    kafka = {"source_system": SourceSystem.EXPLOC_EXPORT, "channel": f"kafka:{topics.RAW_PREFECTURE}"}
    [cql] = await process(make_raw(example("s06-cj-commandement-quitter"), CJ, offset=1))
    [demande] = await process(make_raw(example(DEMANDE), PREFECTURE, offset=2, **kafka))
    [decision] = await process(make_raw(example(DECISION), PREFECTURE, offset=3, **kafka))
    assert [r.outcome for r in (cql, demande, decision)] == [Outcome.ACCEPTED] * 3
    notices = await _notices(outbox)
    assert len({notice.procedure_short_ref for notice in notices}) == 1
    assert [(n.notification.act.stage, n.stage_advanced, n.is_late) for n in notices] == [
        (Stage.COMMANDEMENT_QUITTER, True, False),
        (Stage.DEMANDE_CFP, True, False),
        (Stage.DECISION_CFP, True, False),
    ]
    assert all(n.notification.warnings == [] for n in notices)  # nothing skipped, nothing late
    assert await pool.fetchval("SELECT current_stage FROM procedure") == "DECISION_CFP"
