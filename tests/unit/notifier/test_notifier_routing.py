"""Who hears about a decision, on which channel, and who stands in when a contact cannot be reached (F3)."""

from __future__ import annotations

import itertools
from datetime import time

import pytest

from schemas.notification import Channel, FallbackKind
from schemas.orientation import AssignmentKind, DecisionTrigger
from schemas.procedure import Urgency
from services.notifier.domain.routing import (
    AlertMode,
    ContactInfo,
    FallbackChoice,
    Recipient,
    StructureContacts,
    alert_mode,
    fallback_for,
    no_contact_fallback,
    recipients,
)

NAMED = ContactInfo("FSL90-REFERENT", "referent@fsl90.test", "+33611111111", True, True, is_generic=False)
GENERIC = ContactInfo("FSL90-MAIL", "fsl@cd90.test", None, True, False, is_generic=True)
SMS_ONLY = ContactInfo("MED-PERM", None, "+33600000001", False, True, is_generic=False, quiet_hours=(time(20), time(8)))
DISABLED = ContactInfo("FSL90-OLD", "old@fsl90.test", "+33622222222", False, False, is_generic=True)
CCAPEX = StructureContacts(
    "CCAPEX90", "CCAPEX", (ContactInfo("CCAPEX90-SECRETARIAT", "ccapex90@pref.test", None, True, False, True),)
)
FSL = StructureContacts("FSL90", "FSL 90", (NAMED, GENERIC))


@pytest.mark.parametrize(
    ("kind", "is_correction", "urgency", "expected"),
    [
        (AssignmentKind.NEW, False, Urgency.LOW, AlertMode.IMMEDIATE),
        (AssignmentKind.NEW, True, Urgency.NORMAL, AlertMode.IMMEDIATE),  # a correction's new assignee
        (AssignmentKind.STAGE_UPDATE, True, Urgency.CRITICAL, None),  # S-03: a correction alerts nobody
        (AssignmentKind.STAGE_UPDATE, False, Urgency.LOW, AlertMode.DIGEST),
        (AssignmentKind.STAGE_UPDATE, False, Urgency.NORMAL, AlertMode.DIGEST),
        (AssignmentKind.STAGE_UPDATE, False, Urgency.HIGH, AlertMode.IMMEDIATE),
        (AssignmentKind.STAGE_UPDATE, False, Urgency.CRITICAL, AlertMode.IMMEDIATE),
    ],
)
def test_alert_mode(kind: AssignmentKind, is_correction: bool, urgency: Urgency, expected: AlertMode | None) -> None:
    assert alert_mode(kind, is_correction=is_correction, urgency=urgency) is expected


@pytest.mark.parametrize("urgency", list(Urgency))
def test_a_ccapex_override_alerts_only_the_structure_it_added(urgency: Urgency) -> None:
    # The override decision repeats the other assignments as stage updates: their stage did not move.
    override = DecisionTrigger.CCAPEX_OVERRIDE
    assert alert_mode(AssignmentKind.NEW, is_correction=False, urgency=urgency, trigger=override) is AlertMode.IMMEDIATE
    assert alert_mode(AssignmentKind.STAGE_UPDATE, is_correction=False, urgency=urgency, trigger=override) is None


@pytest.mark.parametrize(
    ("kind", "urgency", "is_correction"),
    list(itertools.product(AssignmentKind, Urgency, (False, True))),
)
def test_a_truce_end_reminder_alerts_every_assignment_at_once(
    kind: AssignmentKind, urgency: Urgency, is_correction: bool
) -> None:
    # The reminder is typically NORMAL urgency and repeats stage updates: neither may send it to the digest.
    mode = alert_mode(kind, is_correction=is_correction, urgency=urgency, trigger=DecisionTrigger.WINTER_TRUCE_END)
    assert mode is AlertMode.IMMEDIATE


