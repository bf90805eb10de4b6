"""Issue 14: the partner workspace in Chromium, reached the way a partner reaches it — from the link of an
alert the SMTP sink received.

The services run as real processes (``stack``); S-01 (Belfort: CCAS-BELFORT, CDAD90, CD90) and S-04
(Valdoie: CD90, CDAD90, FSL90) were sent by their commissaire de justice (``alerts``). Every page the tests
open passes axe-core (no serious or critical violation); the case page, the list, the référentiel (desktop and
phone) and the refusal pages are kept as screenshots in ``var/screenshots/workspace-*.png``.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import asyncpg
import pytest
from playwright.async_api import Page, expect

from services.platform.links import LinkKeys, assignment_prefix, mint_link, read_link
from tests.browser.conftest import StoredAlert

if TYPE_CHECKING:
    from tests.browser.conftest import AxeCheck, BrowserStack, FitCheck, Screenshot

pytestmark = pytest.mark.e2e

# The references ingest gives S-01 and S-04 (the first two procedures of the stack's database).
S01_REF, S04_REF = "90-2026-000001", "90-2026-000002"
CCAS, CDAD, CD90 = "accueil@ccas-belfort.test", "point-justice@cdad90.test", "prevention.expulsions@cd90.test"
CDAD_NAME, CD90_NAME = "Point-justice / CDAD 90", "Département 90 – Prévention des expulsions"
_TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _case_link(alerts: list[StoredAlert], recipient: str, ref: str) -> str:
    """The address of the « Ouvrir le dossier » link of ``recipient``'s alert about ``ref``."""
    [alert] = [a for a in alerts if a.recipient == recipient and f"Dossier {ref}" in a.subject]
    [url] = [url for label, url in alert.text_links().items() if label.startswith("Ouvrir le dossier")]
    assert urlsplit(url).hostname == "127.0.0.1", f"the stack's alerts must link to its workspace: {url}"
    return str(url)


def _with_token(link: str, token: str) -> str:
    return link.rsplit("/", 1)[0] + "/" + token


async def _status_code(page: Page, url: str) -> int:
    response = await page.goto(url)
    assert response is not None
    return response.status


async def _sign_in(page: Page, link: str, timeout_s: float = 60) -> None:
    """Open an alert's link until the workspace knows its assignment (its consumer may still be reading the
    decision the alert came from: a state to wait for, not a duration); it lands on the case page."""
    async with asyncio.timeout(timeout_s):
        while (status := await _status_code(page, link)) == 403:  # noqa: ASYNC110 (an HTTP answer: no event)
            await asyncio.sleep(0.2)
    assert status == 200, f"{link}: HTTP {status}"


async def _status_becomes(page: Page, expected: str, timeout_s: float = 60) -> None:
    """Reload the case page until it shows ``expected``: the workspace shows a status once orientation
    applied the action and its event came back (a state to wait for, not a duration)."""
    async with asyncio.timeout(timeout_s):
        while (await page.locator("#statut-courant").inner_text()).strip() != expected:
            await asyncio.sleep(0.3)
            await page.reload()


