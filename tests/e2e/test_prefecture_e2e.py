"""The préfecture as an emitter, end to end on the running services: its CFP decision in, the partners' alerts out.

The three services run as real processes on a broker, a database and an SMTP server of this module's own
(the walking skeleton counts every mail of the session's stack, so these alerts must not land there).
The préfecture sends a DECISION_CFP on its raw topic with its Kafka key, and another over the HTTP intake
with its API key: each is accepted as an EXPLOC-derived préfecture act and alerts the structures the
référentiel matches at that stage, SIAO90 (mandatory from the CFP on) among them. An assignation notice,
a stage the préfecture may not send, is rejected ``STAGE_NOT_ALLOWED_FOR_EMITTER`` on both paths and
alerts nobody.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import (
    BrokerEndpoint,
    ReceivedMail,
    SmtpSink,
    create_topics,
    wait_for_port,
)
from devtools.stack import SERVICES, ServiceProcesses, StackConfig
from schemas import topics
from schemas.sources.samples import variant

pytestmark = pytest.mark.e2e

WAIT_S = 90.0
"""Upper bound of every wait: a guard against hanging, not a performance assertion."""
PREFECTURE = "13000090000015"  # deploy/emitters/emitters.yaml
PREFECTURE_KEY = "prevex-dev-key-prefecture-0004"  # its development API key (docs/ingest.md)
SIAO = "coordination@siao90.test"  # deploy/referential/seed-90.yaml: mandatory from DEMANDE_CFP on
OUTPUTS = (topics.PROCEDURE_NOTIFICATION, topics.INGEST_REJECTED, topics.ORIENTATION_DECIDED)
# The households of this module (fictional): nothing of them may reach an alert or a log line.
KAFKA_HOUSEHOLD = {"last_name": "Kafkaïen", "first_name": "Odile"}
HTTP_HOUSEHOLD = {"last_name": "Httpier", "first_name": "Gaston"}
PERSONAL_DATA = ("Kafkaïen", "Odile", "Httpier", "Gaston", "faubourg de Montbéliard", "rue des Capucins")


class Topics:
    """Every record of ``OUTPUTS``, read from the beginning by background consumers; waited on by the test."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {topic: [] for topic in OUTPUTS}
        self.changed = asyncio.Event()

    def events(self, topic: str, where: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Events of ``topic`` matching ``where``, once per ``event_id`` (the relay may publish twice)."""
        return list({e["event_id"]: e for e in self.records[topic] if where(e)}.values())

    async def wait(self, topic: str, where: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first event of ``topic`` matching ``where``, once it is there."""
        async with asyncio.timeout(WAIT_S):
            while not (found := self.events(topic, where)):
                self.changed.clear()
                await self.changed.wait()
        return found[0]

    async def consume(self, bootstrap: str, topic: str) -> None:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=f"e2e-pref-{uuid.uuid4().hex}", auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            while True:
                for batch in (await consumer.getmany(timeout_ms=100)).values():
                    self.records[topic] += [json.loads(record.value) for record in batch if record.value]
                    self.changed.set()
        finally:
            await consumer.stop()


class World:
    """The running stack and what the test reaches it through."""

    def __init__(self, processes: ServiceProcesses, broker: BrokerEndpoint, smtp: SmtpSink, http_port: int) -> None:
        self.processes = processes
        self.broker = broker
        self.smtp = smtp
        self.ingest_url = f"http://127.0.0.1:{http_port}"
        self.topics = Topics()

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key.encode())
        finally:
            await producer.stop()

    async def post(self, payload: bytes) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.ingest_url) as client:
            return await client.post(
                "/v1/notifications", content=payload, headers={"Authorization": f"Bearer {PREFECTURE_KEY}"}
            )

    async def mails_for(self, short_ref: str, count: int) -> list[ReceivedMail]:
        """The alerts about procedure ``short_ref``, once ``count`` of them arrived."""
        async with asyncio.timeout(WAIT_S):
            while True:
                found = [mail for mail in self.smtp.messages if short_ref in str(mail.message["Subject"])]
                if len(found) >= count:
                    return found
                await asyncio.sleep(0.05)  # the sink has no feed to wait on


