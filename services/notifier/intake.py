"""Notifier's consumers: contacts from the référentiel topic, alerts from orientation decisions, and the
partners' refusals (``assignment.status``) told to the CCAPEX secretariat, and orientation's escalations of
unanswered assignments (``assignment.escalation``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from schemas.assignment import (
    AssignmentEscalationEvent,
    AssignmentStatus,
    AssignmentStatusEvent,
    EscalationStep,
    StatusActor,
)
from schemas.envelope import Envelope
from schemas.orientation import (
    AssignmentKind,
    DecidedAssignment,
    DecisionTrigger,
    OrientationDecided,
    OrientationDecidedEvent,
)
from schemas.referential import ReferentialChangedEvent
from schemas.workspace import LinkRequestedEvent
from services.notifier import repository as repo
from services.notifier.domain.alerts import ClosestOffer, assignment_reasons
from services.notifier.domain.removal import secretariat_contact
from services.notifier.domain.routing import AlertMode, alert_mode, told_of_removal
from services.platform import tracing
from services.platform.db import Conn
from services.platform.inbox import claim_event, claim_events
from services.platform.logging import get_logger, log_context

__all__ = [
    "record_decisions",
    "record_escalations",
    "record_link_requests",
    "record_refusals",
    "record_removals",
    "record_structure",
]

log = get_logger(__name__)

_E = TypeVar("_E", bound=Envelope)


async def record_structure(conn: Conn, event: ReferentialChangedEvent) -> None:
    """Replace the structure's contacts with the ones of this référentiel version (older versions ignored)."""
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
            quiet_start=c.quiet_hours.start if c.quiet_hours else None,
            quiet_end=c.quiet_hours.end if c.quiet_hours else None,
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


async def record_decisions(conn: Conn, events: Sequence[OrientationDecidedEvent], topic: str) -> int:
    """Create the alerts of a batch of decisions, in order; return how many were created.

    ``domain.routing.alert_mode`` decides per assignment: a new assignment is alerted at once; a stage
    update goes to the daily digest (LOW/NORMAL), at once (HIGH/CRITICAL), or nowhere when the decision
    is a correction (S-03) or a CCAPEX override (only the structure it added is new); every assignment of
    a truce-end reminder (``WINTER_TRUCE_END``) is alerted at once, marked ``truce_end``.

    The inbox makes a redelivered decision a no-op, and the alert key protects against a decision
    re-published under a new event id: ``new:<assignment>`` for a new assignment,
    ``update:<assignment>:<notification>`` for a stage update (one per notice),
    ``truce-end:<assignment>:<earliest expulsion date>`` for either kind in a truce-end reminder (one per
    trêve). The alerts of the whole batch are inserted at once, in consumption order (their ``seq`` is the
    per-procedure sending order).
    """
    # One inbox statement and one log line per batch, not per decision: at a backlog's pace both cost more
    # than the decision itself.
    unseen = await claim_events(conn, [event.event_id for event in events], topic)
    alerts: list[repo.AlertRow] = []
    fresh = 0
    for event in events:
        if event.event_id not in unseen:
            continue
        unseen.discard(event.event_id)  # the same event twice in one batch: its first copy only
        fresh += 1
        alerts += _alerts(event)
    created = await repo.insert_alerts(conn, alerts)
    log.info("decisions_recorded", decisions=fresh, redelivered=len(events) - fresh, alerts=created)
    return created