async def test_the_alert_link_opens_the_case_for_its_partner_who_accepts_it(
    *, alerts: list[StoredAlert], page: Page, axe: AxeCheck, screenshot: Screenshot
) -> None:
    link = _case_link(alerts, CCAS, S01_REF)
    await _sign_in(page, link)
    # The token is spent on a session: neither it nor anything personal stays in the address bar.
    assert urlsplit(page.url).path == f"/dossiers/{S01_REF}"
    [cookie] = await page.context.cookies()
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"

    assert S01_REF in await page.get_by_role("heading", level=1).inner_text()
    shown = await page.inner_text("main")
    for fact in ("Commandement de payer", "Belfort", "Léa Durand", CDAD_NAME, CD90_NAME):
        assert fact in shown, f"{fact!r} is not on the case page"
    assert (await page.locator("#statut-courant").inner_text()).strip() == "À traiter"
    await axe(page, "the case page")
    await screenshot(page, "workspace-case")

    # By keyboard: tabbing from the top of the page reaches the button, and Enter presses it.
    accept = page.get_by_role("button", name="Accepter l'orientation")
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await accept.evaluate("button => button === document.activeElement"):
            break
    else:
        pytest.fail("the accept button cannot be reached with the Tab key")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/dossiers/{S01_REF}")
    await _status_becomes(page, "Acceptée")
    await axe(page, "the accepted case page")

    await page.get_by_role("link", name="Mes dossiers").click()
    row = page.locator("#dossiers tbody tr", has_text=S01_REF)
    assert "Acceptée" in await row.inner_text()
    await axe(page, "the list of cases")
    await screenshot(page, "workspace-cases")

    await page.get_by_role("link", name="Référentiel des partenaires").click()
    everything = await page.locator("article").count()
    assert (await page.locator("#version").inner_text()).strip()
    await axe(page, "the référentiel")
    await screenshot(page, "workspace-referentiel")
    await page.get_by_label("Type de structure").select_option(label="CCAS")
    await page.get_by_role("button", name="Rechercher").click()
    cards = page.locator("article")
    assert 0 < await cards.count() < everything
    assert "CCAS de Belfort" in " ".join(await cards.all_inner_texts())
    await axe(page, "the référentiel searched by kind")

    # By commune: Delle's association is there, the CCAS of Belfort (its offer covers Belfort only) is not.
    await page.get_by_label("Type de structure").select_option(label="Tous les types")
    await page.get_by_label("Commune (nom ou code INSEE)").fill("Delle")
    await page.get_by_label("Commune (nom ou code INSEE)").press("Enter")
    await expect(page.locator("#commune-trouvee")).to_have_text("Commune : Delle (90033).")
    in_delle = " ".join(await page.locator("article").all_inner_texts())
    assert "Association Médiation Locative Sud Territoire" in in_delle
    assert "CCAS de Belfort" not in in_delle
    await axe(page, "the référentiel searched by commune")


async def test_the_pages_read_on_a_phone(
    *, alerts: list[StoredAlert], phone_page: Page, axe: AxeCheck, fits_screen: FitCheck, screenshot: Screenshot
) -> None:
    # CD90's S-04 case is left as it came (À traiter): the page with every form a partner may use.
    await _sign_in(phone_page, _case_link(alerts, CD90, S04_REF))
    problems: list[str] = []
    for name, link in (("case", None), ("cases", "Mes dossiers"), ("referentiel", "Référentiel des partenaires")):
        if link:
            await phone_page.get_by_role("link", name=link).click()
        await screenshot(phone_page, f"workspace-{name}-phone")
        # Every page checked and every problem listed, so that one run shows all there is to fix.
        for check in (fits_screen, axe):
            try:
                await check(phone_page, f"the {name} page on a phone")
            except AssertionError as problem:
                problems.append(str(problem).splitlines()[0])
    assert not problems, "\n".join(problems)


async def test_a_partner_refuses_its_orientation_with_a_reason(
    *, alerts: list[StoredAlert], page: Page, axe: AxeCheck, screenshot: Screenshot
) -> None:
    await _sign_in(page, _case_link(alerts, CDAD, S01_REF))
    form = page.locator("#form-refuser")
    await form.get_by_label("Motif du refus").select_option(label="Hors de notre territoire")
    await form.get_by_label("Commentaire").fill("Ménage déjà reçu par notre permanence de Delle.")
    await form.get_by_role("button", name="Refuser").click()
    await _status_becomes(page, "Refusée")
    await axe(page, "the refused case page")
    await screenshot(page, "workspace-case-refused")


async def test_an_altered_guessed_or_expired_token_opens_nothing(
    *, stack: BrowserStack, alerts: list[StoredAlert], page: Page, axe: AxeCheck, screenshot: Screenshot
) -> None:
    link = _case_link(alerts, CCAS, S01_REF)
    token = link.rsplit("/", 1)[1]
    altered = token[:-1] + next(c for c in _TOKEN_ALPHABET if c != token[-1])
    guessed = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in token)
    for bad in (altered, guessed, token[:-1], S01_REF):
        assert await _status_code(page, _with_token(link, bad)) == 403, bad
        assert "Lien non valide" in await page.get_by_role("heading", level=1).inner_text()
        assert await page.context.cookies() == [], "a refused link must not start a session"
    await axe(page, "the refused link page")
    await screenshot(page, "workspace-link-refused")

    assert await _status_code(page, await _expired(stack, link)) == 410
    assert "Lien expiré" in await page.get_by_role("heading", level=1).inner_text()
    assert [c["name"] for c in await page.context.cookies()] == ["prevex_link_request"]  # the form's nonce only
    await axe(page, "the expired link page")
    await screenshot(page, "workspace-link-expired")


