"""The HTTP intake on a real PostgreSQL: authentication, answers, idempotence, limits, batches, CSV upload."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from unittest import mock

import asyncpg
import httpx
import pytest

from schemas import topics
from services.ingest import intake as intake_module
from services.ingest.http import REPLAYED_HEADER
from services.ingest.ratelimit import TokenBuckets
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

Example = Callable[..., bytes]
Outbox = Callable[[str], Any]
S01 = "s01-cj-commandement-payer"
CsvText = Callable[..., str]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _count(pool: asyncpg.Pool, table: str) -> int:
    count: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return count


async def test_an_accepted_act_answers_201_with_its_references(
    client: httpx.AsyncClient, api_keys: dict[str, str], example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    response = await client.post("/v1/notifications", content=example(S01), headers=_auth(api_keys["cj"]))
    assert response.status_code == 201
    body = response.json()
    assert body["outcome"] == "ACCEPTED"
    assert body["procedure_short_ref"].startswith("90-2026-")
    assert (body["revision"], body["stage"], body["external_ref"]) == (1, "COMMANDEMENT_PAYER", "CP-2026-0412")
    assert REPLAYED_HEADER not in response.headers
    [event] = await outbox(topics.PROCEDURE_NOTIFICATION)
    assert json.loads(event)["payload"]["notification"]["notification_id"] == body["notification_id"]
    row = await pool.fetchrow("SELECT channel, source_system, emitter_key FROM raw_inbound")
    assert row is not None
    assert tuple(row) == ("http", "cj_api", "12345678900011")


async def test_a_resent_act_gets_the_same_answer_and_no_second_event(
    client: httpx.AsyncClient, api_keys: dict[str, str], example: Example, outbox: Outbox
) -> None:
    first = await client.post("/v1/notifications", content=example(S01), headers=_auth(api_keys["cj"]))
    again = await client.post("/v1/notifications", content=example(S01), headers={"X-Api-Key": api_keys["cj"]})
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers[REPLAYED_HEADER] == "true"
    assert len(await outbox(topics.PROCEDURE_NOTIFICATION)) == 1
    assert len(await outbox(topics.INGEST_DUPLICATE)) == 1
    corrected = await client.post(
        "/v1/notifications", content=example(S01, debt__amount=2460), headers=_auth(api_keys["cj"])
    )
    assert (corrected.status_code, corrected.json()["outcome"], corrected.json()["revision"]) == (201, "CORRECTION", 2)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-Api-Key": ""}, {"Authorization": "Basic prevex-dev-key-cj-0001"}],
)
async def test_without_a_valid_key_nothing_is_taken(
    client: httpx.AsyncClient, example: Example, pool: asyncpg.Pool, headers: dict[str, str]
) -> None:
    response = await client.post("/v1/notifications", content=example(S01), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {
        "outcome": "REFUSED",
        "errors": [{"code": "UNAUTHENTICATED", "field": None, "message": response.json()["errors"][0]["message"]}],
    }
    assert await _count(pool, "raw_inbound") == 0


@pytest.mark.parametrize(
    ("key", "payload_name"),
    [("territoire_habitat", S01), ("territoire_habitat", "s05-bailleur-impaye-constate")],
)
async def test_a_payload_claiming_another_emitter_is_refused_403_and_recorded(
    *,
    client: httpx.AsyncClient,
    api_keys: dict[str, str],
    example: Example,
    outbox: Outbox,
    key: str,
    payload_name: str,
) -> None:
    """A bailleur key with a CJ act, and with another bailleur's notice: the key decides who is speaking."""
    response = await client.post("/v1/notifications", content=example(payload_name), headers=_auth(api_keys[key]))
    assert response.status_code == 403
    body = response.json()
    assert body["outcome"] == "REJECTED"
    assert [e["code"] for e in body["errors"]] == ["EMITTER_MISMATCH"]
    [rejected] = await outbox(topics.INGEST_REJECTED)
    assert json.loads(rejected)["payload"]["rejection_id"] == body["rejection_id"]
    assert json.loads(rejected)["payload"]["emitter_id"] == "99990000100015"


@pytest.mark.parametrize(
    ("content", "code", "field"),
    [
        (b"{not json", "SCHEMA_INVALID", None),
        (b"", "SCHEMA_INVALID", None),
        ("s08-bailleur-amount-invalid", "AMOUNT_INVALID", "debt.amount"),
        ("s08-bailleur-debt-negative", "DEBT_NEGATIVE", "debt.amount"),
    ],
)
async def test_invalid_payloads_answer_422_with_the_stored_rejection(
    *,
    client: httpx.AsyncClient,
    api_keys: dict[str, str],
    example: Example,
    pool: asyncpg.Pool,
    outbox: Outbox,
    content: bytes | str,
    code: str,
    field: str | None,
) -> None:
    payload = example(content) if isinstance(content, str) else content
    response = await client.post("/v1/notifications", content=payload, headers=_auth(api_keys["territoire_habitat"]))
    assert response.status_code == 422
    body = response.json()
    assert [(e["code"], e["field"]) for e in body["errors"]] == [(code, field)]
    stored = await pool.fetchval("SELECT errors FROM rejection WHERE rejection_id = $1::uuid", body["rejection_id"])
    assert [e["code"] for e in stored] == [code]
    assert len(await outbox(topics.INGEST_REJECTED)) == 1
    assert await pool.fetchval("SELECT payload FROM raw_inbound") == payload


