"""The refusal and the escalations told to the CCAPEX secretariat or the structure, as the packaged
templates render them: the structure, the reason's French label or the working days waited, in the email
and in a one-segment SMS; no reason code, no comment."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from schemas.assignment import REFUSAL_REASONS, refusal_label
from schemas.procedure import Urgency
from schemas.stages import Stage
from services.notifier.domain.alerts import (
    SMS_MAX_CHARS,
    AlertContent,
    EscalationNotice,
    RefusalNotice,
    render_email,
    render_sms,
)
from services.notifier.templates import load_templates

TEMPLATES = load_templates(prefix="Prévention expulsions 90", sms_prefix="Expulsions 90")
CONTENT = AlertContent(
    "90-2026-000042",
    Stage.ASSIGNATION,
    "Belfort",
    Urgency.NORMAL,
    None,
    "https://prevex.example/dossiers/90-2026-000042",
    date(2026, 5, 4),
    refusal=RefusalNotice("CCAS de Belfort", "DEJA_SUIVI"),
)


def test_the_email_names_the_refusing_structure_and_the_reason_in_french() -> None:
    email = render_email(CONTENT, TEMPLATES)
    assert email.subject.startswith("[Prévention expulsions 90] Refus – Dossier 90-2026-000042 – Assignation")
    for part in (email.text, email.html):
        assert "CCAS de Belfort" in part
        assert "Motif : Ménage déjà suivi par une autre structure" in part
        assert "DEJA_SUIVI" not in part
        assert "https://prevex.example/dossiers/90-2026-000042" in part
    assert "Un dossier de prévention des expulsions locatives vous a été orienté" not in email.text


def test_the_structure_name_is_escaped_in_html() -> None:
    content = AlertContent(**{**CONTENT.__dict__, "refusal": RefusalNotice("A&B <asso>", "AUTRE")})
    assert "« A&amp;B &lt;asso&gt; »" in render_email(content, TEMPLATES).html


def test_the_sms_says_refus_and_fits_one_segment() -> None:
    sms = render_sms(CONTENT, TEMPLATES)
    assert sms.startswith("Expulsions 90 (refus): ")
    assert len(sms) <= SMS_MAX_CHARS


@pytest.mark.parametrize(
    ("code", "label"),
    [
        *REFUSAL_REASONS.items(),
        ("HORS_DELAI_CONVENTION", "Autre motif (code HORS_DELAI_CONVENTION)"),
    ],
)
def test_every_reason_code_has_a_french_label_and_an_unknown_one_shows_its_code(code: str, label: str) -> None:
    assert refusal_label(code) == label


def test_the_reminder_and_the_secretariats_alert_say_how_long_the_file_has_waited() -> None:
    reminder = replace(CONTENT, refusal=None, escalation=EscalationNotice(5))
    email = render_email(reminder, TEMPLATES)
    assert "Relance – Dossier 90-2026-000042" in email.subject
    assert "attend la réponse de votre structure depuis 5 jours ouvrés" in email.text
    assert render_sms(reminder, TEMPLATES).startswith("Expulsions 90 (relance): ")

    silent = replace(reminder, escalation=EscalationNotice(5, "CCAS de Belfort"))
    email = render_email(silent, TEMPLATES)
    assert "Sans réponse – Dossier 90-2026-000042" in email.subject
    for part in (email.text, email.html):
        assert "« CCAS de Belfort » n'a pas répondu pour ce dossier, 5 jours ouvrés après une relance" in part
    sms = render_sms(silent, TEMPLATES)
    assert sms.startswith("Expulsions 90 (sans reponse): ")
    assert len(sms) <= SMS_MAX_CHARS