def test_one_recipient_per_enabled_channel_with_an_address() -> None:
    assert recipients([NAMED, GENERIC, SMS_ONLY, DISABLED]) == (
        Recipient("FSL90-REFERENT", Channel.EMAIL, "referent@fsl90.test"),
        Recipient("FSL90-REFERENT", Channel.SMS, "+33611111111"),
        Recipient("FSL90-MAIL", Channel.EMAIL, "fsl@cd90.test"),
        Recipient("MED-PERM", Channel.SMS, "+33600000001", (time(20), time(8))),
    )


def test_a_failed_named_contact_falls_back_to_the_generic_contact() -> None:
    choice = fallback_for(failed_level=None, failed_contact_id="FSL90-REFERENT", structure=FSL, default_referent=CCAPEX)
    assert choice == FallbackChoice(
        FallbackKind.GENERIC_CONTACT, "FSL90", (Recipient("FSL90-MAIL", Channel.EMAIL, "fsl@cd90.test"),)
    )


@pytest.mark.parametrize(
    ("failed_level", "failed_contact", "structure", "expected_kind", "expected_structure"),
    [
        # The generic contact itself failed: the default referent.
        (None, "FSL90-MAIL", FSL, FallbackKind.DEFAULT_REFERENT, "CCAPEX90"),
        # No generic contact at all (MEDIATION-SUD is SMS only): the default referent.
        (
            None,
            "MED-PERM",
            StructureContacts("MED", "Médiation", (SMS_ONLY,)),
            FallbackKind.DEFAULT_REFERENT,
            "CCAPEX90",
        ),
        # A generic contact with no enabled channel cannot stand in.
        (
            None,
            "FSL90-REFERENT",
            StructureContacts("FSL90", "FSL", (NAMED, DISABLED)),
            FallbackKind.DEFAULT_REFERENT,
            "CCAPEX90",
        ),
        # A fallback to the generic contact failed too: the default referent.
        (FallbackKind.GENERIC_CONTACT, "FSL90-MAIL", FSL, FallbackKind.DEFAULT_REFERENT, "CCAPEX90"),
        # The default referent was the last resort.
        (FallbackKind.DEFAULT_REFERENT, "CCAPEX90-SECRETARIAT", CCAPEX, FallbackKind.NONE, None),
        # The default referent's only contact failed first-hand: nobody else.
        (None, "CCAPEX90-SECRETARIAT", CCAPEX, FallbackKind.NONE, None),
        # The structure is unknown (référentiel lost it): the default referent.
        (None, "FSL90-REFERENT", None, FallbackKind.DEFAULT_REFERENT, "CCAPEX90"),
    ],
)
def test_fallback_chain(
    failed_level: FallbackKind | None,
    failed_contact: str,
    structure: StructureContacts | None,
    expected_kind: FallbackKind,
    expected_structure: str | None,
) -> None:
    choice = fallback_for(
        failed_level=failed_level, failed_contact_id=failed_contact, structure=structure, default_referent=CCAPEX
    )
    assert (choice.kind, choice.structure_id) == (expected_kind, expected_structure)
    assert all(r.contact_id != failed_contact for r in choice.recipients)
    assert bool(choice.recipients) == (expected_kind is not FallbackKind.NONE)


def test_no_default_referent_known_means_no_fallback() -> None:
    choice = fallback_for(failed_level=None, failed_contact_id="FSL90-MAIL", structure=FSL, default_referent=None)
    assert choice == FallbackChoice.none()


def test_a_structure_without_deliverable_contact_goes_to_the_default_referent() -> None:
    assert no_contact_fallback("FSL90", CCAPEX).kind is FallbackKind.DEFAULT_REFERENT
    assert no_contact_fallback("FSL90", CCAPEX).recipients == recipients(CCAPEX.contacts)
    assert no_contact_fallback("CCAPEX90", CCAPEX) == FallbackChoice.none()
    assert no_contact_fallback("FSL90", None) == FallbackChoice.none()
    empty = StructureContacts("CCAPEX90", "CCAPEX", (DISABLED,))
    assert no_contact_fallback("FSL90", empty) == FallbackChoice.none()
