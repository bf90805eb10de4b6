"""Demo inputs for ``make run``: scenario payloads from domain.md §6c sent through the real inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files

from aiokafka import AIOKafkaProducer

from schemas import topics

__all__ = ["DEMO_INPUTS", "DemoInput", "publish_demo"]


@dataclass(frozen=True)
class DemoInput:
    scenario: str
    topic: str
    example: str
    expected_alerts: int

    def payload(self) -> bytes:
        return (files("schemas.sources") / "examples" / self.example).read_bytes()

    def emitter_id(self) -> str:
        """The emitter's id, used as the record key (what the emitter's Kafka principal is bound to)."""
        document = json.loads(self.payload())
        return str(document["emitter"]["siret"])


DEMO_INPUTS: tuple[DemoInput, ...] = (
    DemoInput("S-01 commandement de payer, Belfort", topics.RAW_CJ, "s01-cj-commandement-payer.json", 3),
)


async def publish_demo(bootstrap_servers: str, inputs: tuple[DemoInput, ...] = DEMO_INPUTS) -> None:
    """Publish each demo input on its raw topic, keyed by its emitter, and wait for the acks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for item in inputs:
            await producer.send_and_wait(item.topic, item.payload(), key=item.emitter_id().encode())
    finally:
        await producer.stop()
