"""A claimed delivery becomes the message its channel sends: content, link, rendering.

An alert, a digest, or a new link the structure asked for from the workspace's expired-link page (an alert
with ``link_request_id``, rendered with the ``new_link`` templates of ``link_requests``).

Rendering happens at sending time, so that dates read right on the day the message actually leaves (a
retried or deferred one included) and a link's lifetime counts from then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import partial
from urllib.parse import urljoin

from schemas.notification import Channel as ChannelCode
from schemas.notification import FallbackKind
from services.notifier.channels import OutgoingMessage
from services.notifier.config import DispatchConfig
from services.notifier.domain.alerts import (
    AlertContent,
    AlertTemplates,
    DigestContent,
    EscalationNotice,
    FallbackNotice,
    RefusalNotice,
    render_digest_email,
    render_digest_sms,
    render_email,
    render_sms,
)
from services.notifier.domain.removal import RemovalContent, render_removal_email, render_removal_sms
from services.notifier.jobs import AlertJob, DeliveryJob
from services.notifier.link_requests import NewLinkContent, render_new_link_email, render_new_link_sms
from services.notifier.repository import AlertRow
from services.platform.links import mint_link

__all__ = ["MessageComposer"]


class MessageComposer:
    """Renders deliveries with the alert templates (which hold the removal notice's and the new link's too);
    ``clock`` is the dispatcher's."""

    def __init__(self, templates: AlertTemplates, config: DispatchConfig, clock: Callable[[], datetime]) -> None:
        self._templates = templates
        self._config = config
        self._link_base_url = config.link_base_url.rstrip("/")
        self._clock = clock

    def message(self, job: DeliveryJob) -> OutgoingMessage:  # noqa: PLR0911 (one per kind of message and channel)
        """The email or SMS of ``job``. Raises ``SmsTooLongError`` or a ``jinja2.TemplateError`` when it
        cannot be rendered (permanent: the same content would fail again)."""
        notice = _notice(job.fallback_kind, job.names.get(job.subject_structure_id, job.subject_structure_id))
        sms = job.channel is ChannelCode.SMS
        message = partial(OutgoingMessage, job.delivery_id, job.recipient, attempt=job.attempts)
        if isinstance(job, AlertJob) and job.alert.link_request_id is not None:
            new_link = self._new_link(job.alert, notice)
            if sms:
                return message(sms=render_new_link_sms(new_link, self._templates))
            return message(email=render_new_link_email(new_link, self._templates))
        if isinstance(job, AlertJob) and (secretariat := job.alert.removal_secretariat) is not None:
            alert = job.alert
            removal = RemovalContent(alert.procedure_short_ref, secretariat, alert.removal_secretariat_email, notice)
            if sms:
                return message(sms=render_removal_sms(removal, self._templates))
            return message(email=render_removal_email(removal, self._templates))
        if isinstance(job, AlertJob):
            content = self._content(job.alert, notice, job.names)
            if sms:
                return message(sms=render_sms(content, self._templates))
            return message(email=render_email(content, self._templates))
        items = tuple(
            self._content(line.alert, _notice(line.fallback_kind, job.names.get(line.alert.structure_id)), job.names)
            for line in job.digest.lines
        )
        digest = DigestContent(job.digest.day, items, self._link_base_url, notice)
        if sms:
            return message(sms=render_digest_sms(digest, self._templates))
        return message(email=render_digest_email(digest, self._templates))

    def _content(self, alert: AlertRow, notice: FallbackNotice | None, names: Mapping[str, str]) -> AlertContent:
        return AlertContent(
            procedure_short_ref=alert.procedure_short_ref,
            stage=alert.stage,
            commune=alert.commune,
            urgency=alert.urgency,
            earliest_expulsion_date=alert.earliest_expulsion_date,
            link=self._link(alert, notice),
            today=self._clock().astimezone(self._config.zone).date(),
            warnings=alert.warnings,
            reasons=alert.reasons,
            # A structure the référentiel topic has not named yet shows by its id (a code, never personal data).
            others=tuple(names.get(structure_id, structure_id) for structure_id in alert.others),
            offers=alert.offers,
            respond_by=alert.respond_by,
            hearing_date=alert.hearing_date,
            commandement_deadline=alert.commandement_deadline,
            closest=alert.closest,
            manual_orientation=alert.manual_orientation,
            stage_update=alert.stage_update,
            truce_end=alert.truce_end,
            fallback=notice,
            refusal=RefusalNotice(alert.refused_by, alert.refusal_reason)
            if alert.refused_by is not None and alert.refusal_reason is not None
            else None,
            escalation=EscalationNotice(alert.escalation_days, alert.silent_structure)
            if alert.escalation_days is not None
            else None,
        )

    def _new_link(self, alert: AlertRow, notice: FallbackNotice | None) -> NewLinkContent:
        """A fresh token for the assignment and its structure, valid ``link_lifetime`` from now; to the default
        referent (F3) the desk's case page instead, naming the structure that asked and could not be reached."""
        if notice is not None and notice.kind is FallbackKind.DEFAULT_REFERENT:
            unreachable = notice.unreachable or alert.structure_id
            return NewLinkContent(alert.procedure_short_ref, self._desk_page(alert), unreachable=unreachable)
        valid_until = self._link_expiry()
        return NewLinkContent(alert.procedure_short_ref, self._link(alert, notice, valid_until), valid_until)

    def _link_expiry(self) -> date:
        return (self._clock() + self._config.link_lifetime).date()

    def _desk_page(self, alert: AlertRow) -> str:
        """The case page of the CCAPEX secretariat's desk, by reference (the base is the workspace's ``/d``)."""
        return urljoin(f"{self._link_base_url}/", f"../secretariat/dossiers/{alert.procedure_short_ref}")

    def _link(self, alert: AlertRow, notice: FallbackNotice | None, expires_on: date | None = None) -> str:
        """``<base>/<token>``: a signed, expiring token opening this assignment for its structure.

        The bare base (the workspace's welcome page) when there is no assignment to open, or when the alert
        goes to the default referent instead: a token would sign that other structure in as the unreachable one.
        A refusal or a silent structure told to the CCAPEX secretariat links to the case page of its desk, by
        reference (``<base>/../secretariat/dossiers/<ref>``; the base is the workspace's ``/d``), opened in
        the secretariat's own session: a token would be bound to the other structure.
        """
        if alert.refused_by is not None or alert.silent_structure is not None:
            return self._desk_page(alert)
        if alert.assignment_id is None or (notice is not None and notice.kind is FallbackKind.DEFAULT_REFERENT):
            return self._link_base_url
        token = mint_link(
            self._config.link_keys,
            assignment_id=alert.assignment_id,
            structure_id=alert.structure_id,
            expires_on=expires_on or self._link_expiry(),
        )
        return f"{self._link_base_url}/{token}"


def _notice(kind: FallbackKind | None, unreachable: str | None) -> FallbackNotice | None:
    if kind is None or kind is FallbackKind.NONE:
        return None
    return FallbackNotice(kind, unreachable if kind is FallbackKind.DEFAULT_REFERENT else None)
