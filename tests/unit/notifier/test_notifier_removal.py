"""The notice to a structure the CCAPEX removed from a case (issue 14): who is told, and what the packaged
templates say — the reference, that the file was taken from the structure, who to contact; nothing else."""

from __future__ import annotations

import re
import uuid
from importlib.resources import files

import pytest

from schemas.assignment import AssignmentOverride, AssignmentStatus, AssignmentStatusChange, StatusActor
from schemas.notification import FallbackKind
from services.notifier.domain.alerts import SMS_MAX_CHARS, AlertTemplateError, FallbackNotice, SmsTooLongError
from services.notifier.domain.removal import (
    REMOVAL_TEMPLATE_NAMES,
    SECRETARIAT,
    RemovalContent,
    check_removal_sources,
    check_removal_templates,
    render_removal_email,
    render_removal_sms,
    secretariat_contact,
)
from services.notifier.domain.routing import ContactInfo, StructureContacts, told_of_removal
from services.notifier.templates import load_templates

TEMPLATES = load_templates(prefix="Prévention expulsions 90", sms_prefix="Expulsions 90")
CONTENT = RemovalContent("90-2026-000042", "Secrétariat de la CCAPEX du Territoire de Belfort", "ccapex90@pref.test")
GSM7_SAFE = re.compile(r"^[A-Za-z0-9 @:.,()'\"/_-]*$")  # what these SMS may hold once transliterated


def _change(status: AssignmentStatus, by: StatusActor, **fields: object) -> AssignmentStatusChange:
    return AssignmentStatusChange.model_validate(
        {"assignment_id": uuid.uuid4(), "procedure_id": uuid.uuid4(), "structure_id": "CD90", "status": status}
        | {"by": by, **fields}
    )


def test_only_a_ccapex_removal_is_told_to_the_structure() -> None:
    removal = _change(AssignmentStatus.CLOTUREE, StatusActor.CCAPEX, override=AssignmentOverride.REMOVE)
    assert told_of_removal(removal)
    others = [
        _change(AssignmentStatus.CLOTUREE, StatusActor.PARTNER, reason="SUIVI_TERMINE"),
        _change(AssignmentStatus.CLOTUREE, StatusActor.CCAPEX),  # closed on the partner's behalf
        _change(AssignmentStatus.REFUSEE, StatusActor.PARTNER, reason="HORS_COMPETENCE"),
        _change(AssignmentStatus.ACCEPTEE, StatusActor.PARTNER),
        _change(AssignmentStatus.EXPIREE, StatusActor.SYSTEM, reason="SANS_REPONSE"),
        _change(AssignmentStatus.OUVERTE, StatusActor.CCAPEX, override=AssignmentOverride.ADD),
    ]
    assert [told_of_removal(change) for change in others] == [False] * len(others)


def test_the_email_says_the_file_was_removed_and_who_to_contact() -> None:
    email = render_removal_email(CONTENT, TEMPLATES)
    assert email.subject == "[Prévention expulsions 90] Dossier retiré de votre structure – 90-2026-000042"
    for part in (email.text, email.html):
        assert "a retiré le dossier 90-2026-000042 à votre structure" in part
        assert "Secrétariat de la CCAPEX du Territoire de Belfort" in part
        assert "ccapex90@pref.test" in part
        # No stage, commune, urgency or link: the structure no longer holds the case.
        assert "http" not in part
        assert "Urgence" not in part
        assert "Commune" not in part
    assert '<a href="mailto:ccapex90@pref.test">' in email.html


def test_the_only_numbers_are_the_reference_s() -> None:
    # An amount, a street number or a court file number would show as another number.
    email = render_removal_email(RemovalContent("90-2026-000042", "Secrétariat", "ccapex@pref.test"), TEMPLATES)
    sms = render_removal_sms(RemovalContent("90-2026-000042", "Secrétariat", "ccapex@pref.test"), TEMPLATES)
    for part in (email.subject, email.text, re.sub(r"<[^>]+>", "", email.html), sms):
        assert set(re.findall(r"\d+", part)) <= {"90", "2026", "000042"}


