"""Demo inputs for ``make run``: the scenarios of docs/domain.md §9 through the real inputs.

Each input goes the way its emitter would send it — a commissaire de justice's system on the Kafka raw
topic, a bailleur over the HTTP intake with its API key, an administrateur de biens as a CSV export —
and states how many alerts it should cause, so the runner can say whether the pipeline did exactly that.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from aiokafka import AIOKafkaProducer

from schemas import topics

__all__ = ["DEMO_INPUTS", "DemoInput", "expected_alerts", "publish_demo", "wait_for_http"]

_ROOT = Path(__file__).resolve().parents[1]
_EXAMPLES = _ROOT / "schemas" / "sources" / "examples"
_DEMO = _ROOT / "deploy" / "demo"
# Fictional development keys of deploy/emitters/emitters.yaml (docs/ingest.md); never valid elsewhere.
_BAILLEUR_KEY = "prevex-dev-key-th-0002"
_GESTION_KEY = "prevex-dev-key-gestion-0003"


@dataclass(frozen=True)
class DemoInput:
    """One input of the demo and the alerts it should cause (emails, SMS)."""

    scenario: str
    channel: Literal["kafka", "http", "csv"]
    path: Path
    emails: int = 0
    sms: int = 0
    api_key: str | None = None

    def payload(self) -> bytes:
        return self.path.read_bytes()

    def emitter_id(self) -> str:
        """The emitter's SIRET, the Kafka record key (what the emitter's Kafka principal is bound to)."""
        return str(json.loads(self.payload())["emitter"]["siret"])


DEMO_INPUTS: tuple[DemoInput, ...] = (
    DemoInput("S-01 commandement de payer, Belfort (Kafka)", "kafka", _EXAMPLES / "s01-cj-commandement-payer.json", 3),
    DemoInput("S-03 the same act re-sent (Kafka)", "kafka", _EXAMPLES / "s01-cj-commandement-payer.json"),
    DemoInput("S-03 correction of the debt (Kafka)", "kafka", _DEMO / "s03-cj-commandement-payer-correction.json"),
    DemoInput("S-04 assignation, Valdoie (Kafka)", "kafka", _EXAMPLES / "s04-cj-assignation.json", 3),
    DemoInput("S-04 earlier commandement, late (Kafka)", "kafka", _EXAMPLES / "s04-cj-commandement-payer-late.json"),
    DemoInput(
        "S-06 commandement de quitter in winter (Kafka)", "kafka", _EXAMPLES / "s06-cj-commandement-quitter.json", 3
    ),
    DemoInput("S-07 address missing (Kafka)", "kafka", _EXAMPLES / "s07-cj-address-missing.json"),
    DemoInput(
        "D-09 commandement de payer, Delle: SMS partner (Kafka)",
        "kafka",
        _DEMO / "d09-cj-commandement-payer-delle.json",
        2,
        1,
    ),
    DemoInput(
        "S-02 saisine CCAPEX, Offemont (HTTP)",
        "http",
        _EXAMPLES / "s02-bailleur-saisine-ccapex.json",
        3,
        api_key=_BAILLEUR_KEY,
    ),
    DemoInput(
        "S-08 negative debt (HTTP)", "http", _EXAMPLES / "s08-bailleur-debt-negative.json", api_key=_BAILLEUR_KEY
    ),
    DemoInput(
        "S-08 amount '1 200,50' (HTTP)", "http", _EXAMPLES / "s08-bailleur-amount-invalid.json", api_key=_BAILLEUR_KEY
    ),
    DemoInput(
        "S-05 impayé with no matching offer, Giromagny (CSV)",
        "csv",
        _DEMO / "s05-administrateur-biens.csv",
        1,
        api_key=_GESTION_KEY,
    ),
)


def expected_alerts(inputs: tuple[DemoInput, ...] = DEMO_INPUTS) -> tuple[int, int]:
    """``(emails, sms)`` the demo should produce in total."""
    return sum(i.emails for i in inputs), sum(i.sms for i in inputs)


async def wait_for_http(base_url: str, timeout_s: float = 60.0) -> None:
    """Wait until the ingest HTTP intake answers its health check."""
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client, asyncio.timeout(timeout_s):
        while True:
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def publish_demo(
    bootstrap_servers: str, ingest_url: str, inputs: tuple[DemoInput, ...] = DEMO_INPUTS
) -> list[tuple[DemoInput, str]]:
    """Send every input its own way, in order; return each with a one-line answer for the operator."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        async with httpx.AsyncClient(base_url=ingest_url, timeout=30.0) as client:
            # One at a time, in order: S-03's re-send and S-04's late act must follow the act they refer to.
            answers = [(item, await _send(item, producer, client)) for item in inputs]
    finally:
        await producer.stop()
    return answers


async def _send(item: DemoInput, producer: AIOKafkaProducer, client: httpx.AsyncClient) -> str:
    if item.channel == "kafka":
        await producer.send_and_wait(topics.RAW_CJ, item.payload(), key=item.emitter_id().encode())
        return f"published on {topics.RAW_CJ}"
    headers = {"X-Api-Key": item.api_key or ""}
    if item.channel == "http":
        response = await client.post("/v1/notifications", content=item.payload(), headers=headers)
        codes = [e["code"] for e in response.json().get("errors", [])]
        return f"HTTP {response.status_code} {' '.join(codes)}".rstrip()
    response = await client.post("/v1/csv", content=item.payload(), headers=headers | {"Content-Type": "text/csv"})
    counts = response.json().get("counts", {})
    return f"HTTP {response.status_code} {counts}"
