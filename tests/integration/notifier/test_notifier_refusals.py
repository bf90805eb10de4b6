"""A partner's refusal (``assignment.status`` REFUSEE) told to the CCAPEX secretariat, on real PostgreSQL and
SMTP: one email per refused assignment, with the reference, the structure that refused and the reason in
French, linking to the case page; nothing for what is not a partner's refusal of an alerted assignment."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from schemas import topics
from schemas.assignment import AssignmentStatus, AssignmentStatusChange, AssignmentStatusEvent, StatusActor
from schemas.envelope import new_envelope_fields
from services.notifier.intake import record_refusals

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import ContactBuilders, World

pytestmark = pytest.mark.integration

SECRETARIAT = "ccapex90@pref.test"
REF = "90-2026-000042"


def _status(decided: Any, status: AssignmentStatus, reason: str | None, **overrides: Any) -> AssignmentStatusEvent:
    [assignment] = decided.payload.assignments
    fields: dict[str, Any] = {
        "assignment_id": assignment.assignment_id,
        "procedure_id": decided.payload.procedure_id,
        "structure_id": assignment.structure_id,
        "status": status,
        "reason": reason,
        "by": StatusActor.PARTNER,
    }
    payload = AssignmentStatusChange(**(fields | overrides))
    return AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=payload)


async def _record(world: World, *events: AssignmentStatusEvent) -> int:
    async with world.pool.acquire() as conn, conn.transaction():
        return await record_refusals(conn, list(events), topics.ASSIGNMENT_STATUS)


def _text(mail: Any) -> str:
    parts = [part.get_content() for part in mail.message.walk() if part.get_content_maintype() == "text"]
    return str(mail.message["Subject"]) + "\n" + "\n".join(parts)


@pytest.fixture
async def alerted(world: World, contacts: type[ContactBuilders]) -> Any:
    """FSL90 alerted of REF, its email sent; the SMTP sink emptied."""
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "fsl@cd90.test"))
    decided = await world.decide("FSL90", ref=REF)
    await world.run()
    world.smtp.clear()
    return decided


async def test_a_refusal_emails_the_secretariat_once_with_reference_structure_and_reason(
    world: World, alerted: Any
) -> None:
    refusal = _status(alerted, AssignmentStatus.REFUSEE, "HORS_TERRITOIRE")
    assert await _record(world, refusal) == 1
    await world.run()

    [mail] = world.mails_to(SECRETARIAT)
    assert list(mail.rcpt_tos) == [SECRETARIAT]
    text = _text(mail)
    assert f"Refus – Dossier {REF}" in str(mail.message["Subject"])
    assert "la structure « Structure FSL90 » a refusé ce dossier" in text
    assert "Motif : Hors de notre territoire" in text
    # The secretariat opens the case page in its own session, not with a token bound to the refusing structure.
    assert f"https://prevex.example/secretariat/dossiers/{REF}" in text
    assert "/d/" not in text
    assert "HORS_TERRITOIRE" not in text

    # Redelivered, and re-published under a new event id: still one email.
    assert await _record(world, refusal) == 0
    assert await _record(world, refusal.model_copy(update={"event_id": uuid.uuid4()})) == 0
    await world.run()
    assert len(world.mails_to(SECRETARIAT)) == 1
    assert world.mails_to("fsl@cd90.test") == []


async def test_a_reason_code_of_a_partner_system_is_shown_as_another_reason_with_its_code(
    world: World, alerted: Any
) -> None:
    assert await _record(world, _status(alerted, AssignmentStatus.REFUSEE, "HORS_DELAI_CONVENTION")) == 1
    await world.run()
    [mail] = world.mails_to(SECRETARIAT)
    assert "Motif : Autre motif (code HORS_DELAI_CONVENTION)" in _text(mail)


async def test_what_is_not_a_partners_refusal_of_an_alerted_assignment_tells_nobody(world: World, alerted: Any) -> None:
    ignored = [
        _status(alerted, AssignmentStatus.ACCEPTEE, None),
        _status(alerted, AssignmentStatus.CLOTUREE, "DETTE_SOLDEE"),
        _status(alerted, AssignmentStatus.REFUSEE, "AUTRE", assignment_id=uuid.uuid4()),  # never alerted
        _status(alerted, AssignmentStatus.REFUSEE, "AUTRE", structure_id="CCAS90"),  # another structure's
        _status(alerted, AssignmentStatus.REFUSEE, "AUTRE", procedure_id=uuid.uuid4()),  # another procedure's
        _status(alerted, AssignmentStatus.REFUSEE, "AUTRE", by=StatusActor.CCAPEX),  # the secretariat itself
    ]
    assert await _record(world, *ignored) == 0
    await world.run()
    assert world.smtp.messages == []
    # The genuine refusal afterwards is still told.
    assert await _record(world, _status(alerted, AssignmentStatus.REFUSEE, "DEJA_SUIVI")) == 1
