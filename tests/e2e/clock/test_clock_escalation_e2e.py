"""Escalation of unanswered assignments through the running services, the clock set.

S-01 is oriented while the services' clock reads Monday 4 May 2026, 09:00 Paris: its three partners are
alerted and nobody answers. Orientation restarted on Tuesday 12 May (the fifth working day: 8 May is a
holiday) reminds each of the three structures; restarted on Wednesday 20 May (five working days after the
reminder: 14 May is Ascension) it tells the CCAPEX secretariat, once per silent structure. Then one
partner refuses the file on the partners' topic: the secretariat gets the refusal. Only the environment
variables an operator would set reach the processes. A stack of its own (conftest.py).
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaProducer

from devtools import BrokerEndpoint, SmtpSink
from devtools.demo import DEMO_INPUTS
from devtools.stack import ServiceProcesses
from schemas import topics
from schemas.assignment import AssignmentStatus, AssignmentStatusChange, AssignmentStatusEvent, StatusActor
from schemas.envelope import new_envelope_fields
from services.platform.db import connect_pool

if TYPE_CHECKING:
    from tests.e2e.clock.conftest import Replay, SendAct

pytestmark = pytest.mark.e2e

# Read by conftest.py's ``replay``: the clock of this module's stack.
CLOCK_ENV = {"PREVEX_CLOCK": "2026-05-04T09:00:00+02:00"}
[S01] = [demo for demo in DEMO_INPUTS if demo.scenario.startswith("S-01")]
# S-01's partners in deploy/referential/seed-90.yaml, and the CCAPEX secretariat (the default referent).
PARTNERS = {"accueil@ccas-belfort.test", "point-justice@cdad90.test", "prevention.expulsions@cd90.test"}
SECRETARIAT = "ccapex90@pref.test"


async def test_unanswered_assignments_are_reminded_then_escalated_to_the_secretariat_on_working_days(
    replay: Replay, send_act: SendAct, mail: SmtpSink, own_broker: BrokerEndpoint, own_database: str
) -> None:
    await send_act(S01)
    alerts = await mail.wait_for(3, timeout=120)
    assert {m.rcpt_tos[0] for m in alerts} == PARTNERS

    reminders = await _orientation_on(replay, "2026-05-12T09:00:00+02:00", mail, expected=6)
    relances = [m for m in reminders[3:] if "Relance" in _subject(m.message)]
    assert {m.rcpt_tos[0] for m in relances} == PARTNERS
    assert len(relances) == 3
    for m in relances:
        assert "depuis 5 jours ouvrés" in _text(m.message)
        assert "/d/" in _text(m.message)  # the structure's own token link

    escalated = await _orientation_on(replay, "2026-05-20T09:00:00+02:00", mail, expected=9)
    told = escalated[6:]
    assert [m.rcpt_tos[0] for m in told] == [SECRETARIAT] * 3
    assert all("Sans réponse" in _subject(m.message) for m in told)
    names = sorted(_text(m.message).split("la structure « ")[1].split(" »")[0] for m in told)
    assert len(set(names)) == 3
    assert all("5 jours ouvrés après une relance" in _text(m.message) for m in told)

    # A partner refuses (as the workspace publishes it): the secretariat is told, with the reason in French.
    pool = await connect_pool(own_database, schema="orientation", max_size=1)
    try:
        row = await pool.fetchrow("SELECT assignment_id, procedure_id FROM assignment WHERE structure_id = 'CD90'")
    finally:
        await pool.close()
    assert row is not None
    refusal = AssignmentStatusChange(
        assignment_id=row["assignment_id"],
        procedure_id=row["procedure_id"],
        structure_id="CD90",
        status=AssignmentStatus.REFUSEE,
        reason="DEJA_SUIVI",
        by=StatusActor.PARTNER,
    )
    event = AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=refusal)
    producer = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        key = str(row["procedure_id"]).encode()
        await producer.send_and_wait(topics.ASSIGNMENT_STATUS, event.model_dump_json().encode(), key=key)
    finally:
        await producer.stop()
    [refused] = (await mail.wait_for(10, timeout=120))[9:]
    assert refused.rcpt_tos[0] == SECRETARIAT
    assert "Refus" in _subject(refused.message)
    assert "Motif : Ménage déjà suivi par une autre structure" in _text(refused.message)


async def _orientation_on(replay: Replay, clock: str, mail: SmtpSink, *, expected: int) -> list[Any]:
    """Restart orientation with its clock frozen at ``clock`` and a quick escalation sweep; return the mails
    once ``expected`` were received in all."""
    if replay.processes.running("orientation"):  # the stack's own, on 4 May: stopped as a crash would
        replay.processes.kill("orientation")
    env = {"PREVEX_CLOCK": clock, "PREVEX_CLOCK_FROZEN": "true", "ORIENTATION_ESCALATION_INTERVAL_S": "0.5"}
    later = ServiceProcesses(replay.config, replay.work / f"logs-{clock[:10]}", extra_env=env)
    later.start("orientation")
    try:
        mails = await mail.wait_for(expected, timeout=120)
        assert later.running("orientation"), f"orientation died; see {later.log_path('orientation')}"
    finally:
        later.stop()
    return list(mails)


def _subject(message: object) -> str:
    assert isinstance(message, EmailMessage)
    return str(message["Subject"])


def _text(message: object) -> str:
    assert isinstance(message, EmailMessage)
    return "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")