async def test_an_oversized_body_is_refused_413_before_it_is_read(
    make_client: Callable[..., Any], api_keys: dict[str, str], settings: IngestSettings, pool: asyncpg.Pool
) -> None:
    small = settings.model_copy(update={"max_payload_bytes": 2_000, "http_max_body_bytes": 4_000})
    async with make_client(settings=small) as client:
        declared = await client.post("/v1/notifications", content=b"x" * 2_001, headers=_auth(api_keys["cj"]))

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b"x" * 1_000

        streamed = await client.post("/v1/notifications:batch", content=chunks(), headers=_auth(api_keys["cj"]))
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["errors"][0]["code"] == "PAYLOAD_TOO_LARGE"
    assert await _count(pool, "raw_inbound") == 0


async def test_the_rate_limit_is_per_emitter_and_says_when_to_retry(
    make_client: Callable[..., Any], api_keys: dict[str, str], example: Example
) -> None:
    now = [0.0]
    limiter = TokenBuckets(rate_per_s=0.5, burst=2, clock=lambda: now[0])
    async with make_client(limiter=limiter) as client:
        statuses = [
            (await client.post("/v1/notifications", content=b"{}", headers=_auth(api_keys["cj"]))).status_code
            for _ in range(3)
        ]
        limited = await client.post("/v1/notifications", content=b"{}", headers=_auth(api_keys["cj"]))
        other = await client.post("/v1/notifications", content=b"{}", headers=_auth(api_keys["territoire_habitat"]))
        now[0] += 2.0  # one token back at 0.5 per second
        later = await client.post("/v1/notifications", content=example(S01), headers=_auth(api_keys["cj"]))
    assert statuses == [422, 422, 429]
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert limited.json()["errors"][0]["code"] == "RATE_LIMITED"
    assert other.status_code == 422
    assert later.status_code == 201