def _alerts(event: OrientationDecidedEvent) -> list[repo.AlertRow]:
    decision = event.payload
    truce_end = decision.trigger is DecisionTrigger.WINTER_TRUCE_END
    # The decision's record span: each delivery attempt of these alerts will be its child (tracing on).
    traceparent, tracestate = tracing.outgoing_context(event.event_id)
    alerts = []
    for assignment in decision.assignments:
        mode = alert_mode(
            assignment.kind, is_correction=decision.is_correction, urgency=decision.urgency, trigger=decision.trigger
        )
        if mode is None:
            continue
        alerts.append(
            repo.AlertRow(
                alert_id=uuid.uuid4(),
                alert_key=_alert_key(decision, assignment),
                correlation_id=event.correlation_id,
                procedure_id=decision.procedure_id,
                procedure_short_ref=decision.procedure_short_ref,
                assignment_id=assignment.assignment_id,
                structure_id=assignment.structure_id,
                stage=decision.stage,
                urgency=decision.urgency,
                commune=decision.commune_name or decision.commune_insee,
                earliest_expulsion_date=decision.earliest_expulsion_date,
                manual_orientation=decision.fallback_used,
                mode=mode,
                stage_update=assignment.kind is AssignmentKind.STAGE_UPDATE,
                truce_end=truce_end,
                warnings=tuple(assignment.warnings),
                reasons=assignment_reasons(assignment.matched_rules, mandatory=assignment.mandatory),
                others=tuple(a.structure_id for a in decision.assignments if a.structure_id != assignment.structure_id),
                offers=tuple(assignment.offer_names),
                respond_by=assignment.respond_by,
                hearing_date=decision.hearing_date,
                commandement_deadline=decision.commandement_deadline,
                # The offers that came closest are for whoever orients the case by hand: the F1 assignment.
                closest=tuple(
                    ClosestOffer(c.offer_name, c.structure_name, tuple(c.excluded_by)) for c in decision.closest_offers
                ),
                traceparent=traceparent,
                tracestate=tracestate,
                act_received_at=decision.act_received_at,
            )
        )
    return alerts


def _alert_key(decision: OrientationDecided, assignment: DecidedAssignment) -> str:
    if decision.trigger is DecisionTrigger.WINTER_TRUCE_END:
        # A reminder repeats the last decision's notification_id: an "update:" key would be that stage
        # update's own, and the reminder would be dropped as a replay of it. The trêve's end date makes it
        # one reminder per assignment and trêve, however often orientation republishes it.
        return f"truce-end:{assignment.assignment_id}:{decision.earliest_expulsion_date}"
    if assignment.kind is AssignmentKind.STAGE_UPDATE:
        return f"update:{assignment.assignment_id}:{decision.notification_id}"
    return f"new:{assignment.assignment_id}"


async def record_refusals(conn: Conn, events: Sequence[AssignmentStatusEvent], topic: str) -> int:
    """Tell the CCAPEX secretariat (the default referent) of each partner's refusal; return how many
    alerts were created.

    Only ``REFUSEE`` by ``PARTNER`` counts (the workspace's or a partner system's). The refusal must name
    an assignment this notifier alerted, for the same procedure and structure: its reference, stage,
    commune and urgency come from that alert, so the secretariat's email carries nothing the partner's did
    not, plus the refusing structure's name and the reason code's label (never a comment). A refusal of an
    assignment never alerted, or naming another procedure or structure, is logged and dropped: there is
    nothing true to tell. The key ``refused:<assignment>`` makes it one email per assignment whatever the
    redeliveries; the inbox makes a redelivered event a no-op. Until the référentiel topic named the
    default referent the batch raises, to be consumed again (nothing is lost).
    """
    refusals = [
        event
        for event in events
        if event.payload.status is AssignmentStatus.REFUSEE and event.payload.by is StatusActor.PARTNER
    ]
    return await _record_notices(conn, refusals, topic, _refusal_alert)


async def record_escalations(conn: Conn, events: Sequence[AssignmentEscalationEvent], topic: str) -> int:
    """Turn orientation's escalations of unanswered assignments into alerts; return how many were created.

    ``STRUCTURE_REMINDER``: the assignment's structure is reminded (key ``reminder:<assignment>``), with the
    same token link as its first alert. ``SECRETARIAT_ALERT``: the CCAPEX secretariat (the default referent)
    is told which structure has not answered (key ``escalated:<assignment>``), with a link to the case page.
    Both copy the reference, stage, commune and urgency of the alert that announced the assignment; an
    escalation of an assignment never alerted, or naming another procedure or structure, is logged and
    dropped. Like refusals, the secretariat's alert waits (the batch raises) until the default referent is
    known.
    """
    return await _record_notices(conn, events, topic, _escalation_alert)


