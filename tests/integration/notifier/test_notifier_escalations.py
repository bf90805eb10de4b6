"""Orientation's escalations of an unanswered assignment, on real PostgreSQL and SMTP: the structure's
reminder (with its token link), then the CCAPEX secretariat's alert naming the silent structure (with the
case page's link); each once, nothing for an assignment the notifier never alerted."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from schemas import topics
from schemas.assignment import AssignmentEscalation, AssignmentEscalationEvent, EscalationStep
from schemas.envelope import new_envelope_fields
from services.notifier.intake import record_escalations

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import ContactBuilders, World

pytestmark = pytest.mark.integration

SECRETARIAT, PARTNER = "ccapex90@pref.test", "fsl@cd90.test"
REF = "90-2026-000043"


def _escalation(decided: Any, step: EscalationStep, **overrides: Any) -> AssignmentEscalationEvent:
    [assignment] = decided.payload.assignments
    fields: dict[str, Any] = {
        "assignment_id": assignment.assignment_id,
        "procedure_id": decided.payload.procedure_id,
        "structure_id": assignment.structure_id,
        "step": step,
        "working_days": 5,
    }
    payload = AssignmentEscalation(**(fields | overrides))
    return AssignmentEscalationEvent(**new_envelope_fields("orientation"), payload=payload)


async def _record(world: World, *events: AssignmentEscalationEvent) -> int:
    async with world.pool.acquire() as conn, conn.transaction():
        return await record_escalations(conn, list(events), topics.ASSIGNMENT_ESCALATION)


def _text(mail: Any) -> str:
    parts = [part.get_content() for part in mail.message.walk() if part.get_content_maintype() == "text"]
    return str(mail.message["Subject"]) + "\n" + "\n".join(parts)


@pytest.fixture
async def alerted(world: World, contacts: type[ContactBuilders]) -> Any:
    await world.structure("FSL90", contacts.email("FSL90-MAIL", PARTNER))
    decided = await world.decide("FSL90", ref=REF)
    await world.run()
    world.smtp.clear()
    return decided


async def test_the_structure_is_reminded_once_then_the_secretariat_is_told_once(world: World, alerted: Any) -> None:
    reminder = _escalation(alerted, EscalationStep.STRUCTURE_REMINDER)
    assert await _record(world, reminder) == 1
    assert await _record(world, reminder.model_copy(update={"event_id": uuid.uuid4()})) == 0
    await world.run()
    [mail] = world.smtp.messages
    assert list(mail.rcpt_tos) == [PARTNER]
    text = _text(mail)
    assert f"Relance – Dossier {REF}" in str(mail.message["Subject"])
    assert "attend la réponse de votre structure depuis 5 jours ouvrés" in text
    assert re.search(r"https://prevex\.example/d/[A-Za-z0-9_-]{20}", text)  # its own token, as the first alert

    world.smtp.clear()
    secretariat = _escalation(alerted, EscalationStep.SECRETARIAT_ALERT)
    assert await _record(world, secretariat, secretariat.model_copy(update={"event_id": uuid.uuid4()})) == 1
    await world.run()
    [mail] = world.smtp.messages
    assert list(mail.rcpt_tos) == [SECRETARIAT]
    text = _text(mail)
    assert f"Sans réponse – Dossier {REF}" in str(mail.message["Subject"])
    assert "la structure « Structure FSL90 » n'a pas répondu pour ce dossier, 5 jours ouvrés après une relance" in text
    assert f"https://prevex.example/secretariat/dossiers/{REF}" in text
    assert "/d/" not in text


async def test_an_escalation_of_an_assignment_never_alerted_tells_nobody(world: World, alerted: Any) -> None:
    ignored = [
        _escalation(alerted, EscalationStep.STRUCTURE_REMINDER, assignment_id=uuid.uuid4()),
        _escalation(alerted, EscalationStep.SECRETARIAT_ALERT, structure_id="CCAS90"),
        _escalation(alerted, EscalationStep.SECRETARIAT_ALERT, procedure_id=uuid.uuid4()),
    ]
    assert await _record(world, *ignored) == 0
    await world.run()
    assert world.smtp.messages == []