async def test_an_expired_link_asks_for_a_new_one_and_the_new_one_works(
    *, stack: BrowserStack, alerts: list[StoredAlert], page: Page, axe: AxeCheck, screenshot: Screenshot
) -> None:
    link = _case_link(alerts, CCAS, S01_REF)
    expired = await _expired(stack, link)
    assert await _status_code(page, expired) == 410
    await page.get_by_role("button", name="Recevoir un nouveau lien").click()
    await page.wait_for_url("**/nouveau-lien")
    shown = await page.inner_text("main")
    assert "Un nouveau lien a été envoyé au contact de votre structure" in shown
    assert "@" not in shown  # which contact, and its address, are not told
    await axe(page, "the new link sent page")
    await screenshot(page, "workspace-link-requested")

    # The notifier sent it, by email (the CCAS has an address): the message reads like the others.
    fresh = await _new_link_email(stack, CCAS, S01_REF)
    assert fresh.subject == f"[Prévention expulsions 90] Nouveau lien – Dossier {S01_REF}"
    [new_link] = [url for label, url in fresh.text_links().items() if label.startswith("Ouvrir le dossier")]
    # A token for the same assignment, minted when the message left: its last day is ahead.
    assert read_link(new_link.rsplit("/", 1)[1]).prefix == read_link(expired.rsplit("/", 1)[1]).prefix
    assert read_link(new_link.rsplit("/", 1)[1]).expires_on > datetime.now(UTC).date()
    await _sign_in(page, new_link)
    assert urlsplit(page.url).path == f"/dossiers/{S01_REF}"
    assert S01_REF in await page.get_by_role("heading", level=1).inner_text()

    # Asking again at once sends nothing more: the page says a link was sent a moment ago.
    await page.context.clear_cookies()
    await page.goto(expired)
    await page.get_by_role("button", name="Recevoir un nouveau lien").click()
    await page.wait_for_url("**/nouveau-lien")
    assert "Nouveau lien déjà envoyé" in await page.get_by_role("heading", level=1).inner_text()
    await axe(page, "the new link already sent page")


async def _expired(stack: BrowserStack, link: str) -> str:
    """``link`` as a notifier would have minted it weeks ago for the same assignment: its last day past."""
    conn = await asyncpg.connect(stack.config.database_url)
    try:
        rows = await conn.fetch("SELECT assignment_id, structure_id FROM orientation.assignment")
    finally:
        await conn.close()
    prefix = read_link(link.rsplit("/", 1)[1]).prefix
    [row] = [row for row in rows if assignment_prefix(row["assignment_id"]) == prefix]
    expired = mint_link(
        LinkKeys.parse(stack.config.link_secret),
        assignment_id=row["assignment_id"],
        structure_id=row["structure_id"],
        expires_on=datetime.now(UTC).date() - timedelta(days=2),
    )
    return _with_token(link, expired)


async def _new_link_email(stack: BrowserStack, recipient: str, ref: str, timeout_s: float = 60) -> StoredAlert:
    """The « Nouveau lien » email to ``recipient`` about ``ref``, once the SMTP sink stored it (a state to
    wait for: the request crosses the workspace's outbox, the broker and the notifier's sender)."""
    subject = f"Nouveau lien – Dossier {ref}"
    async with asyncio.timeout(timeout_s):
        while True:
            for path in sorted(stack.mail_dir.glob("*.eml")):
                stored = StoredAlert.read(path)
                if stored.recipient == recipient and subject in stored.subject:
                    return stored
            await asyncio.sleep(0.3)


async def test_a_partner_cannot_open_or_act_on_a_case_of_another_structure(
    *, stack: BrowserStack, alerts: list[StoredAlert], page: Page, axe: AxeCheck
) -> None:
    await _sign_in(page, _case_link(alerts, CCAS, S01_REF))
    workspace = stack.services.workspace_url
    # S-04 was not oriented to the CCAS; a reference that does not exist answers the same (no oracle).
    refused = []
    for ref in (S04_REF, "90-2026-999999"):
        assert await _status_code(page, f"{workspace}/dossiers/{ref}") == 403
        refused.append(await page.inner_text("main"))
    assert refused[0] == refused[1]
    assert "Accès refusé" in refused[0]
    assert "Martin" not in refused[0]
    await axe(page, "the access refused page")
    # Nor can it act on it, with its own session and form token.
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    answer = await page.request.post(f"{workspace}/dossiers/{S04_REF}/accepter", form={"csrf": csrf or ""})
    assert answer.status == 403
    assert "Accès refusé" in await answer.text()
