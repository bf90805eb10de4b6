"""Who hears about what, and how: alert modes, recipients per contact, and fallback F3. Pure.

- ``alert_mode``: a decision's assignment becomes an immediate alert, a line of tomorrow's digest, or
  nothing (a correction's stage update, scenario S-03); a truce-end reminder is always immediate.
- ``recipients``: one delivery per enabled channel of each contact (RDV-Solidarités' per-recipient
  eligibility: the address exists and its channel is enabled; ``schemas.referential.Contact`` already
  checks that SMS go to French mobiles).
- ``told_of_removal``: a structure the CCAPEX removed from a case is told so, at once (issue 14).
- ``fallback_for``: when a delivery failed for good, or a structure has no deliverable contact, the
  structure's generic contact (``is_generic_mailbox``) is alerted, else the default referent
  (docs/domain.md §5.5, F3), never the contact that just failed and never past the default referent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from enum import StrEnum

from schemas.assignment import AssignmentOverride, AssignmentStatusChange
from schemas.notification import Channel, FallbackKind
from schemas.orientation import AssignmentKind, DecisionTrigger
from schemas.procedure import Urgency

__all__ = [
    "DIGEST_URGENCIES",
    "AlertMode",
    "ContactInfo",
    "FallbackChoice",
    "Recipient",
    "StructureContacts",
    "alert_mode",
    "fallback_for",
    "no_contact_fallback",
    "recipients",
    "told_of_removal",
]

DIGEST_URGENCIES = frozenset({Urgency.LOW, Urgency.NORMAL})
"""Stage updates at these urgencies wait for the daily digest; HIGH and CRITICAL ones are sent at once."""


class AlertMode(StrEnum):
    IMMEDIATE = "IMMEDIATE"
    DIGEST = "DIGEST"


@dataclass(frozen=True)
class ContactInfo:
    """A partner contact as the référentiel topic gave it."""

    contact_id: str
    email: str | None
    mobile: str | None
    email_enabled: bool
    sms_enabled: bool
    is_generic: bool
    quiet_hours: tuple[time, time] | None = None


@dataclass(frozen=True)
class Recipient:
    """One address of one contact on one channel; ``quiet_hours`` matter for SMS only."""

    contact_id: str
    channel: Channel
    address: str
    quiet_hours: tuple[time, time] | None = None


@dataclass(frozen=True)
class StructureContacts:
    structure_id: str
    nom: str
    contacts: tuple[ContactInfo, ...]


@dataclass(frozen=True)
class FallbackChoice:
    """Who is alerted instead: ``kind`` ``NONE`` has no structure and no recipient."""

    kind: FallbackKind
    structure_id: str | None
    recipients: tuple[Recipient, ...]

    @classmethod
    def none(cls) -> FallbackChoice:
        return cls(FallbackKind.NONE, None, ())


def alert_mode(
    kind: AssignmentKind,
    *,
    is_correction: bool,
    urgency: Urgency,
    trigger: DecisionTrigger = DecisionTrigger.NOTIFICATION,
) -> AlertMode | None:
    """How an assignment of a decision is told to its structure; ``None``: it is not.

    A new assignment is always alerted at once, a correction's included (a corrected notice may bring
    a new structure: only new assignees hear about it). A stage update tells a structure that already
    holds the file that it moved on: never for a correction (the same stage again, S-03) nor for a CCAPEX
    override (``CCAPEX_OVERRIDE``: the secretariat added a structure, the others' stage did not move), in
    the daily digest when the urgency is LOW or NORMAL, at once when HIGH or CRITICAL (a CFP, an imminent
    expulsion). A truce-end reminder (``WINTER_TRUCE_END``, docs/domain.md §7) is alerted at once to
    every assignment, new or held, whatever the urgency and ``is_correction``: the reminder is the news,
    and a digest line would bury it.
    """
    if kind is AssignmentKind.NEW or trigger is DecisionTrigger.WINTER_TRUCE_END:
        return AlertMode.IMMEDIATE
    if is_correction or trigger is DecisionTrigger.CCAPEX_OVERRIDE:
        return None
    return AlertMode.DIGEST if urgency in DIGEST_URGENCIES else AlertMode.IMMEDIATE


def told_of_removal(change: AssignmentStatusChange) -> bool:
    """Whether an ``assignment.status`` change is told to the assignment's own structure: only a CCAPEX
    ``REMOVE`` (the case taken from it, status ``CLOTUREE``) — the partner made every other change itself
    (accepted, refused, closed) or was already told of it (an expiry follows its reminder). The notice is
    immediate, never a digest line (the structure must stop working on the case), and subject to the SMS
    quiet hours like any other (an expulsion within days aside)."""
    return change.override is AssignmentOverride.REMOVE


def recipients(contacts: Iterable[ContactInfo]) -> tuple[Recipient, ...]:
    """One recipient per enabled channel (with its address) of each contact, in contact order."""
    found: list[Recipient] = []
    for contact in contacts:
        if contact.email_enabled and contact.email:
            found.append(Recipient(contact.contact_id, Channel.EMAIL, contact.email))
        if contact.sms_enabled and contact.mobile:
            found.append(Recipient(contact.contact_id, Channel.SMS, contact.mobile, contact.quiet_hours))
    return tuple(found)


def fallback_for(
    *,
    failed_level: FallbackKind | None,
    failed_contact_id: str | None,
    structure: StructureContacts | None,
    default_referent: StructureContacts | None,
) -> FallbackChoice:
    """Fallback F3 after a delivery to ``failed_contact_id`` failed for good.

    ``failed_level`` is the failed delivery's own fallback level (``None`` for a first-hand delivery):
    a first-hand delivery falls back to the structure's generic contacts, then to the default referent;
    a generic-contact fallback to the default referent; a default-referent fallback to nobody.
    """
    if failed_level is None and structure is not None:
        generic = [c for c in structure.contacts if c.is_generic and c.contact_id != failed_contact_id]
        if found := recipients(generic):
            return FallbackChoice(FallbackKind.GENERIC_CONTACT, structure.structure_id, found)
    if failed_level is not FallbackKind.DEFAULT_REFERENT and default_referent is not None:
        others = [c for c in default_referent.contacts if c.contact_id != failed_contact_id]
        if found := recipients(others):
            return FallbackChoice(FallbackKind.DEFAULT_REFERENT, default_referent.structure_id, found)
    return FallbackChoice.none()


def no_contact_fallback(structure_id: str, default_referent: StructureContacts | None) -> FallbackChoice:
    """Fallback F3 for a structure without any deliverable contact: the default referent, unless it is
    that structure itself (or has no deliverable contact either)."""
    if default_referent is None or default_referent.structure_id == structure_id:
        return FallbackChoice.none()
    found = recipients(default_referent.contacts)
    if not found:
        return FallbackChoice.none()
    return FallbackChoice(FallbackKind.DEFAULT_REFERENT, default_referent.structure_id, found)