@pytest.fixture(scope="module")
async def world(
    own_broker: BrokerEndpoint, own_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    await create_topics(own_broker.bootstrap_servers, topics.ALL_TOPICS)
    work = tmp_path_factory.mktemp("prefecture-e2e")
    with SmtpSink(work / "mail") as smtp:
        config = StackConfig(own_broker.bootstrap_servers, own_database, smtp.host, smtp.port, work / "sms")
        processes = ServiceProcesses(config, work / "logs")
        world = World(processes, own_broker, smtp, config.ingest_http_port)
        tasks = [asyncio.create_task(world.topics.consume(own_broker.bootstrap_servers, t)) for t in OUTPUTS]
        try:  # services that failed to come up are stopped too, never left running
            processes.start()
            wait_for_port("127.0.0.1", config.ingest_http_port, WAIT_S, alive=lambda: processes.running("ingest"))
            yield world
        finally:
            processes.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _decision(external_ref: str, household: dict[str, str], line1: str, decision: str) -> bytes:
    return variant(
        "prefecture-decision-cfp",
        external_ref=external_ref,
        procedure_ref=f"EXPLOC-{external_ref}",
        tenants=[household | {"role": "TITULAIRE"}],
        dwelling__address__line1=line1,
        cfp__decision=decision,
    )


def _text(message: EmailMessage) -> str:
    parts = [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
    return str(message["Subject"]) + "\n" + "\n".join(parts)


def _by_ref(external_ref: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["payload"]["notification"]["source"]["external_ref"] == external_ref


def _rejected(external_ref: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["payload"]["external_ref"] == external_ref


async def _alerts(world: World, notice: dict[str, Any]) -> tuple[set[str], list[ReceivedMail]]:
    """The recipients orientation decided for a notice, and their alerts once every one arrived."""
    procedure_id = notice["payload"]["procedure_id"]
    decided = await world.topics.wait(
        topics.ORIENTATION_DECIDED, lambda event: event["payload"]["procedure_id"] == procedure_id
    )
    assert decided["payload"]["stage"] == "DECISION_CFP"
    structures = {assignment["structure_id"] for assignment in decided["payload"]["assignments"]}
    assert "SIAO90" in structures, structures
    mails = await world.mails_for(notice["payload"]["procedure_short_ref"], len(structures))
    return {recipient for mail in mails for recipient in mail.rcpt_tos}, mails


async def test_the_prefecture_decision_on_kafka_and_over_http_alerts_the_partners(world: World) -> None:
    await world.publish(
        topics.RAW_PREFECTURE,
        PREFECTURE,
        _decision("PREF-E2E-KAFKA", KAFKA_HOUSEHOLD, "27 faubourg de Montbéliard", "ACCORDE"),
    )
    response = await world.post(_decision("PREF-E2E-HTTP", HTTP_HOUSEHOLD, "3 rue des Capucins", "REFUSE"))
    assert response.status_code == 201, response.text
    assert (response.json()["outcome"], response.json()["stage"]) == ("ACCEPTED", "DECISION_CFP")

    by_kafka = await world.topics.wait(topics.PROCEDURE_NOTIFICATION, _by_ref("PREF-E2E-KAFKA"))
    by_http = await world.topics.wait(topics.PROCEDURE_NOTIFICATION, _by_ref("PREF-E2E-HTTP"))
    assert by_http["payload"]["procedure_short_ref"] == response.json()["procedure_short_ref"]
    for notice, urgency in ((by_kafka, "CRITICAL"), (by_http, "HIGH")):
        record = notice["payload"]["notification"]
        assert record["source"]["emitter_type"] == "PREFECTURE"
        assert (record["source"]["emitter_id"], record["source"]["system"]) == (PREFECTURE, "exploc_export")
        assert record["derived"]["urgency"] == urgency  # a granted concours is usable at once

    for notice, wording in ((by_kafka, "URGENCE CRITIQUE"), (by_http, "Urgence haute")):
        recipients, mails = await _alerts(world, notice)
        assert SIAO in recipients
        for mail in mails:
            text = _text(mail.message)
            assert "Décision sur le concours de la force publique" in text
            assert wording in text
            for personal in PERSONAL_DATA:
                assert personal not in text, f"{personal!r} leaked into an alert"


async def test_a_stage_the_prefecture_may_not_send_is_rejected_with_its_code_on_both_paths(world: World) -> None:
    forbidden = variant("prefecture-assignation-not-allowed", external_ref="PREF-E2E-ASS-HTTP")
    response = await world.post(forbidden)
    assert response.status_code == 422, response.text
    body = response.json()
    assert [(e["code"], e["field"]) for e in body["errors"]] == [("STAGE_NOT_ALLOWED_FOR_EMITTER", "stage")]
    assert body["rejection_id"]

    await world.publish(
        topics.RAW_PREFECTURE,
        PREFECTURE,
        variant("prefecture-assignation-not-allowed", external_ref="PREF-E2E-ASS-KAFKA"),
    )
    for external_ref in ("PREF-E2E-ASS-HTTP", "PREF-E2E-ASS-KAFKA"):
        rejected = (await world.topics.wait(topics.INGEST_REJECTED, _rejected(external_ref)))["payload"]
        assert (rejected["emitter_id"], rejected["emitter_type"]) == (PREFECTURE, "PREFECTURE")
        assert rejected["source_system"] == "exploc_export"
        assert [e["code"] for e in rejected["errors"]] == ["STAGE_NOT_ALLOWED_FOR_EMITTER"]
        # Rejected once and for all: no notification, so nothing for orientation to alert anyone about.
        assert world.topics.events(topics.PROCEDURE_NOTIFICATION, _by_ref(external_ref)) == []


def test_the_services_stayed_up_and_logged_no_personal_data(world: World) -> None:
    for name in SERVICES:
        assert world.processes.running(name), f"{name} died; see {world.processes.log_path(name)}"
        log_text = Path(world.processes.log_path(name)).read_text("utf-8")
        for personal in PERSONAL_DATA:
            assert personal not in log_text, f"{personal!r} leaked into the {name} log"
