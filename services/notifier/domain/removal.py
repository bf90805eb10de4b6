"""What a structure the CCAPEX removed from a case is told (issue 14): « Dossier retiré de votre structure ».

Pure, like ``alerts``: the template texts come from the caller. The notice carries the case's reference, that
the CCAPEX took the file from the structure, and who to contact — the CCAPEX secretariat by its référentiel
name and address (an organisation's, never a household's) — and nothing else: no stage, commune or link
(the structure no longer holds the case). ``RemovalContent`` has no other field, and the removal templates
may read only ``REMOVAL_VARIABLES`` (checked by ``check_removal_sources`` when they are loaded).

The templates are compiled into the same ``AlertTemplates`` as the alerts' (``services/notifier/templates.py``
loads both), so the dispatcher renders either with one object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from schemas.notification import FallbackKind
from services.notifier.domain.alerts import (
    SMS_MAX_CHARS,
    AlertTemplates,
    FallbackNotice,
    RenderedEmail,
    SmsTooLongError,
    check_template_sources,
    one_line,
    render_templated_email,
    to_gsm7,
)
from services.notifier.domain.routing import StructureContacts

__all__ = [
    "REMOVAL_TEMPLATE_NAMES",
    "REMOVAL_VARIABLES",
    "SECRETARIAT",
    "RemovalContent",
    "check_removal_sources",
    "check_removal_templates",
    "render_removal_email",
    "render_removal_sms",
    "secretariat_contact",
]

REMOVAL_TEMPLATE_NAMES: Final = ("removal_subject.txt", "removal.txt", "removal.html", "removal_sms.txt")
REMOVAL_VARIABLES: Final = frozenset({"prefix", "ref", "secretariat", "secretariat_email", "fallback"})
SECRETARIAT: Final = "Secrétariat de la CCAPEX"
"""Who to contact when the référentiel has not named the CCAPEX secretariat (the default referent) yet."""


@dataclass(frozen=True)
class RemovalContent:
    """Everything a removal notice may show. ``secretariat``: the CCAPEX secretariat's name in the référentiel;
    ``secretariat_email``: its address to write to, if it has one; ``fallback``: why this recipient gets the
    notice instead of the structure's usual contact (fallback F3)."""

    procedure_short_ref: str
    secretariat: str
    secretariat_email: str | None = None
    fallback: FallbackNotice | None = None


def secretariat_contact(referent: StructureContacts | None) -> tuple[str, str | None]:
    """The CCAPEX secretariat (the default referent) as a removal notice names it: its name, and the address
    of its generic mailbox (else of its first contact with one); ``SECRETARIAT`` and no address while the
    référentiel topic has not named it."""
    if referent is None:
        return SECRETARIAT, None
    emails = [c for c in referent.contacts if c.email_enabled and c.email]
    generic = [c for c in emails if c.is_generic]
    chosen = generic or emails
    return referent.nom, chosen[0].email if chosen else None


def check_removal_sources(sources: Mapping[str, str]) -> None:
    """Raise ``AlertTemplateError`` when a removal template is missing, does not parse, or reads a variable
    outside ``REMOVAL_VARIABLES``."""
    check_template_sources(sources, dict.fromkeys(REMOVAL_TEMPLATE_NAMES, REMOVAL_VARIABLES), "a removal")


def render_removal_email(content: RemovalContent, templates: AlertTemplates) -> RenderedEmail:
    """Subject, plain text and HTML of the removal notice."""
    return render_templated_email(templates, "removal", _values(content, templates.prefix))


def render_removal_sms(content: RemovalContent, templates: AlertTemplates) -> str:
    """The removal notice in one GSM-7 segment; without the secretariat's address when it would not fit;
    ``SmsTooLongError`` when even that does not (a heading far too long, which ``check_removal_templates``
    reveals at start-up)."""
    text = _sms(content, templates)
    if len(text) > SMS_MAX_CHARS and content.secretariat_email is not None:
        text = _sms(replace(content, secretariat_email=None), templates)
    if len(text) > SMS_MAX_CHARS:
        raise SmsTooLongError(f"removal SMS of {len(text)} characters exceeds {SMS_MAX_CHARS}: shorten the SMS heading")
    return text


def check_removal_templates(templates: AlertTemplates, *, sample_ref: str = "90-2026-000001") -> None:
    """Render the removal notice with and without fallback and address once: raise what would fail at send
    time (run at start-up, like ``alerts.check_templates``)."""
    secretariat = "Secrétariat de la commission de coordination des actions de prévention des expulsions"
    fallbacks = (
        None,
        FallbackNotice(FallbackKind.GENERIC_CONTACT),
        FallbackNotice(FallbackKind.DEFAULT_REFERENT, "Structure injoignable"),
    )
    for fallback in fallbacks:
        content = RemovalContent(sample_ref, secretariat, "secretariat.ccapex@departement.example", fallback)
        render_removal_email(content, templates)
        render_removal_sms(content, templates)


def _sms(content: RemovalContent, templates: AlertTemplates) -> str:
    return to_gsm7(one_line(templates.render("removal_sms.txt", _values(content, templates.sms_prefix))))


def _values(content: RemovalContent, prefix: str) -> dict[str, Any]:
    fallback = content.fallback
    return {
        "prefix": prefix,
        "ref": content.procedure_short_ref,
        "secretariat": content.secretariat,
        "secretariat_email": content.secretariat_email,
        "fallback": None
        if fallback is None
        else {"default_referent": fallback.kind is FallbackKind.DEFAULT_REFERENT, "unreachable": fallback.unreachable},
    }
