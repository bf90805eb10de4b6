"""Alerts a partner can act on (issue 17), from orientation.decided to the SMTP server on real PostgreSQL:
the offers' names under « Pourquoi votre structure », « Ce qui est attendu » with the day to answer by, the
next legal date, and for fallback F1 the offers that came closest with why each was excluded. A notice
copied from the announced alert (a reminder) asks nothing by that day and names no offer again."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import pytest

from devtools.sms_emulator import decided_event
from schemas import topics
from schemas.assignment import AssignmentEscalation, AssignmentEscalationEvent, EscalationStep
from schemas.envelope import new_envelope_fields
from schemas.orientation import ClosestOffer, ExclusionReason
from schemas.stages import Stage
from services.notifier.intake import record_escalations

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import ContactBuilders, World

pytestmark = pytest.mark.integration

PARTNER, SECRETARIAT = "fsl@cd90.test", "ccapex90@pref.test"
REF = "90-2026-000007"


def _text(mail: Any) -> str:
    parts = [part.get_content() for part in mail.message.walk() if part.get_content_maintype() == "text"]
    return str(mail.message["Subject"]) + "\n" + "\n".join(parts)


def _with(event: Any, assignment: dict[str, Any] | None = None, **payload: Any) -> Any:
    """``event`` with its (first) assignment's and its payload's fields changed."""
    assignments = [event.payload.assignments[0].model_copy(update=assignment or {}), *event.payload.assignments[1:]]
    return event.model_copy(
        update={"payload": event.payload.model_copy(update={**payload, "assignments": assignments})}
    )


async def test_the_partner_reads_its_offers_the_day_to_answer_by_and_the_next_legal_date(
    world: World, contacts: type[ContactBuilders]
) -> None:
    # The clock: Tuesday 3 March 2026. A hearing on 12 May, the commandement's period ended on 20 February.
    await world.structure("FSL90", contacts.email("FSL90-MAIL", PARTNER))
    decided = _with(
        decided_event(REF, ["FSL90"], stage=Stage.ASSIGNATION),
        {"offer_names": ["FSL – maintien dans les lieux"], "respond_by": date(2026, 3, 10)},
        hearing_date=date(2026, 5, 12),
        commandement_deadline=date(2026, 2, 20),
    )
    await world.record(decided)
    await world.run()

    [mail] = world.mails_to(PARTNER)
    text = _text(mail)
    assert "Audience prévue le 12/05/2026\n" in text  # the next date ahead, not the period already ended
    assert "Délai du commandement" not in text
    assert (
        "Ce qui est attendu :\nMerci d'accepter ou de refuser ce dossier dans l'espace sécurisé avant le 10/03/2026"
    ) in text
    assert "Pourquoi votre structure :\n- offre concernée : FSL – maintien dans les lieux\n" in text
    assert "<li>offre concernée : FSL – maintien dans les lieux</li>" in text
    stored = await world.pool.fetchrow("SELECT offers, respond_by, hearing_date, commandement_deadline FROM alert")
    assert stored is not None
    assert dict(stored) == {
        "offers": ["FSL – maintien dans les lieux"],
        "respond_by": date(2026, 3, 10),
        "hearing_date": date(2026, 5, 12),
        "commandement_deadline": date(2026, 2, 20),
    }

    # The reminder orientation sends that day copies the announced alert, not what it asked.
    world.smtp.clear()
    [assignment] = decided.payload.assignments
    reminder = AssignmentEscalation(
        assignment_id=assignment.assignment_id,
        procedure_id=decided.payload.procedure_id,
        structure_id="FSL90",
        step=EscalationStep.STRUCTURE_REMINDER,
        working_days=5,
    )
    async with world.pool.acquire() as conn, conn.transaction():
        event = AssignmentEscalationEvent(**new_envelope_fields("orientation"), payload=reminder)
        assert await record_escalations(conn, [event], topics.ASSIGNMENT_ESCALATION) == 1
    await world.run()
    [mail] = world.mails_to(PARTNER)
    assert "Relance" in str(mail.message["Subject"])
    assert "Ce qui est attendu" not in _text(mail)
    assert "offre concernée" not in _text(mail)


async def test_the_secretariat_reads_the_closest_offers_of_a_manual_orientation(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("CCAPEX90", contacts.email("CCAPEX-MAIL", SECRETARIAT), default_referent=True)
    closest = [
        ClosestOffer(
            offer_id="CAF90-MAINTIEN",
            offer_name="CAF – maintien dans le logement",
            structure_id="CAF90",
            structure_name="CAF du Territoire de Belfort",
            excluded_by=[ExclusionReason.HOUSEHOLD],
        ),
        ClosestOffer(
            offer_id="CD90-ACCOMP",
            offer_name="Accompagnement social",
            structure_id="CD90",
            structure_name="Département",
            excluded_by=[ExclusionReason.STAGE, ExclusionReason.ZONE],
        ),
    ]
    decided = _with(
        decided_event(REF, ["CCAPEX90"], stage=Stage.IMPAYE_CONSTATE, fallback_used=True), closest_offers=closest
    )
    await world.record(decided)
    await world.run()

    [mail] = world.mails_to(SECRETARIAT)
    text = _text(mail)
    assert "Aucune offre – orientation manuelle requise" in text
    assert (
        "Offres les plus proches, et pourquoi elles ont été écartées :\n"
        "- CAF – maintien dans le logement (CAF du Territoire de Belfort) : un critère portant sur la situation du"
        " ménage n'est pas rempli (à voir dans l'espace sécurisé)\n"
        "- Accompagnement social (Département) : l'offre ne couvre pas cette étape de la procédure ; la commune du"
        " logement est hors de sa zone d'intervention\n"
    ) in text
    assert await world.pool.fetchval("SELECT closest FROM alert") == [
        ["CAF – maintien dans le logement", "CAF du Territoire de Belfort", ["HOUSEHOLD"]],
        ["Accompagnement social", "Département", ["STAGE", "ZONE"]],
    ]
