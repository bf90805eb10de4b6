"""What an alert says, rendered from templates. Pure: the template texts are given by the caller.

domain.md §5.9 and §6c: an alert carries a reference, the stage, the commune, the urgency, the
earliest expulsion date when relevant, and a link to the authenticated space — never a name, an
address, an amount or court details. ``AlertContent`` has no field that could hold them.
"""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass
from datetime import date
from string import Template

from schemas.procedure import Urgency
from schemas.stages import Stage, stage_label

__all__ = [
    "AlertContent",
    "AlertTemplates",
    "RenderedEmail",
    "SmsTooLongError",
    "render_email",
    "render_sms",
    "to_gsm7",
]

URGENCY_LABELS = {
    Urgency.LOW: "Urgence faible",
    Urgency.NORMAL: "Urgence normale",
    Urgency.HIGH: "Urgence haute",
    Urgency.CRITICAL: "URGENCE CRITIQUE",
}
MANUAL_ORIENTATION_TAG = "Aucune offre – orientation manuelle requise"
SMS_MAX_CHARS = 160

# GSM 03.38 basic character set (without the escape table): what one SMS segment carries as is.
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_TRANSLITERATIONS = {"’": "'", "–": "-", "—": "-", "«": '"', "»": '"', "œ": "oe", "Œ": "OE", "\u00a0": " "}


@dataclass(frozen=True)
class AlertContent:
    """Everything an alert may show. Adding a field here is a data-protection decision."""

    procedure_short_ref: str
    stage: Stage
    commune: str
    urgency: Urgency
    earliest_expulsion_date: date | None
    link: str
    manual_orientation: bool = False


@dataclass(frozen=True)
class AlertTemplates:
    prefix: str
    subject: str
    text: str
    html: str
    sms: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class SmsTooLongError(ValueError):
    """The rendered SMS does not fit one GSM-7 segment."""


def render_email(content: AlertContent, templates: AlertTemplates) -> RenderedEmail:
    """Subject, plain text and HTML of the email alert; values are HTML-escaped in the HTML part."""
    values = _values(content, templates.prefix)
    expulsion = _expulsion_text(content.earliest_expulsion_date)
    tag = MANUAL_ORIENTATION_TAG if content.manual_orientation else ""
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    return RenderedEmail(
        subject=Template(templates.subject).substitute(values).strip(),
        text=Template(templates.text).substitute(
            values, expulsion_line=f"{expulsion}\n" if expulsion else "", tag_line=f"{tag}\n" if tag else ""
        ),
        html=Template(templates.html).substitute(
            escaped,
            expulsion_item=f"<li>{html.escape(expulsion)}</li>" if expulsion else "",
            tag_block=f"<p><strong>{html.escape(tag)}</strong></p>" if tag else "",
        ),
    )


def render_sms(content: AlertContent, templates: AlertTemplates) -> str:
    """The SMS text in GSM-7, accents transliterated; raises ``SmsTooLongError`` past 160 characters."""
    text = to_gsm7(Template(templates.sms).substitute(_values(content, templates.prefix)).strip())
    if len(text) > SMS_MAX_CHARS:
        raise SmsTooLongError(f"SMS of {len(text)} characters exceeds {SMS_MAX_CHARS}")
    return text


def to_gsm7(text: str) -> str:
    """Replace every character outside the GSM-7 basic set: accents dropped, typography simplified."""
    out = []
    for char in text:
        if char in _GSM7:
            out.append(char)
        elif char in _TRANSLITERATIONS:
            out.append(_TRANSLITERATIONS[char])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            out.append(base if base and all(c in _GSM7 for c in base) else "?")
    return "".join(out)


def _values(content: AlertContent, prefix: str) -> dict[str, str]:
    return {
        "prefix": prefix,
        "ref": content.procedure_short_ref,
        "stage": stage_label(content.stage),
        "commune": content.commune,
        "urgency": URGENCY_LABELS[content.urgency],
        "link": content.link,
    }


def _expulsion_text(earliest: date | None) -> str:
    return f"Expulsion impossible avant le {earliest:%d/%m/%Y}" if earliest else ""
