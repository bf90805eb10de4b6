"""Issue 14: the CCAPEX secretariat's desk in Chromium, on the running services.

The secretariat signs in with its token, finds S-05 (no offer matched: orientation manuelle) in the list
of procedures without a structure, adds FSL90 to it, and FSL90 receives an alert in the SMTP sink; then
removes it, and FSL90 receives « Dossier retiré de votre structure »; a partner's session cannot open the
desk. Every page passes axe-core; the desk is kept as
``var/screenshots/workspace-desk.png``.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Page

from tests.browser.conftest import BrowserStack
from tests.browser.test_workspace import CCAS, S01_REF, _case_link, _sign_in

if TYPE_CHECKING:
    from tests.browser.conftest import AxeCheck, Screenshot, StoredAlert

pytestmark = pytest.mark.e2e

S05_REF = "90-2026-000003"  # the third procedure of the stack's database (after S-01 and S-04)
FSL_MAIL = "fsl@cd90.test"
FSL_NAME = "FSL 90 – Fonds de solidarité pour le logement"


async def _desk_lists_show(page: Page, ref: str, timeout_s: float = 60) -> None:
    """Reload the desk until ``ref`` is in the list of procedures without a structure (the workspace's
    consumer may still be reading orientation's decision: a state to wait for, not a duration)."""
    # The section is always there; its table only once the list has a line.
    section = page.locator("section[aria-labelledby='sans-orientation-titre']")
    async with asyncio.timeout(timeout_s):
        while ref not in await section.inner_text():
            await asyncio.sleep(0.3)
            await page.reload()


async def _alert_for(
    stack: BrowserStack, recipient: str, ref: str, *, subject: str = "Dossier", timeout_s: float = 120
) -> EmailMessage:
    """The email to ``recipient`` about ``ref`` whose subject holds ``subject``, once the SMTP sink accepted it."""
    async with asyncio.timeout(timeout_s):
        while True:
            for mail in stack.smtp.messages:
                title = str(mail.message["Subject"])
                if recipient in mail.rcpt_tos and subject in title and ref in title:
                    return mail.message
            await asyncio.sleep(0.3)


async def test_the_secretariat_adds_a_structure_to_the_f1_procedure_and_that_structure_is_alerted(
    *, stack: BrowserStack, alerts: list[StoredAlert], page: Page, axe: AxeCheck, screenshot: Screenshot
) -> None:
    assert not [a for a in alerts if a.recipient == FSL_MAIL and S05_REF in a.subject]
    base = f"http://127.0.0.1:{stack.config.workspace_http_port}"
    await page.goto(f"{base}/secretariat/connexion")
    await axe(page, "the desk's sign-in page")
    await page.get_by_label("Jeton personnel").fill(stack.desk_token)
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(f"{base}/secretariat")
    await _desk_lists_show(page, S05_REF)
    await axe(page, "the desk")
    await screenshot(page, "workspace-desk")

    await page.locator("#sans-orientation").get_by_role("link", name=S05_REF).click()
    await page.wait_for_url(f"**/secretariat/dossiers/{S05_REF}")
    await axe(page, "the desk's procedure page")
    await page.get_by_label("Structure à alerter").select_option(label=FSL_NAME)
    await page.get_by_role("button", name="Ajouter et alerter la structure").click()
    await page.wait_for_url(f"**/secretariat/dossiers/{S05_REF}")

    alert = await _alert_for(stack, FSL_MAIL, S05_REF)
    plain = alert.get_body(("plain",))
    assert plain is not None
    assert "Ouvrir le dossier" in plain.get_content()

    await page.get_by_role("link", name="Journal des accès").first.click()
    assert "DESK_ADD" in await page.locator("#journal").inner_text()
    await axe(page, "the audit log")

    # The secretariat takes the case back from FSL90: FSL90 is told, in an email of its own.
    await page.goto(f"{base}/secretariat/dossiers/{S05_REF}")
    remove = page.get_by_role("button", name=f"Retirer {FSL_NAME}")
    async with asyncio.timeout(60):  # the desk lists FSL90 once orientation's decision reached the workspace
        while not await remove.count():
            await asyncio.sleep(0.3)
            await page.reload()
    await remove.click()
    await page.wait_for_url(f"**/secretariat/dossiers/{S05_REF}")
    removal = await _alert_for(stack, FSL_MAIL, S05_REF, subject="Dossier retiré de votre structure")
    plain = removal.get_body(("plain",))
    assert plain is not None
    assert f"a retiré le dossier {S05_REF} à votre structure" in plain.get_content()
    assert "Ouvrir le dossier" not in plain.get_content()


async def test_a_partner_session_cannot_open_the_desk(*, alerts: list[StoredAlert], page: Page) -> None:
    await _sign_in(page, _case_link(alerts, CCAS, S01_REF))
    base = page.url.split("/dossiers/")[0]
    response = await page.goto(f"{base}/secretariat")
    assert response is not None
    assert response.status == 403
    assert "réservées au secrétariat de la CCAPEX" in await page.inner_text("main")
