"""The workspace's requests for a new link (``workspace.link_requested``), on real PostgreSQL, SMTP and the SMS
provider emulator: the structure that asked gets a fresh token link for the same assignment — by email, or
by SMS when it is reached by SMS only — once per request whatever the redeliveries, through the usual
delivery path (receipts); nothing for an assignment never alerted to it; the default referent (F3) is told
which structure could not be reached when it has no contact."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from schemas import topics
from schemas.envelope import new_envelope_fields
from schemas.referential import Contact
from schemas.workspace import LinkRequested, LinkRequestedEvent
from services.notifier.intake import record_link_requests
from services.platform.links import LinkKeys, read_link, verify_link

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import ContactBuilders, World

pytestmark = pytest.mark.integration

REF = "90-2026-000044"
PARTNER, REFERENT, SECRETARIAT = "fsl@cd90.test", "referent@fsl90.test", "ccapex90@pref.test"
MOBILE = "+33612345678"
SENT = topics.NOTIFICATION_SENT
TOKEN_LINK = re.compile(r"https://prevex\.example/d/([A-Za-z0-9_-]{20})")


def _request(decided: Any, **overrides: Any) -> LinkRequestedEvent:
    [assignment] = decided.payload.assignments
    fields: dict[str, Any] = {
        "request_id": uuid.uuid4(),
        "assignment_id": assignment.assignment_id,
        "procedure_id": decided.payload.procedure_id,
        "procedure_short_ref": REF,
        "structure_id": assignment.structure_id,
    }
    payload = LinkRequested(**(fields | overrides))
    return LinkRequestedEvent(
        **new_envelope_fields("workspace", correlation_id=decided.correlation_id), payload=payload
    )


async def _record(world: World, *events: LinkRequestedEvent) -> int:
    async with world.pool.acquire() as conn, conn.transaction():
        return await record_link_requests(conn, list(events), topics.WORKSPACE_LINK_REQUESTED)


def _text(mail: Any) -> str:
    parts = [part.get_content() for part in mail.message.walk() if part.get_content_maintype() == "text"]
    return str(mail.message["Subject"]) + "\n" + "\n".join(parts)


async def _alerted(world: World, structure_id: str, *contacts: Contact) -> Any:
    """The decision that alerted ``structure_id``, its messages cleared (SMS: see ``_new_sms``)."""
    await world.structure(structure_id, *contacts)
    decided = await world.decide(structure_id, ref=REF)
    await world.run()
    world.smtp.clear()
    return decided


def _new_sms(world: World, before: int) -> list[Any]:
    return list(world.sms.received[before:])


async def test_the_structure_gets_one_fresh_link_by_email_per_request(
    world: World, contacts: type[ContactBuilders]
) -> None:
    decided = await _alerted(
        world,
        "FSL90",
        contacts.email("FSL90-MAIL", PARTNER),
        contacts.email("FSL90-REFERENT", REFERENT, generic=False),
        contacts.sms("FSL90-PERM", MOBILE),
    )
    world.clock.advance(days=40)  # the first alert's link has expired by now
    texts_before, receipts_before = len(world.sms.received), len(await world.receipts(SENT))
    request = _request(decided)
    assert await _record(world, request) == 1
    # Redelivered, or re-published under another event id: nothing more.
    assert await _record(world, request) == 0
    assert await _record(world, request.model_copy(update={"event_id": uuid.uuid4()})) == 0
    await world.run()

    # Email only: the structure has addresses, so its mobile is not used.
    assert sorted(r for mail in world.smtp.messages for r in mail.rcpt_tos) == [PARTNER, REFERENT]
    assert _new_sms(world, texts_before) == []
    text = _text(world.mails_to(PARTNER)[0])
    assert f"Nouveau lien – Dossier {REF}" in text
    assert "Un nouveau lien d'accès au dossier" in text
    [token] = set(TOKEN_LINK.findall(text))
    [assignment] = decided.payload.assignments
    today = world.clock.now.date()
    keys = LinkKeys.parse(world.settings.link_secrets.get_secret_value())
    ref = verify_link(keys, token, assignment_id=assignment.assignment_id, structure_id="FSL90", today=today)
    assert ref.expires_on == today + timedelta(days=world.settings.link_lifetime_days)
    assert f"valable jusqu'au {ref.expires_on:%d/%m/%Y} inclus" in text
    sent = (await world.receipts(SENT))[receipts_before:]
    assert sorted((r["contact_id"], r["channel"]) for r in sent) == [
        ("FSL90-MAIL", "EMAIL"),
        ("FSL90-REFERENT", "EMAIL"),
    ]
    assert {r["assignment_id"] for r in sent} == {str(assignment.assignment_id)}

    # Another request (the workspace let it through after its interval): another message.
    world.smtp.clear()
    assert await _record(world, _request(decided)) == 1
    await world.run()
    assert len(world.mails_to(PARTNER)) == 1


async def test_an_sms_only_structure_gets_its_new_link_by_sms(world: World, contacts: type[ContactBuilders]) -> None:
    decided = await _alerted(world, "MED", contacts.sms("MED-PERM", MOBILE))
    texts_before = len(world.sms.received)
    assert await _record(world, _request(decided)) == 1
    await world.run()
    [sms] = _new_sms(world, texts_before)
    assert sms.recipient == MOBILE
    assert re.fullmatch(
        rf"Expulsions 90 \(nouveau lien\): dossier {REF}, valable jusqu'au \d\d/\d\d/\d{{4}}\. {TOKEN_LINK.pattern}",
        sms.text,
    )
    assert len(sms.text) <= 160
    assert read_link(TOKEN_LINK.findall(sms.text)[0]).prefix == decided.payload.assignments[0].assignment_id.bytes[:6]
    assert world.smtp.messages == []


async def test_a_request_for_an_assignment_never_alerted_to_that_structure_sends_nothing(
    world: World, contacts: type[ContactBuilders]
) -> None:
    decided = await _alerted(world, "FSL90", contacts.email("FSL90-MAIL", PARTNER))
    ignored = [
        _request(decided, assignment_id=uuid.uuid4()),
        _request(decided, structure_id="CCAS90"),
        _request(decided, procedure_id=uuid.uuid4()),
    ]
    assert await _record(world, *ignored) == 0
    await world.run()
    assert world.smtp.messages == []


async def test_a_structure_without_contact_left_has_the_secretariat_told(
    world: World, contacts: type[ContactBuilders]
) -> None:
    decided = await _alerted(world, "FSL90", contacts.email("FSL90-MAIL", PARTNER))
    await world.structure("FSL90", version=2)  # its contacts were removed from the référentiel since
    assert await _record(world, _request(decided)) == 1
    await world.run()
    [mail] = world.smtp.messages
    assert list(mail.rcpt_tos) == [SECRETARIAT]
    text = _text(mail)
    assert f"Nouveau lien non remis – Dossier {REF}" in text
    assert "La structure « Structure FSL90 » a demandé" in text
    assert f"https://prevex.example/secretariat/dossiers/{REF}" in text
    assert "/d/" not in text  # no token: it would sign the secretariat in as FSL90
