"""A new link asked for in the partner workspace (``workspace.link_requested``): who gets it, what it says.

A partner whose alert link had expired asked the workspace for a new one. The intake turns the request into
an immediate alert of that assignment to its structure (``intake.record_link_requests``: key
``link:<request id>``, ``AlertRow.link_request_id`` set) and the usual pipeline delivers it — retries,
receipts, fallback F3, exactly once, a link minted when the message leaves with the alerts' keys and
lifetime. Two things differ from an alert, and live here:

- ``link_recipients``: the structure is reached on one channel, not all: its contacts' email addresses, or
  their mobiles when no contact has email enabled (an SMS-only structure);
- the message (``new_link*`` templates, compiled with the alerts' by ``templates.load_templates``): that a
  new link was asked for, the reference, the link and its last valid day, nothing else. To the default
  referent (F3: no contact of the structure could be reached) it says which structure asked, with the desk's
  case page instead of a token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from schemas.notification import Channel
from services.notifier.domain.alerts import (
    SMS_MAX_CHARS,
    AlertTemplates,
    RenderedEmail,
    SmsTooLongError,
    check_template_sources,
    one_line,
    render_templated_email,
    to_gsm7,
)
from services.notifier.domain.routing import Recipient
from services.platform.links import TOKEN_LENGTH

__all__ = [
    "LINK_VARIABLES",
    "NEW_LINK_TEMPLATE_NAMES",
    "NewLinkContent",
    "check_new_link_sources",
    "check_new_link_templates",
    "link_recipients",
    "render_new_link_email",
    "render_new_link_sms",
]

NEW_LINK_TEMPLATE_NAMES: Final = ("new_link_subject.txt", "new_link.txt", "new_link.html", "new_link_sms.txt")
LINK_VARIABLES: Final = frozenset({"prefix", "ref", "link", "valid_until", "unreachable"})
"""Every value the ``new_link*`` templates may read: a template naming another is refused when loaded."""


@dataclass(frozen=True)
class NewLinkContent:
    """What the message may show. ``valid_until``: the token link's last day. ``unreachable``: set for the
    default referent (F3), the name of the structure that asked and could not be reached (its link is the
    desk's case page: no ``valid_until``)."""

    procedure_short_ref: str
    link: str
    valid_until: date | None = None
    unreachable: str | None = None


def check_new_link_sources(sources: Mapping[str, str]) -> None:
    """Raise ``AlertTemplateError`` when a ``new_link*`` template is missing, does not parse, or reads a
    variable outside ``LINK_VARIABLES`` (``templates.load_templates`` runs it on the packaged ones)."""
    check_template_sources(sources, dict.fromkeys(NEW_LINK_TEMPLATE_NAMES, LINK_VARIABLES), "a new link")


def render_new_link_email(content: NewLinkContent, templates: AlertTemplates) -> RenderedEmail:
    """Subject, plain text and HTML of the message."""
    return render_templated_email(templates, "new_link", _values(content, templates.prefix))


def render_new_link_sms(content: NewLinkContent, templates: AlertTemplates) -> str:
    """The SMS in GSM-7; raises ``SmsTooLongError`` beyond one segment (``check_new_link_templates``
    reveals at start-up a heading or link base that makes it so)."""
    text = to_gsm7(one_line(templates.render("new_link_sms.txt", _values(content, templates.sms_prefix))))
    if len(text) > SMS_MAX_CHARS:
        raise SmsTooLongError(f"new link SMS of {len(text)} characters exceeds {SMS_MAX_CHARS}")
    return text


def check_new_link_templates(templates: AlertTemplates, *, link_base_url: str) -> None:
    """Render both messages with the longest link once: raises what would fail at send time."""
    link = f"{link_base_url.rstrip('/')}/{'A' * TOKEN_LENGTH}"
    for content in (
        NewLinkContent("90-2026-000001", link, date(2026, 12, 31)),
        NewLinkContent("90-2026-000001", link, unreachable="Structure injoignable"),
    ):
        render_new_link_email(content, templates)
        render_new_link_sms(content, templates)


def link_recipients(found: Sequence[Recipient]) -> tuple[Recipient, ...]:
    """The recipients a new link goes to among a structure's ``found``: the email ones, or the SMS ones
    when there is none (an SMS-only structure)."""
    emails = tuple(r for r in found if r.channel is Channel.EMAIL)
    return emails or tuple(r for r in found if r.channel is Channel.SMS)


def _values(content: NewLinkContent, prefix: str) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "ref": content.procedure_short_ref,
        "link": content.link,
        "valid_until": None if content.valid_until is None else f"{content.valid_until:%d/%m/%Y}",
        "unreachable": content.unreachable,
    }
