"""Out-of-range dates and unreadable uploads on every path of the intake, on a real PostgreSQL.

Each such input is stored raw and rejected with its code; the other inputs of its batch are accepted.
Before, a ``vacate_by`` of ``9999-12-31`` raised in the trêve computation: a 500 over HTTP, the whole
batch failing, and on Kafka the same batch retried forever.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from schemas import topics
from services.ingest.intake import Outcome

pytestmark = pytest.mark.integration

Example = Callable[..., bytes]
CsvText = Callable[..., str]
S01 = "s01-cj-commandement-payer"
S06 = "s06-cj-commandement-quitter"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _far(example: Example, vacate_by: str = "9999-12-31") -> bytes:
    return example(S06, external_ref="CQL-FAR", commandement_quitter__vacate_by=vacate_by)


async def _stored_rejection(pool: asyncpg.Pool, payload: bytes) -> list[tuple[str, str]]:
    """The codes and fields of the rejection of the raw input stored with exactly ``payload``."""
    errors = await pool.fetchval(
        "SELECT j.errors FROM rejection j JOIN raw_inbound r USING (raw_id) WHERE r.payload = $1", payload
    )
    return [(e["code"], e["field"]) for e in errors]


@pytest.mark.parametrize("vacate_by", ["9999-12-31", "0001-01-01"])
async def test_a_kafka_batch_with_an_out_of_range_date_accepts_the_others(
    process: Callable[..., Any], make_raw: Callable[..., Any], example: Example, pool: asyncpg.Pool, vacate_by: str
) -> None:
    far = _far(example, vacate_by)
    before, after = example(S01), example("s04-cj-assignation")
    results = await process(make_raw(before, offset=1), make_raw(far, offset=2), make_raw(after, offset=3))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert await _stored_rejection(pool, far) == [("DATE_OUT_OF_RANGE", "commandement_quitter.vacate_by")]


async def test_a_far_future_act_over_http_answers_422_with_its_code_and_is_kept(
    client: httpx.AsyncClient, api_keys: dict[str, str], example: Example, pool: asyncpg.Pool, outbox: Any
) -> None:
    far = _far(example)
    response = await client.post("/v1/notifications", content=far, headers=_auth(api_keys["cj"]))
    assert response.status_code == 422
    body = response.json()
    assert (body["outcome"], body["external_ref"]) == ("REJECTED", "CQL-FAR")
    assert [(e["code"], e["field"]) for e in body["errors"]] == [
        ("DATE_OUT_OF_RANGE", "commandement_quitter.vacate_by")
    ]
    assert await _stored_rejection(pool, far) == [("DATE_OUT_OF_RANGE", "commandement_quitter.vacate_by")]
    [published] = await outbox(topics.INGEST_REJECTED)
    assert json.loads(published)["payload"]["rejection_id"] == body["rejection_id"]


async def test_a_batch_holding_a_far_future_act_answers_each_element(
    client: httpx.AsyncClient, api_keys: dict[str, str], example: Example, pool: asyncpg.Pool
) -> None:
    far = _far(example)
    body = b"[" + b",".join([example(S01).strip(), far, example("s04-cj-assignation").strip()]) + b"]"
    response = await client.post("/v1/notifications:batch", content=body, headers=_auth(api_keys["cj"]))
    assert response.status_code == 200
    report = response.json()
    assert [item["status"] for item in report["items"]] == [201, 422, 201]
    assert report["items"][1]["result"]["errors"][0]["code"] == "DATE_OUT_OF_RANGE"
    assert report["counts"] == {"accepted": 2, "corrections": 0, "duplicates": 0, "rejected": 1}
    assert await _stored_rejection(pool, far) == [("DATE_OUT_OF_RANGE", "commandement_quitter.vacate_by")]


async def test_a_csv_line_with_a_far_date_is_rejected_and_the_next_accepted(
    client: httpx.AsyncClient, api_keys: dict[str, str], csv_text: CsvText
) -> None:
    data = csv_text(
        {"reference": "TH-FAR-1", "date_acte": "31/12/9999"},
        {"reference": "TH-FAR-2", "dette_date": "01/01/0001"},
        {"reference": "TH-FAR-3"},
    ).encode()
    files = {"file": ("export.csv", data, "text/csv")}
    response = await client.post("/v1/csv", files=files, headers=_auth(api_keys["territoire_habitat"]))
    assert response.status_code == 200
    lines = response.json()["lines"]
    assert [line["outcome"] for line in lines] == ["REJECTED", "REJECTED", "ACCEPTED"]
    assert [(e["code"], e["field"]) for e in lines[0]["errors"]] == [("DATE_OUT_OF_RANGE", "act_date")]
    assert [(e["code"], e["field"]) for e in lines[1]["errors"]] == [("DATE_OUT_OF_RANGE", "debt.as_of")]


async def test_a_csv_line_with_a_nul_character_is_rejected_alone(
    client: httpx.AsyncClient, api_keys: dict[str, str], csv_text: CsvText, pool: asyncpg.Pool
) -> None:
    data = csv_text({"reference": "TH-NUL-1", "adresse": "9 rue\x00 de Lyon"}, {"reference": "TH-NUL-2"}).encode()
    response = await client.post(
        "/v1/csv", files={"file": ("e.csv", data, "text/csv")}, headers=_auth(api_keys["territoire_habitat"])
    )
    assert response.status_code == 200
    lines = response.json()["lines"]
    assert [line["outcome"] for line in lines] == ["REJECTED", "ACCEPTED"]
    assert lines[0]["errors"][0]["code"] == "SCHEMA_INVALID"
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound") == 2


@pytest.mark.parametrize(
    ("files", "data"),
    [
        ({"other": ("e.csv", b"x;y\n", "text/csv")}, None),
        ({"other": ("e.csv", b"x;y\n", "text/csv")}, {"file": "a text field, not a file"}),
    ],
)
async def test_a_multipart_upload_without_a_file_part_is_rejected_with_the_documented_body(
    client: httpx.AsyncClient, api_keys: dict[str, str], pool: asyncpg.Pool, files: Any, data: Any
) -> None:
    response = await client.post("/v1/csv", files=files, data=data, headers=_auth(api_keys["territoire_habitat"]))
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"outcome", "rejection_id", "external_ref", "errors"}  # RejectedBody, as documented
    assert (body["outcome"], body["external_ref"]) == ("REJECTED", None)
    assert [(e["code"], e["field"]) for e in body["errors"]] == [("SCHEMA_INVALID", "file")]
    row = await pool.fetchrow("SELECT source_system, channel, outcome FROM raw_inbound")
    assert row is not None
    assert tuple(row) == ("bailleur_sftp", "http:csv", "REJECTED")
