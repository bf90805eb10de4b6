"""Issue 14 on the running services: the CCAPEX removes a structure from S-01 (the ``assignment.status``
override the desk publishes, sent on the partners' topic); orientation closes the assignment and the notifier
emails that structure « Dossier retiré de votre structure » — read as the ``.eml`` the SMTP sink received —
once, however often the event comes."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import TYPE_CHECKING

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from devtools import BrokerEndpoint, SmtpSink
from schemas import topics
from schemas.assignment import (
    AssignmentOverride,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    StatusActor,
)
from schemas.envelope import new_envelope_fields

if TYPE_CHECKING:
    from tests.e2e.workspace.conftest import WorkspaceStack

pytestmark = pytest.mark.e2e

S01_REF = "90-2026-000001"
REMOVED = "Dossier retiré de votre structure"
PERSONAL_DATA = ("Durand", "Léa", "Mulhouse", "612345678")  # S-01's household, as ingest received it


async def _remove(broker: BrokerEndpoint, stack: WorkspaceStack, structure_id: str) -> AssignmentStatusEvent:
    """Publish the desk's REMOVE of ``structure_id``'s S-01 assignment (its id read from the workspace's
    read model, as the desk does); return the event."""
    row = await stack.assignment(S01_REF, structure_id)
    change = AssignmentStatusChange(
        assignment_id=row["assignment_id"],
        procedure_id=row["procedure_id"],
        structure_id=structure_id,
        status=AssignmentStatus.CLOTUREE,
        by=StatusActor.CCAPEX,
        override=AssignmentOverride.REMOVE,
    )
    event = AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=change)
    await _publish(broker, event)
    return event


async def _publish(broker: BrokerEndpoint, event: AssignmentStatusEvent) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        key = str(event.payload.procedure_id).encode()
        await producer.send_and_wait(topics.ASSIGNMENT_STATUS, event.model_dump_json().encode(), key=key)
    finally:
        await producer.stop()


def _removals(smtp: SmtpSink, recipient: str) -> list[EmailMessage]:
    found = []
    for mail in smtp.messages:
        assert isinstance(mail.message, EmailMessage)
        if recipient in mail.rcpt_tos and REMOVED in str(mail.message["Subject"]):
            found.append(mail.message)
    return found


async def _wait_removal(smtp: SmtpSink, recipient: str, timeout_s: float = 120) -> EmailMessage:
    async with asyncio.timeout(timeout_s):
        while True:
            if found := _removals(smtp, recipient):
                return found[0]
            await asyncio.sleep(0.2)


async def test_a_removed_structure_receives_one_removal_email(
    workspace_stack: WorkspaceStack, own_broker: BrokerEndpoint
) -> None:
    stack = workspace_stack
    removal = await _remove(own_broker, stack, "CDAD90")

    message = await _wait_removal(stack.smtp, "point-justice@cdad90.test")
    assert str(message["Subject"]) == f"[Prévention expulsions 90] {REMOVED} – {S01_REF}"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert html is not None
    text = plain.get_content()
    assert f"a retiré le dossier {S01_REF} à votre structure" in text
    assert "Secrétariat de la CCAPEX du Territoire de Belfort, ccapex90@pref.test" in text
    for part in (text, html.get_content(), str(message["Subject"])):
        assert not [word for word in PERSONAL_DATA if word in part]
    assert "/d/" not in text  # no link: the structure no longer holds the case

    # Orientation closed the assignment (the same event, its own consumer group).
    query = "SELECT status FROM orientation.assignment WHERE assignment_id = $1"
    conn = await asyncpg.connect(stack.database_url)
    try:
        async with asyncio.timeout(60):
            while True:
                if await conn.fetchval(query, removal.payload.assignment_id) == "CLOTUREE":
                    break
                await asyncio.sleep(0.2)
    finally:
        await conn.close()

    # The event again, then another removal on the same partition: once the second structure is told, the
    # duplicate before it has been consumed — and told nobody.
    await _publish(own_broker, removal)
    await _remove(own_broker, stack, "CCAS-BELFORT")
    await _wait_removal(stack.smtp, "accueil@ccas-belfort.test")
    assert len(_removals(stack.smtp, "point-justice@cdad90.test")) == 1
