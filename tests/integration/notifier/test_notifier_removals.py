"""A structure the CCAPEX removed from a case (``assignment.status`` CLOTUREE, override REMOVE) is told so, on
real PostgreSQL, SMTP and the SMS provider emulator (issue 14): « Dossier retiré de votre structure », once per
removed assignment, through the usual delivery path (its contacts and channels, quiet hours, receipts)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from schemas import topics
from schemas.assignment import (
    AssignmentOverride,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    StatusActor,
)
from schemas.envelope import new_envelope_fields
from services.notifier.intake import record_removals

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import ContactBuilders, World

pytestmark = pytest.mark.integration

REF = "90-2026-000042"
FSL = "fsl@cd90.test"
MOBILE = "+33612345678"


def _removal(decided: Any, **overrides: Any) -> AssignmentStatusEvent:
    [assignment] = decided.payload.assignments
    fields: dict[str, Any] = {
        "assignment_id": assignment.assignment_id,
        "procedure_id": decided.payload.procedure_id,
        "structure_id": assignment.structure_id,
        "status": AssignmentStatus.CLOTUREE,
        "by": StatusActor.CCAPEX,
        "override": AssignmentOverride.REMOVE,
    }
    payload = AssignmentStatusChange(**(fields | overrides))
    return AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=payload)


async def _record(world: World, *events: AssignmentStatusEvent) -> int:
    async with world.pool.acquire() as conn, conn.transaction():
        return await record_removals(conn, list(events), topics.ASSIGNMENT_STATUS)


def _text(mail: Any) -> str:
    parts = [part.get_content() for part in mail.message.walk() if part.get_content_maintype() == "text"]
    return str(mail.message["Subject"]) + "\n" + "\n".join(parts)


@pytest.fixture
async def alerted(world: World, contacts: type[ContactBuilders]) -> Any:
    """FSL90 (an email and an SMS contact) alerted of REF, its messages sent; the SMTP sink emptied."""
    await world.structure("FSL90", contacts.email("FSL90-MAIL", FSL), contacts.sms("FSL90-SMS", MOBILE))
    decided = await world.decide("FSL90", ref=REF)
    await world.run()
    world.smtp.clear()
    return decided


def _removal_sms(world: World) -> list[Any]:
    return [sms for sms in world.sms.received if "retiré de votre structure" in sms.text]


async def test_the_removed_structure_is_told_once_by_its_channels(world: World, alerted: Any) -> None:
    removal = _removal(alerted)
    assert await _record(world, removal) == 1
    await world.run()

    [mail] = world.mails_to(FSL)
    text = _text(mail)
    assert str(mail.message["Subject"]) == f"[Prévention expulsions 90] Dossier retiré de votre structure – {REF}"
    assert f"le secrétariat de la CCAPEX a retiré le dossier {REF} à votre structure" in text
    assert "Structure CCAPEX90, ccapex90@pref.test" in text  # who to contact, from the référentiel topic
    assert "https://" not in text  # no link: the structure no longer holds the case
    [sms] = _removal_sms(world)
    assert sms.recipient == MOBILE
    assert f"dossier {REF} retiré de votre structure par la CCAPEX" in sms.text
    assert world.mails_to("ccapex90@pref.test") == []
    sent = [r for r in await world.receipts(topics.NOTIFICATION_SENT) if r["structure_id"] == "FSL90"]
    assert len(sent) == 4  # the alert and the removal, each by email and SMS
    rows = await world.pool.fetch("SELECT alert_key, mode FROM alert WHERE alert_key LIKE 'removed:%'")
    assert [(r["alert_key"], r["mode"]) for r in rows] == [(f"removed:{removal.payload.assignment_id}", "IMMEDIATE")]

    # Redelivered, and re-published under a new event id: nothing more.
    assert await _record(world, removal) == 0
    assert await _record(world, removal.model_copy(update={"event_id": uuid.uuid4()})) == 0
    await world.run()
    assert len(world.mails_to(FSL)) == 1
    assert len(_removal_sms(world)) == 1


async def test_the_sms_waits_for_the_end_of_the_quiet_hours(world: World, alerted: Any) -> None:
    world.clock.now = world.clock.now.replace(hour=21)  # 22:00 in Paris: quiet hours for SMS
    assert await _record(world, _removal(alerted)) == 1
    await world.step()
    assert len(world.mails_to(FSL)) == 1  # email is never held
    assert _removal_sms(world) == []
    await world.run()  # the clock moves to 08:00
    assert len(_removal_sms(world)) == 1


async def test_what_is_not_a_removal_of_an_alerted_assignment_tells_nobody(world: World, alerted: Any) -> None:
    ignored = [
        _removal(alerted, by=StatusActor.PARTNER, override=None, reason="DETTE_SOLDEE"),  # the partner closed it
        _removal(alerted, override=None),  # closed on the partner's behalf
        _removal(alerted, assignment_id=uuid.uuid4()),  # never alerted
        _removal(alerted, structure_id="CCAS90"),  # another structure's
        _removal(alerted, procedure_id=uuid.uuid4()),  # another procedure's
    ]
    assert await _record(world, *ignored) == 0
    await world.run()
    assert world.smtp.messages == []
    assert _removal_sms(world) == []
    assert await _record(world, _removal(alerted)) == 1


async def test_a_refused_removal_email_is_retried_then_falls_back_to_the_secretariat(
    world: World, alerted: Any
) -> None:
    world.smtp_replies.script(FSL, "451 4.3.0 Try again later")
    assert await _record(world, _removal(alerted)) == 1
    await world.run()
    [mail] = world.mails_to(FSL)  # the second attempt
    assert REF in str(mail.message["Subject"])
    failed = [r for r in await world.receipts(topics.NOTIFICATION_FAILED) if r["structure_id"] == "FSL90"]
    assert [r["will_retry"] for r in failed] == [True]

    # Another removed assignment whose email is refused for good: the secretariat is told instead (F3).
    other = await world.decide("FSL90", ref="90-2026-000043")
    await world.run()
    world.smtp.clear()
    world.smtp_replies.script(FSL, "550 5.1.1 <fsl@cd90.test>: Recipient address rejected")
    assert await _record(world, _removal(other)) == 1
    await world.run()
    [fallback] = world.mails_to("ccapex90@pref.test")
    text = _text(fallback)
    assert str(fallback.message["Subject"]).endswith("Repli – Dossier retiré de votre structure – 90-2026-000043")
    assert "la structure « Structure FSL90 » n'a pu être jointe pour ce retrait" in text