async def test_a_batch_answers_each_element_as_if_sent_alone(
    client: httpx.AsyncClient, api_keys: dict[str, str], example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    assignation, s01 = example("s04-cj-assignation").strip(), example(S01).strip()
    body = b"[" + b",\n".join([s01, b'"not an act"', assignation, s01]) + b"]"
    response = await client.post("/v1/notifications:batch", content=body, headers=_auth(api_keys["cj"]))
    assert response.status_code == 200
    report = response.json()
    assert [(i["index"], i["status"], i["replayed"]) for i in report["items"]] == [
        (0, 201, False),
        (1, 422, False),
        (2, 201, False),
        (3, 201, True),
    ]
    assert report["items"][3]["result"] == report["items"][0]["result"]
    assert report["counts"] == {"accepted": 2, "corrections": 0, "duplicates": 1, "rejected": 1}
    assert len(await outbox(topics.PROCEDURE_NOTIFICATION)) == 2
    # Each element is stored with its own bytes: sent alone afterwards, it is recognised byte for byte.
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound WHERE payload = $1", assignation) == 1


@pytest.mark.parametrize("body", [b'{"format": "prevex.cj-act/1"}', b"[1,", b"\xff"])
async def test_a_batch_that_is_not_an_array_is_rejected_and_kept(
    client: httpx.AsyncClient, api_keys: dict[str, str], pool: asyncpg.Pool, body: bytes
) -> None:
    response = await client.post("/v1/notifications:batch", content=body, headers=_auth(api_keys["cj"]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "SCHEMA_INVALID"
    assert await pool.fetchval("SELECT payload FROM raw_inbound") == body


async def test_a_batch_over_the_item_limit_is_refused(
    make_client: Callable[..., Any], api_keys: dict[str, str], settings: IngestSettings, pool: asyncpg.Pool
) -> None:
    async with make_client(settings=settings.model_copy(update={"http_batch_max_items": 2})) as client:
        response = await client.post("/v1/notifications:batch", content=b"[{}, {}, {}]", headers=_auth(api_keys["cj"]))
    assert response.status_code == 413
    assert await _count(pool, "raw_inbound") == 0


async def test_a_csv_upload_reports_every_line(
    client: httpx.AsyncClient, api_keys: dict[str, str], pool: asyncpg.Pool, csv_text: CsvText
) -> None:
    lefevre = {"reference": "TH-CSV-1", "locataire_nom": "Lefèvre", "loyer_hc": "420,00", "dette_montant": "1 250,50"}
    data = csv_text(
        lefevre,
        {"reference": "TH-CSV-2", "dette_montant": "-350,00"},
        {"reference": "TH-CSV-3", "date_acte": "31/02/2026", "+": "x"},
        lefevre,
    ).encode("cp1252")
    files = {"file": ("export.csv", data, "text/csv")}
    response = await client.post("/v1/csv", files=files, headers=_auth(api_keys["territoire_habitat"]))
    assert response.status_code == 200
    report = response.json()
    assert report["encoding"] == "windows-1252"
    assert [(line["line"], line["outcome"]) for line in report["lines"]] == [
        (2, "ACCEPTED"),
        (3, "REJECTED"),
        (4, "REJECTED"),
        (5, "DUPLICATE_IGNORED"),
    ]
    accepted, negative, too_many, duplicate = report["lines"]
    assert accepted["warnings"] == ["AMOUNT_COERCED"]
    assert [e["code"] for e in negative["errors"]] == ["DEBT_NEGATIVE"]
    assert [(e["code"], e["field"]) for e in too_many["errors"]] == [("SCHEMA_INVALID", "csv.line")]
    assert too_many["external_ref"] == "TH-CSV-3"
    assert duplicate["procedure_short_ref"] == accepted["procedure_short_ref"]
    assert report["counts"] == {"accepted": 1, "corrections": 0, "duplicates": 1, "rejected": 2}
    rows = await pool.fetch("SELECT source_line, source_system, channel FROM raw_inbound ORDER BY source_line")
    assert [tuple(r) for r in rows] == [(n, "bailleur_sftp", "http:csv") for n in (2, 3, 4, 5)]
    stored = await pool.fetchval("SELECT record FROM procedure_stage_event")
    assert stored["debt"]["amount"] == "1250.50"


async def test_a_csv_body_without_multipart_is_read_too(
    client: httpx.AsyncClient, api_keys: dict[str, str], csv_text: CsvText
) -> None:
    data = csv_text({"reference": "TH-CSV-9"}).encode()
    headers = _auth(api_keys["territoire_habitat"]) | {"Content-Type": "text/csv"}
    response = await client.post("/v1/csv", content=data, headers=headers)
    assert [line["outcome"] for line in response.json()["lines"]] == ["ACCEPTED"]


async def test_a_csv_that_is_not_this_format_is_rejected_as_a_whole(
    client: httpx.AsyncClient, api_keys: dict[str, str], pool: asyncpg.Pool
) -> None:
    data = b"ref,stage,date\nTH-1,SIGNALEMENT_CAF,02/03/2026\n"
    response = await client.post("/v1/csv", content=data, headers=_auth(api_keys["territoire_habitat"]))
    assert response.status_code == 422
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [("SCHEMA_INVALID", "csv.header")]
    assert await pool.fetchval("SELECT payload FROM raw_inbound") == data


async def test_only_bailleurs_may_upload_csv(
    client: httpx.AsyncClient, api_keys: dict[str, str], pool: asyncpg.Pool, csv_text: CsvText
) -> None:
    response = await client.post("/v1/csv", content=csv_text({}).encode(), headers=_auth(api_keys["cj"]))
    assert response.status_code == 403
    assert await _count(pool, "raw_inbound") == 0


async def test_a_storage_failure_answers_503_and_takes_nothing(
    api_keys: dict[str, str], example: Example, database_url: str, intake: Any, emitters: Any
) -> None:
    from services.ingest.http import create_app  # noqa: PLC0415

    closed = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    app = create_app(intake=intake, emitters=emitters, pool=lambda: closed, settings=IngestSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest.test") as client:
        response = await client.post("/v1/notifications", content=example(S01), headers=_auth(api_keys["cj"]))
        health = await client.get("/health")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert health.status_code == 503


async def test_health_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_an_input_ingest_fails_on_answers_500_stored_and_not_to_be_sent_again(
    client: httpx.AsyncClient, api_keys: dict[str, str], example: Example, pool: asyncpg.Pool
) -> None:
    # A bug reached by one input is ingest's fault: a 4xx would send the emitter looking for an error in its data.
    def normalise(document: bytes, **kwargs: Any) -> Any:
        raise OverflowError("date value out of range")

    with mock.patch.object(intake_module, "normalise", normalise):
        response = await client.post("/v1/notifications", content=example(S01), headers=_auth(api_keys["cj"]))
    assert response.status_code == 500
    body = response.json()
    assert (body["outcome"], [error["code"] for error in body["errors"]]) == ("REJECTED", ["INTERNAL_ERROR"])
    row = await pool.fetchrow("SELECT outcome, channel FROM raw_inbound")
    assert row is not None
    assert tuple(row) == ("REJECTED", "http")