async def _record_notices(
    conn: Conn,
    events: Sequence[_E],
    topic: str,
    alert_of: Callable[[Conn, _E], Awaitable[repo.AlertRow | None]],
) -> int:
    """Claim each event in the inbox (a redelivered one is skipped), build its alert, store them all."""
    alerts: list[repo.AlertRow] = []
    for event in events:
        if not await claim_event(conn, event.event_id, topic):
            continue
        with log_context(event_id=str(event.event_id), correlation_id=str(event.correlation_id)):
            alert = await alert_of(conn, event)
        if alert is not None:
            alerts.append(alert)
    return await repo.insert_alerts(conn, alerts)


async def _announced(
    conn: Conn, assignment_id: uuid.UUID | None, procedure_id: uuid.UUID, structure_id: str, what: str
) -> repo.AlertRow | None:
    """The alert that announced ``assignment_id`` to ``structure_id`` for ``procedure_id``, or ``None``
    (logged as ``not_alerted``, ``about`` ``what``)."""
    announced = await repo.announced_alert(conn, assignment_id, structure_id) if assignment_id else None
    if announced is None or announced.procedure_id != procedure_id:
        log.warning("not_alerted", about=what, structure_id=structure_id, known=announced is not None)
        return None
    return announced


async def _secretariat(conn: Conn) -> str:
    referent = await repo.default_referent(conn)
    if referent is None:
        raise LookupError("the default referent is not known yet: the alert waits for the référentiel topic")
    return referent.structure_id


_NOTHING_TOLD: dict[str, Any] = dict.fromkeys(
    (
        "refused_by",
        "refusal_reason",
        "escalation",
        "escalation_days",
        "silent_structure",
        "removal_secretariat",
        "removal_secretariat_email",
        "link_request_id",
    )
)


def _notice(announced: repo.AlertRow, event: Envelope, key: str, structure_id: str, **fields: Any) -> repo.AlertRow:
    """A new immediate alert about the announced assignment, to ``structure_id``: only the reference, stage,
    commune and urgency are kept; ``fields`` say what it tells. No act caused it (no end-to-end latency):
    its sending joins the trace of ``event``, what caused it."""
    traceparent, tracestate = tracing.outgoing_context(event.event_id)
    return replace(
        announced,
        traceparent=traceparent,
        tracestate=tracestate,
        act_received_at=None,
        alert_id=uuid.uuid4(),
        alert_key=key,
        correlation_id=event.correlation_id,
        structure_id=structure_id,
        manual_orientation=False,
        mode=AlertMode.IMMEDIATE,
        stage_update=False,
        truce_end=False,
        warnings=(),
        reasons=(),  # why the structure was asked is not why it, or the secretariat, is told now
        others=(),
        offers=(),
        respond_by=None,  # a notice asks nothing of the structure's answer by a day (a reminder says it waited)
        closest=(),
        # The announced alert may itself be a reminder: what this one tells is ``fields`` alone.
        **(_NOTHING_TOLD | fields),
    )


async def _refusal_alert(conn: Conn, event: AssignmentStatusEvent) -> repo.AlertRow | None:
    change = event.payload
    announced = await _announced(conn, change.assignment_id, change.procedure_id, change.structure_id, "refusal")
    if announced is None:
        return None
    secretariat = await _secretariat(conn)
    log.info("refusal_recorded", procedure_ref=announced.procedure_short_ref, structure_id=change.structure_id)
    return _notice(
        announced,
        event,
        f"refused:{change.assignment_id}",
        secretariat,
        refused_by=await repo.structure_name(conn, change.structure_id) or change.structure_id,
        refusal_reason=change.reason,
    )


