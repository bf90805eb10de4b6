"""Issue 14: the référentiel edited from the desk, in Chromium, on the running services (orientation's admin API
behind the workspace). An administrator opens an offer, changes its description, previews with the
keyboard, sees orientation's diff, saves; the version moves and the audit log names the change. Every page
passes axe-core; the preview is kept as ``var/screenshots/workspace-desk-referential.png``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Page, expect

from devtools.demo import wait_for_http
from tests.browser.conftest import BrowserStack

if TYPE_CHECKING:
    from tests.browser.conftest import AxeCheck, Screenshot

pytestmark = pytest.mark.e2e

OFFER = "Aides facultatives et suivi social du CCAS de Belfort"


async def test_an_administrator_edits_an_offer_sees_the_diff_and_saves(
    *, stack: BrowserStack, page: Page, axe: AxeCheck, screenshot: Screenshot
) -> None:
    base = f"http://127.0.0.1:{stack.config.workspace_http_port}"
    # Run alone, this test may come first: the services start with the stack.
    await wait_for_http(base)
    await wait_for_http(f"http://127.0.0.1:{stack.config.orientation_http_port}")
    await page.goto(f"{base}/secretariat/connexion")
    await page.get_by_label("Jeton personnel").fill(stack.desk_token)
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(f"{base}/secretariat")

    await page.get_by_role("link", name="Référentiel", exact=True).click()
    await page.wait_for_url(f"{base}/secretariat/referentiel")
    version = int(await page.locator("#version").inner_text())
    await axe(page, "the desk's référentiel")
    await page.get_by_role("link", name=OFFER).click()
    await page.wait_for_url("**/secretariat/referentiel/offres/CCAS-BELFORT")
    await axe(page, "an offer's form")

    await page.get_by_label("Description").fill("Secours d'urgence et suivi social de proximité, sur rendez-vous.")
    await page.get_by_label("Nom", exact=True).press("Enter")  # the keyboard previews: the form's first button
    diff = page.locator("#diff")
    await expect(diff).to_contain_text("~ offer CCAS-BELFORT")
    assert "sur rendez-vous" in await diff.inner_text()
    await axe(page, "the preview of a change")
    await screenshot(page, "workspace-desk-referential")

    await page.get_by_role("button", name="Enregistrer").click()
    await page.wait_for_url(re.compile(rf"/secretariat/referentiel/offres/CCAS-BELFORT\?version={version + 1}$"))
    await expect(page.locator("#message")).to_have_text(f"Enregistré : le référentiel est à la version {version + 1}.")
    await expect(page.get_by_label("Description")).to_have_value(
        "Secours d'urgence et suivi social de proximité, sur rendez-vous."
    )

    await page.goto(f"{base}/secretariat/journal?structure=CCAS-BELFORT")
    journal = await page.locator("#journal").inner_text()
    assert "DESK_EDIT_OFFER\tSAVED" in journal
    assert "secretariat-ccapex" in journal
