"""Notifier's consumers: contacts from the référentiel topic, alerts from orientation decisions."""

from __future__ import annotations

import uuid

from schemas.orientation import AssignmentKind, OrientationDecidedEvent
from schemas.referential import ReferentialChangedEvent
from services.notifier import repository as repo
from services.platform.db import Conn
from services.platform.inbox import claim_event
from services.platform.logging import get_logger, log_context

__all__ = ["record_decision", "record_structure"]

log = get_logger(__name__)


async def record_structure(conn: Conn, event: ReferentialChangedEvent) -> None:
    """Replace the structure's contacts with the ones of this référentiel version."""
    record = event.payload
    contacts = [
        repo.ContactRow(
            structure_id=record.structure_id,
            contact_id=c.id,
            label=c.label,
            email=c.email,
            mobile=c.mobile,
            email_enabled=c.channels_enabled.email,
            sms_enabled=c.channels_enabled.sms,
            is_generic=c.is_generic_mailbox,
        )
        for c in record.contacts
    ]
    await repo.replace_structure(
        conn,
        structure_id=record.structure_id,
        nom=record.nom,
        is_default_referent=record.default_referent,
        version=record.referentiel_version,
        contacts=contacts,
    )


async def record_decision(conn: Conn, event: OrientationDecidedEvent, topic: str) -> int:
    """Create one alert per new assignment of the decision; return how many were created.

    Stage updates of structures already alerted create nothing here: they belong to the daily
    digest. The inbox makes a redelivered decision a no-op, and the alert key (one per assignment)
    protects against a re-published decision under a new event id.
    """
    if not await claim_event(conn, event.event_id, topic):
        return 0
    decision = event.payload
    created = 0
    with log_context(event_id=str(event.event_id), correlation_id=str(event.correlation_id)):
        for assignment in decision.assignments:
            if assignment.kind is not AssignmentKind.NEW:
                continue
            alert = repo.AlertRow(
                alert_id=uuid.uuid4(),
                alert_key=f"new:{assignment.assignment_id}",
                correlation_id=event.correlation_id,
                procedure_id=decision.procedure_id,
                procedure_short_ref=decision.procedure_short_ref,
                assignment_id=assignment.assignment_id,
                structure_id=assignment.structure_id,
                stage=decision.stage.value,
                urgency=decision.urgency.value,
                commune=decision.commune_name or decision.commune_insee,
                earliest_expulsion_date=decision.earliest_expulsion_date,
                manual_orientation=decision.fallback_used,
            )
            created += await repo.insert_alert(conn, alert)
        log.info("decision_recorded", procedure_ref=decision.procedure_short_ref, alerts=created)
    return created