async def _escalation_alert(conn: Conn, event: AssignmentEscalationEvent) -> repo.AlertRow | None:
    step = event.payload
    announced = await _announced(conn, step.assignment_id, step.procedure_id, step.structure_id, "escalation")
    if announced is None:
        return None
    log.info("escalation_recorded", procedure_ref=announced.procedure_short_ref, step=step.step.value)
    if step.step is EscalationStep.STRUCTURE_REMINDER:
        return _notice(
            announced,
            event,
            f"reminder:{step.assignment_id}",
            step.structure_id,
            escalation=step.step,
            escalation_days=step.working_days,
        )
    return _notice(
        announced,
        event,
        f"escalated:{step.assignment_id}",
        await _secretariat(conn),
        escalation=step.step,
        escalation_days=step.working_days,
        silent_structure=await repo.structure_name(conn, step.structure_id) or step.structure_id,
    )


async def record_link_requests(conn: Conn, events: Sequence[LinkRequestedEvent], topic: str) -> int:
    """Turn the workspace's requests for a new link into alerts; return how many were created.

    A partner whose link expired asked for a new one (the workspace checked the token, that the structure
    still holds the assignment, and its rate limit). Each request becomes an immediate alert of the
    assignment to that structure, marked ``link_request_id``: ``link_requests`` picks its recipients (email,
    or SMS for an SMS-only structure) and its message (the new link). It copies the reference, stage, commune
    and urgency of the alert that announced the assignment; a request for an assignment never alerted to
    that structure, or naming another procedure, is logged and dropped. The key ``link:<request id>`` makes it
    one message per request whatever the redeliveries; the inbox makes a redelivered event a no-op.
    """
    return await _record_notices(conn, events, topic, _link_request_alert)


async def _link_request_alert(conn: Conn, event: LinkRequestedEvent) -> repo.AlertRow | None:
    request = event.payload
    announced = await _announced(
        conn, request.assignment_id, request.procedure_id, request.structure_id, "link_request"
    )
    if announced is None:
        return None
    log.info("link_request_recorded", procedure_ref=announced.procedure_short_ref, structure_id=request.structure_id)
    return _notice(
        announced, event, f"link:{request.request_id}", request.structure_id, link_request_id=request.request_id
    )


async def record_removals(conn: Conn, events: Sequence[AssignmentStatusEvent], topic: str) -> int:
    """Tell each structure the CCAPEX removed from a case that it no longer holds it (issue 14); return how
    many alerts were created.

    Only a CCAPEX ``REMOVE`` counts (``routing.told_of_removal``). Like a refusal it must name an assignment this
    notifier alerted to that structure, for the same procedure: the notice repeats that alert's reference and
    goes to the same structure, at once, by the usual delivery path. It names the CCAPEX secretariat (the default
    referent, read from the référentiel topic now; ``removal.SECRETARIAT`` while unknown) as the one to contact.
    The key ``removed:<assignment>`` makes it one notice per assignment whatever the re-publications; the inbox
    makes a redelivered event a no-op.
    """
    removals = [event for event in events if told_of_removal(event.payload)]
    return await _record_notices(conn, removals, topic, _removal_alert)


async def _removal_alert(conn: Conn, event: AssignmentStatusEvent) -> repo.AlertRow | None:
    change = event.payload
    announced = await _announced(conn, change.assignment_id, change.procedure_id, change.structure_id, "removal")
    if announced is None:
        return None
    name, email = secretariat_contact(await repo.default_referent(conn))
    log.info("removal_recorded", procedure_ref=announced.procedure_short_ref, structure_id=change.structure_id)
    return _notice(
        announced,
        event,
        f"removed:{change.assignment_id}",
        change.structure_id,
        removal_secretariat=name,
        removal_secretariat_email=email,
    )