def test_names_are_escaped_in_html() -> None:
    content = RemovalContent(
        "90-2026-000042", "A&B <secrétariat>", None, FallbackNotice(FallbackKind.DEFAULT_REFERENT, "C&D")
    )
    html = render_removal_email(content, TEMPLATES).html
    assert "A&amp;B &lt;secrétariat&gt;" in html
    assert "« C&amp;D »" in html
    assert "mailto" not in html  # no address known


@pytest.mark.parametrize(
    "fallback",
    [None, FallbackNotice(FallbackKind.GENERIC_CONTACT), FallbackNotice(FallbackKind.DEFAULT_REFERENT, "CCAS")],
)
def test_the_sms_fits_one_gsm7_segment_and_names_the_secretariat(fallback: FallbackNotice | None) -> None:
    sms = render_removal_sms(RemovalContent("90-2026-000042", "Secrétariat", "ccapex90@pref.test", fallback), TEMPLATES)
    assert len(sms) <= SMS_MAX_CHARS
    assert GSM7_SAFE.match(sms.replace("é", "e")), sms
    assert "dossier 90-2026-000042 retiré de votre structure par la CCAPEX" in sms
    assert sms.endswith("Contact: secrétariat CCAPEX ccapex90@pref.test.")
    assert ("(repli)" in sms) is (fallback is not None)


def test_a_long_address_is_left_out_of_the_sms_and_a_long_heading_is_refused() -> None:
    long_address = RemovalContent("90-2026-000042", "Secrétariat", "s" * 80 + "@pref.test")
    sms = render_removal_sms(long_address, TEMPLATES)
    assert sms.endswith("Contact: secrétariat CCAPEX.")
    assert len(sms) <= SMS_MAX_CHARS
    verbose = load_templates(prefix="Prévention", sms_prefix="Prévention des expulsions " * 5)
    with pytest.raises(SmsTooLongError):
        render_removal_sms(long_address, verbose)
    with pytest.raises(SmsTooLongError):
        check_removal_templates(verbose)
    check_removal_templates(TEMPLATES)


def test_a_removal_template_may_not_read_the_case_s_details() -> None:
    folder = files("services.notifier") / "templates"
    sources = {name: (folder / name).read_text("utf-8") for name in REMOVAL_TEMPLATE_NAMES}
    check_removal_sources(sources)
    with pytest.raises(AlertTemplateError, match="commune"):
        check_removal_sources(sources | {"removal.txt": sources["removal.txt"] + "{{ commune }}"})
    with pytest.raises(AlertTemplateError, match=r"removal_sms\.txt is missing"):
        check_removal_sources({k: v for k, v in sources.items() if k != "removal_sms.txt"})


def test_the_secretariat_is_named_from_the_default_referent() -> None:
    def contact(contact_id: str, email: str | None, *, generic: bool = False) -> ContactInfo:
        return ContactInfo(contact_id, email, None, email is not None, False, generic)

    referent = StructureContacts(
        "CCAPEX90",
        "Secrétariat de la CCAPEX du Territoire de Belfort",
        (
            contact("A", "agent@pref.test"),
            contact("B", None, generic=True),
            contact("C", "ccapex90@pref.test", generic=True),
        ),
    )
    assert secretariat_contact(referent) == ("Secrétariat de la CCAPEX du Territoire de Belfort", "ccapex90@pref.test")
    assert secretariat_contact(StructureContacts("X", "X", (contact("A", "agent@pref.test"),))) == (
        "X",
        "agent@pref.test",
    )
    assert secretariat_contact(StructureContacts("X", "X", ())) == ("X", None)
    assert secretariat_contact(None) == (SECRETARIAT, None)
