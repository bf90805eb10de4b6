"""The walking skeleton, end to end on real parts: a CJ act in, the matched partners' emails out.

docs/domain.md §9.1 (S-01): a commandement de payer for a Belfort household with a private landlord is matched to
CCAS-BELFORT, PJ90-INFO and CD90-ACCOMP; each of those structures gets exactly one email carrying the
reference, the stage, the commune and a link, and nothing personal. Sending the same act again
changes nothing for the partners.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import BrokerEndpoint, SmtpSink
from devtools.demo import DEMO_INPUTS
from devtools.stack import SERVICES, ServiceProcesses
from schemas import topics
from schemas.orientation import OrientationDecidedEvent

pytestmark = pytest.mark.e2e

S01 = DEMO_INPUTS[0]
# Contacts of the structures S-01 is matched to, as written in deploy/referential/seed-90.yaml.
S01_RECIPIENTS = {"accueil@ccas-belfort.test", "point-justice@cdad90.test", "prevention.expulsions@cd90.test"}
WORKSPACE_LINK = re.compile(r"http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]{20}")
PERSONAL_DATA = ("Durand", "Léa", "Mulhouse", "612345678", "2400", "2 400", "600")


async def _publish(bootstrap: str, topic: str, value: bytes, key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _records(bootstrap: str, topic: str, count: int, timeout_s: float = 60) -> list[bytes]:
    """Read the first ``count`` records of ``topic`` from the beginning."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"e2e-{uuid.uuid4().hex}", auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(values) < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    values += [r.value for r in batch]
    finally:
        await consumer.stop()
    return values


def _text_of(mail_message: object) -> str:
    from email.message import EmailMessage  # noqa: PLC0415

    assert isinstance(mail_message, EmailMessage)
    parts = [part.get_content() for part in mail_message.walk() if part.get_content_maintype() == "text"]
    return str(mail_message["Subject"]) + "\n" + "\n".join(parts)


async def test_commandement_de_payer_alerts_each_matched_structure_once(
    stack: ServiceProcesses, broker: BrokerEndpoint, smtp: SmtpSink, stack_logs: Path
) -> None:
    await _publish(broker.bootstrap_servers, topics.RAW_CJ, S01.payload(), S01.emitter_id().encode())

    mails = await smtp.wait_for(3, timeout=90)
    assert {rcpt for mail in mails for rcpt in mail.rcpt_tos} == S01_RECIPIENTS
    assert all(len(mail.rcpt_tos) == 1 for mail in mails)

    [decided_raw] = await _records(broker.bootstrap_servers, topics.ORIENTATION_DECIDED, 1)
    decided = OrientationDecidedEvent.model_validate_json(decided_raw).payload
    for mail in mails:
        text = _text_of(mail.message)
        assert decided.procedure_short_ref in text
        assert "Commandement de payer" in text
        assert "Belfort" in text
        # The link opens the case in the workspace with a signed token: random characters, left out of the
        # personal-data check below (a token may hold any digits).
        text, links = WORKSPACE_LINK.subn("", text)
        assert links >= 1
        for personal in PERSONAL_DATA:
            assert personal not in text, f"{personal!r} leaked into an alert"

    # The same act again (an emitter's retry): ingest reports a duplicate and nothing moves downstream.
    await _publish(broker.bootstrap_servers, topics.RAW_CJ, S01.payload(), S01.emitter_id().encode())
    [duplicate] = await _records(broker.bootstrap_servers, topics.INGEST_DUPLICATE, 1)
    assert json.loads(duplicate)["payload"]["external_ref"] == "CP-2026-0412"
    # The same decision delivered again (a consumer restarted before its commit) sends nothing either.
    await _publish(
        broker.bootstrap_servers, topics.ORIENTATION_DECIDED, decided_raw, str(decided.procedure_id).encode()
    )
    await asyncio.sleep(3)  # a settle window for anything wrongly triggered; not a timing assertion
    assert len(smtp.messages) == 3
    assert len(await _records(broker.bootstrap_servers, topics.NOTIFICATION_SENT, 3)) == 3

    for name in SERVICES:
        assert stack.running(name), f"{name} died; see {stack.log_path(name)}"
        log_text = stack.log_path(name).read_text("utf-8")
        for personal in PERSONAL_DATA[:4]:
            assert personal not in log_text, f"{personal!r} leaked into the {name} log"
        for line in filter(None, log_text.splitlines()):
            json.loads(line)  # every log line is a JSON object
