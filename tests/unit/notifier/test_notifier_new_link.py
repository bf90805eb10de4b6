"""The message carrying a new link (``services/notifier/link_requests.py``): what it says, to whom, and that
its SMS fits one GSM-7 segment with the token link."""

from __future__ import annotations

from datetime import date, time
from importlib.resources import files

import pytest

from schemas.notification import Channel
from services.notifier.domain.alerts import SMS_MAX_CHARS, AlertTemplateError, SmsTooLongError, to_gsm7
from services.notifier.domain.routing import Recipient
from services.notifier.link_requests import (
    NEW_LINK_TEMPLATE_NAMES,
    NewLinkContent,
    check_new_link_sources,
    check_new_link_templates,
    link_recipients,
    render_new_link_email,
    render_new_link_sms,
)
from services.notifier.templates import load_templates
from services.platform.links import TOKEN_LENGTH

LINK = f"https://prevex.example/d/{'x' * TOKEN_LENGTH}"
TEMPLATES = load_templates(prefix="Prévention expulsions 90", sms_prefix="Expulsions 90")
CONTENT = NewLinkContent("90-2026-000001", LINK, date(2026, 6, 3))


def test_the_email_gives_the_reference_the_link_and_its_last_day() -> None:
    email = render_new_link_email(CONTENT, TEMPLATES)
    assert email.subject == "[Prévention expulsions 90] Nouveau lien – Dossier 90-2026-000001"
    for part in (email.text, email.html):
        assert "Un nouveau lien d'accès au dossier 90-2026-000001 a été demandé" in part.replace("&#39;", "'")
        assert "valable jusqu'au 03/06/2026 inclus" in part.replace("&#39;", "'")
    assert f"Ouvrir le dossier 90-2026-000001 (accès authentifié) : {LINK}" in email.text
    assert f'<a href="{LINK}">' in email.html


def test_the_default_referent_is_told_which_structure_asked_and_could_not_be_reached() -> None:
    desk = "https://prevex.example/secretariat/dossiers/90-2026-000001"
    content = NewLinkContent("90-2026-000001", desk, unreachable="CCAS de <Belfort>")
    email = render_new_link_email(content, TEMPLATES)
    assert email.subject == "[Prévention expulsions 90] Nouveau lien non remis – Dossier 90-2026-000001"
    assert "La structure « CCAS de <Belfort> » a demandé" in email.text
    assert "« CCAS de &lt;Belfort&gt; »" in email.html  # escaped in HTML
    assert "valable jusqu" not in email.text  # no token: nothing expires
    sms = render_new_link_sms(content, TEMPLATES)
    assert "structure injoignable" in sms
    assert "Belfort" not in sms  # a name has no budget in an SMS


def test_the_sms_is_one_gsm7_segment_with_the_link() -> None:
    sms = render_new_link_sms(CONTENT, TEMPLATES)
    assert sms == f"Expulsions 90 (nouveau lien): dossier 90-2026-000001, valable jusqu'au 03/06/2026. {LINK}"
    assert to_gsm7(sms) == sms
    assert len(sms) <= SMS_MAX_CHARS


def test_a_heading_too_long_for_an_sms_stops_the_service_at_start() -> None:
    check_new_link_templates(TEMPLATES, link_base_url="https://prevex.example/d")
    long = load_templates(prefix="P", sms_prefix="Prevention des expulsions locatives 90 " * 2)
    with pytest.raises(SmsTooLongError):
        check_new_link_templates(long, link_base_url="https://prevex.example/d")


def test_templates_read_only_the_allowed_variables() -> None:
    folder = files("services.notifier") / "templates"
    sources = {name: (folder / name).read_text("utf-8") for name in NEW_LINK_TEMPLATE_NAMES}
    check_new_link_sources(sources)
    with pytest.raises(
        AlertTemplateError, match=r"new_link\.txt reads variables that a new link must not carry: \[.commune.\]"
    ):
        check_new_link_sources({**sources, "new_link.txt": "{{ commune }}"})
    with pytest.raises(AlertTemplateError, match=r"new_link_sms\.txt is missing"):
        check_new_link_sources({k: v for k, v in sources.items() if k != "new_link_sms.txt"})


def _email(contact: str) -> Recipient:
    return Recipient(contact, Channel.EMAIL, f"{contact}@structure.test")


def _sms(contact: str) -> Recipient:
    return Recipient(contact, Channel.SMS, "+33612345678", (time(20), time(8)))


def test_a_new_link_goes_by_email_or_by_sms_to_an_sms_only_structure() -> None:
    assert link_recipients([_email("a"), _sms("a"), _sms("b"), _email("c")]) == (_email("a"), _email("c"))
    assert link_recipients([_sms("a"), _sms("b")]) == (_sms("a"), _sms("b"))
    assert link_recipients([]) == ()
