"""Issue 17: an alert as a partner's mail client shows it — the HTML part of a real ``.eml`` in Chromium.

S-01 (a commandement de payer in Belfort) goes through ingest, orientation and the notifier as real
processes; the SMTP sink stores each email it accepts as a ``.eml`` file. For each of them, the HTML part
must pass axe-core (no serious or critical violation), fit a phone's width, and say everything the
plain-text part says — the reference, stage, commune, urgency, every sentence, and every link with the
same address and a text that names the dossier it opens — and nothing personal.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from schemas.procedure import Urgency
from services.devenv.demo import DEMO_INPUTS
from services.notifier.domain.alerts import urgency_label

pytestmark = pytest.mark.e2e

S01 = DEMO_INPUTS[0]
# The first procedure of a fresh database, its stage and commune (docs/domain.md §9.1).
S01_REF, S01_STAGE, S01_COMMUNE = "90-2026-000001", "Commandement de payer", "Belfort"
# The household of S-01 as its act describes it: none of it may be shown.
PERSONAL = ("Durand", "Léa", "Mulhouse", "612345678", "2400", "2 400")
PHONE_WIDTH = 390
# A plain-text line that carries a link: "<what it opens> : <address>".
_LINK_LINE = re.compile(r"^(?P<label>.+?) : (?P<url>https?://\S+)$")


def _parts(eml: Path) -> tuple[str, str, str]:
    """Subject, plain-text part and HTML part of a stored email, read as a mail client would."""
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None, f"{eml.name} has no plain-text part"
    assert html is not None, f"{eml.name} has no HTML part"
    return str(message["Subject"]), plain.get_content(), html.get_content()


def _normal(text: str) -> str:
    """Whitespace and case as a reader ignores them (the text part may shout what the HTML makes bold)."""
    return " ".join(text.split()).casefold()


def _sentences_and_links(text: str) -> tuple[list[str], set[tuple[str, str]]]:
    """The plain-text part's lines, and its links as (what they open, address); the signature dashes and the
    "- " of list items (bullets in HTML) left out."""
    sentences: list[str] = []
    links: set[tuple[str, str]] = set()
    for line in filter(None, (raw.strip().removeprefix("- ") for raw in text.splitlines())):
        if match := _LINK_LINE.match(line):
            links.add((_normal(match["label"]), match["url"]))
        elif line != "--":
            sentences.append(_normal(line))
    return sentences, links


async def _links(page: Page) -> set[tuple[str, str]]:
    pairs: list[Any] = await page.eval_on_selector_all(
        "a", "anchors => anchors.map(a => [a.innerText, a.getAttribute('href')])"
    )
    return {(_normal(label), href) for label, href in pairs}


async def test_each_alert_email_renders_accessibly_and_says_what_its_text_part_says(
    stack: Any, page: Page, phone_page: Page, axe: Any, screenshot: Any
) -> None:
    await stack.send(S01)
    emls = await stack.stored_emails(S01.emails)
    assert len(emls) == S01.emails

    urgencies = [urgency_label(urgency) for urgency in Urgency]
    for eml in emls:
        subject, text, html = _parts(eml)
        await page.set_content(html)
        await axe(page, f"the alert email {eml.name}")
        rendered = _normal(await page.inner_text("body"))

        assert S01_REF in await page.title()
        assert S01_REF in await page.get_by_role("heading", level=1).inner_text()
        for fact in (S01_REF, S01_STAGE, S01_COMMUNE):
            assert fact in subject
            assert fact in text
            assert _normal(fact) in rendered, f"{fact!r} is not shown by {eml.name}"
        [urgency] = [label for label in urgencies if f"Urgence : {label}" in text]
        assert _normal(f"Urgence : {urgency}") in rendered
        assert urgency in subject

        sentences, text_links = _sentences_and_links(text)
        assert [s for s in sentences if s not in rendered] == [], f"{eml.name}: text lines the HTML does not show"
        html_links = await _links(page)
        assert html_links == text_links
        # The link to the case says which dossier it opens, not only "click here".
        [case_link] = [label for label, _ in html_links if label.startswith("ouvrir le dossier")]
        assert _normal(S01_REF) in case_link
        for personal in PERSONAL:
            assert personal.casefold() not in rendered, f"{personal!r} is shown by {eml.name}"

        # Readable on a phone: the page is no wider than the screen (nothing to scroll sideways).
        await phone_page.set_content(html)
        assert await phone_page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH

    await screenshot(page, "alert-email")
    await screenshot(phone_page, "alert-email-phone")
