"""The HTTP intake as served by the running ingest process: its contract, and the same outbox as Kafka."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from schemas import topics
from services.ingest.cli import OPENAPI_PATH

if TYPE_CHECKING:
    from tests.e2e.ingest.conftest import IngestService, TopicLog

pytestmark = pytest.mark.e2e

CJ_KEY = "prevex-dev-key-cj-0001"  # development key of deploy/emitters/emitters.yaml (docs/ingest.md)


async def test_the_service_serves_the_committed_openapi_document_and_its_health(ingest_service: IngestService) -> None:
    async with httpx.AsyncClient(base_url=ingest_service.base_url) as client:
        document = (await client.get("/openapi.json")).json()
        health = await client.get("/health")
    assert document == json.loads(OPENAPI_PATH.read_text("utf-8"))
    assert (health.status_code, health.json()) == (200, {"status": "ok"})


async def test_a_notification_posted_over_http_is_published_like_one_from_kafka(
    ingest_service: IngestService, example: Callable[..., bytes], outputs: TopicLog
) -> None:
    payload = example(
        "s01-cj-commandement-payer", external_ref="HTTP-E2E-1", tenants=[{"last_name": "Http", "first_name": "Ana"}]
    )
    async with httpx.AsyncClient(base_url=ingest_service.base_url) as client:
        response = await client.post(
            "/v1/notifications", content=payload, headers={"Authorization": f"Bearer {CJ_KEY}"}
        )
        again = await client.post("/v1/notifications", content=payload, headers={"X-Api-Key": CJ_KEY})
    assert response.status_code == 201
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (201, response.json(), "true")
    notification_id = response.json()["notification_id"]

    def published() -> list[dict[str, Any]]:
        return outputs.distinct(
            topics.PROCEDURE_NOTIFICATION,
            lambda e: e["payload"]["notification"]["notification_id"] == notification_id,
        )

    await outputs.wait(lambda: bool(published()), "the HTTP notification on the topic")
    [event] = published()
    assert event["payload"]["procedure_short_ref"] == response.json()["procedure_short_ref"]
    assert event["payload"]["notification"]["source"]["system"] == "cj_api"
    duplicates = outputs.distinct(topics.INGEST_DUPLICATE, lambda e: e["payload"]["external_ref"] == "HTTP-E2E-1")
    await outputs.wait(
        lambda: bool(outputs.distinct(topics.INGEST_DUPLICATE, lambda e: e["payload"]["external_ref"] == "HTTP-E2E-1")),
        "the re-send counted as a duplicate",
    )
    assert len(duplicates) <= 1
