"""Issue 17: an alert as a partner's mail client shows it — the HTML part of a real ``.eml`` in Chromium.

S-01 (a commandement de payer in Belfort) goes through ingest, orientation and the notifier as real
processes; the SMTP sink stores each email it accepts as a ``.eml`` file. For each of S-01's three emails,
the HTML part must pass axe-core (no serious or critical violation), fit a phone's width, and say
everything the plain-text part says — the reference, stage, commune, urgency, every sentence, and every
link with the same address and a text that names the dossier it opens — and nothing personal.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from schemas.procedure import Urgency
from services.notifier.domain.alerts import urgency_label

pytestmark = pytest.mark.e2e

# The first procedure of a fresh database, its stage and commune (docs/domain.md §9.1), and its three partners.
S01_REF, S01_STAGE, S01_COMMUNE, S01_EMAILS = "90-2026-000001", "Commandement de payer", "Belfort", 3
# The household of S-01 as its act describes it: none of it may be shown.
PERSONAL = ("Durand", "Léa", "Mulhouse", "612345678", "2400", "2 400")


def _normal(text: str) -> str:
    """Whitespace and case as a reader ignores them (the text part may shout what the HTML makes bold)."""
    return " ".join(text.split()).casefold()


def _sentences(text: str, links: dict[str, str]) -> list[str]:
    """The plain-text part's lines but its links, its signature dashes, and the "- " of list items (bullets
    in HTML)."""
    link_lines = {f"{label} : {url}" for label, url in links.items()}
    lines = (raw.strip().removeprefix("- ") for raw in text.splitlines())
    return [_normal(line) for line in lines if line and line != "--" and line not in link_lines]


async def _links(page: Page) -> dict[str, str]:
    pairs: list[Any] = await page.eval_on_selector_all(
        "a", "anchors => anchors.map(a => [a.innerText, a.getAttribute('href')])"
    )
    return {_normal(label): href for label, href in pairs}


async def test_each_alert_email_renders_accessibly_and_says_what_its_text_part_says(
    *, alerts: list[Any], page: Page, phone_page: Page, axe: Any, fits_screen: Any, screenshot: Any
) -> None:
    s01 = [alert for alert in alerts if S01_REF in alert.subject]
    assert len(s01) == S01_EMAILS

    urgencies = [urgency_label(urgency) for urgency in Urgency]
    for alert in s01:
        await page.set_content(alert.html)
        await axe(page, f"the alert email {alert.path.name}")
        rendered = _normal(await page.inner_text("body"))

        assert S01_REF in await page.title()
        assert S01_REF in await page.get_by_role("heading", level=1).inner_text()
        for fact in (S01_REF, S01_STAGE, S01_COMMUNE):
            assert fact in alert.subject
            assert fact in alert.text
            assert _normal(fact) in rendered, f"{fact!r} is not shown by {alert.path.name}"
        [urgency] = [label for label in urgencies if f"Urgence : {label}" in alert.text]
        assert _normal(f"Urgence : {urgency}") in rendered
        assert urgency in alert.subject

        text_links = alert.text_links()
        missing = [line for line in _sentences(alert.text, text_links) if line not in rendered]
        assert missing == [], f"{alert.path.name}: text lines the HTML does not show"
        assert await _links(page) == {_normal(label): url for label, url in text_links.items()}
        # The link to the case says which dossier it opens, not only "click here".
        [case_link] = [label for label in text_links if label.startswith("Ouvrir le dossier")]
        assert S01_REF in case_link
        for personal in PERSONAL:
            assert personal.casefold() not in rendered, f"{personal!r} is shown by {alert.path.name}"

        await phone_page.set_content(alert.html)
        await fits_screen(phone_page, f"the alert email {alert.path.name} on a phone")

    await screenshot(page, "alert-email")
    await screenshot(phone_page, "alert-email-phone")
