"""A legal warning reaches the partners who must act on it, end to end on the running services.

An assignation whose notice to the préfet came less than 6 weeks before the hearing (loi 89-462 art. 24 III:
irrecevabilité possible) goes through ingest → orientation → notifier on a broker, a database and an SMTP
server of this module's own (the walking skeleton counts every mail of the session's stack). S-04's
structures are told: the Département (diagnostic social et financier) and the point-justice read the
sentence in their email, text and HTML; the FSL, matched too, does not. The same assignation notified in
time warns nobody.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import BrokerEndpoint, SmtpSink, create_topics
from devtools.stack import SERVICES, ServiceProcesses, StackConfig
from schemas import topics
from schemas.sources.samples import variant

pytestmark = pytest.mark.e2e

WAIT_S = 90.0
"""Upper bound of every wait: a guard against hanging, not a performance assertion."""
CJ = "12345678900011"  # the commissaire de justice of the examples (deploy/emitters/emitters.yaml)
CD90, CDAD90, FSL90 = "prevention.expulsions@cd90.test", "point-justice@cdad90.test", "fsl@cd90.test"
SENTENCE = "Notification au préfet moins de 6 semaines avant l'audience : irrecevabilité possible"
PREFECT = "PREFECT_NOTICE_LT_6_WEEKS"
# The households of this module (fictional): nothing of them may reach an alert.
LATE = {"last_name": "Tardivel", "first_name": "Armelle"}
IN_TIME = {"last_name": "Ponctuel", "first_name": "Bastien"}
PERSONAL_DATA = ("Tardivel", "Armelle", "Ponctuel", "Bastien", "rue de la Savoureuse", "rue du Lion")


class Stack:
    """The three services and the SMTP server they alert through."""

    def __init__(self, processes: ServiceProcesses, broker: BrokerEndpoint, smtp: SmtpSink) -> None:
        self.processes, self.broker, self.smtp = processes, broker, smtp

    async def publish(self, payload: bytes) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topics.RAW_CJ, payload, key=CJ.encode())
        finally:
            await producer.stop()

    async def first(self, topic: str, mention: str) -> dict[str, Any]:
        """The first event of ``topic`` whose payload mentions ``mention`` (an act's reference, a procedure id)."""
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.broker.bootstrap_servers, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            async with asyncio.timeout(WAIT_S):
                while True:
                    for batch in (await consumer.getmany(timeout_ms=200)).values():
                        for record in batch:
                            event: dict[str, Any] = json.loads(record.value)
                            if mention in json.dumps(event["payload"]):
                                return event
        finally:
            await consumer.stop()


@pytest.fixture(scope="module")
async def stack(
    own_broker: BrokerEndpoint, own_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    await create_topics(own_broker.bootstrap_servers, topics.ALL_TOPICS)
    work = tmp_path_factory.mktemp("warnings-e2e")
    with SmtpSink(work / "mail") as smtp:
        processes = ServiceProcesses(
            StackConfig(own_broker.bootstrap_servers, own_database, smtp.host, smtp.port, work / "sms"), work / "logs"
        )
        try:  # services that failed to come up are stopped too, never left running
            processes.start()
            yield Stack(processes, own_broker, smtp)
        finally:
            processes.stop()


def _assignation(external_ref: str, household: dict[str, str], line1: str, prefect_notified_on: str) -> bytes:
    """S-04's assignation (Valdoie, hearing on 20 July 2026) for another household and notice date."""
    return variant(
        "s04-cj-assignation",
        external_ref=external_ref,
        tenants=[household | {"role": "TITULAIRE"}],
        dwelling__address__line1=line1,
        court_case__court__rg=f"26/{external_ref[-5:]}",
        court_case__prefect_notified_on=prefect_notified_on,
    )


def _parts(message: EmailMessage) -> tuple[str, str]:
    """The text part and the HTML part as a reader sees it (tags dropped, entities decoded)."""
    text = next(p.get_content() for p in message.walk() if p.get_content_type() == "text/plain")
    markup = next(p.get_content() for p in message.walk() if p.get_content_type() == "text/html")
    return text, html.unescape(re.sub(r"<[^>]+>", "", markup))


async def _decided(stack: Stack, external_ref: str) -> dict[str, Any]:
    """The canonical notice of an act, with the decision about its procedure under ``decided``."""
    notice = await stack.first(topics.PROCEDURE_NOTIFICATION, external_ref)
    return notice | {"decided": await stack.first(topics.ORIENTATION_DECIDED, notice["payload"]["procedure_id"])}


def _mails(stack: Stack, notice: dict[str, Any]) -> dict[str, EmailMessage]:
    """The alerts about a notice's procedure, by recipient."""
    ref = notice["payload"]["procedure_short_ref"]
    return {
        rcpt: mail.message
        for mail in stack.smtp.messages
        if ref in str(mail.message["Subject"])
        for rcpt in mail.rcpt_tos
    }


async def test_the_prefect_notice_warning_reaches_the_departement_and_the_point_justice_only(stack: Stack) -> None:
    late_ref, in_time_ref = f"AS-W-{uuid.uuid4().hex[:5]}", f"AS-W-{uuid.uuid4().hex[:5]}"
    # 30 days before the 20 July hearing (< 42), and 48 days before it.
    await stack.publish(_assignation(late_ref, LATE, "8 rue de la Savoureuse", "2026-06-20"))
    await stack.publish(_assignation(in_time_ref, IN_TIME, "14 rue du Lion", "2026-06-02"))

    late, in_time = await _decided(stack, late_ref), await _decided(stack, in_time_ref)
    # This module's SMTP server hears of these two acts only: one alert per assignment of each decision.
    await stack.smtp.wait_for(sum(len(n["decided"]["payload"]["assignments"]) for n in (late, in_time)), WAIT_S)

    mails = _mails(stack, late)
    assert PREFECT in late["payload"]["notification"]["warnings"]
    assert late["decided"]["schema_version"] == "1.2"  # 1.1 brought the warnings, 1.2 the act's reception time
    told = {a["structure_id"]: a["warnings"] for a in late["decided"]["payload"]["assignments"]}
    assert told == {"CD90": [PREFECT], "CDAD90": [PREFECT], "FSL90": []}
    assert set(mails) == {CD90, CDAD90, FSL90}
    for recipient, message in mails.items():
        for part in _parts(message):
            assert (SENTENCE in part) == (recipient != FSL90), recipient
            assert "Point d'attention" in part or recipient == FSL90
            for personal in PERSONAL_DATA:
                assert personal not in part

    mails = _mails(stack, in_time)
    assert set(mails) == {CD90, CDAD90, FSL90}
    assert PREFECT not in in_time["payload"]["notification"]["warnings"]
    assert {a["structure_id"] for a in in_time["decided"]["payload"]["assignments"]} == {"CD90", "CDAD90", "FSL90"}
    assert all(a["warnings"] == [] for a in in_time["decided"]["payload"]["assignments"])
    for message in mails.values():
        for part in _parts(message):
            assert "préfet" not in part
            assert "attention" not in part

    for name in SERVICES:
        assert stack.processes.running(name), f"{name} died; see {stack.processes.log_path(name)}"
