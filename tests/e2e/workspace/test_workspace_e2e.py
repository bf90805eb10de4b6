"""The workspace as a running process: a partner opens its alert's link from the ``.eml`` the SMTP sink
received, sees the case, accepts it; orientation (another process) applies the acceptance and the page then
shows it. Another structure's session, an altered and a guessed token are refused. An expired link asks for a
new one, which the notifier sends through the broker to the SMTP sink."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from services.platform.links import LinkKeys, mint_link

if TYPE_CHECKING:
    from tests.e2e.workspace.conftest import WorkspaceStack

pytestmark = pytest.mark.e2e

S01_REF, S04_REF = "90-2026-000001", "90-2026-000002"
CCAS, FSL = "accueil@ccas-belfort.test", "fsl@cd90.test"
PERSONAL_DATA = ("Durand", "Léa", "Mulhouse", "612345678")


def _client(stack: WorkspaceStack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.url, timeout=10)


def _status(page: str) -> str:
    found = re.search(r'id="statut-courant">([^<]+)<', page)
    assert found is not None
    return found.group(1)


async def _orientation_status(database_url: str, ref: str, structure_id: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        status: str = await conn.fetchval(
            "SELECT a.status FROM orientation.assignment a JOIN workspace.procedure p USING (procedure_id)"
            " WHERE p.short_ref = $1 AND a.structure_id = $2",
            ref,
            structure_id,
        )
    finally:
        await conn.close()
    return status


async def test_the_alert_link_opens_the_case_and_an_acceptance_comes_back_applied(
    workspace_stack: WorkspaceStack,
) -> None:
    stack = workspace_stack
    async with _client(stack) as browser:
        opened = await stack.open(browser, stack.alert_link(CCAS, S01_REF))
        assert opened.status_code == 303
        assert opened.headers["location"] == f"/dossiers/{S01_REF}"
        page = (await browser.get(f"/dossiers/{S01_REF}")).text
        assert "Léa Durand" in page
        assert "Commandement de payer" in page
        assert _status(page) == "À traiter"

        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        accepted = await browser.post(f"/dossiers/{S01_REF}/accepter", data={"csrf": csrf.group(1)})
        assert accepted.status_code == 303
        async with asyncio.timeout(60):  # until the event came back through the broker and was folded
            while True:
                page = (await browser.get(f"/dossiers/{S01_REF}")).text
                if _status(page) == "Acceptée":
                    break
                await asyncio.sleep(0.2)
        assert await _orientation_status(stack.database_url, S01_REF, "CCAS-BELFORT") == "ACCEPTEE"
        assert 'id="form-cloturer"' in page

        # S-04 was never the CCAS's: 403, whatever the reference.
        assert (await browser.get(f"/dossiers/{S04_REF}")).status_code == 403

    # FSL90 holds S-04 only: its link opens S-04 and not S-01.
    async with _client(stack) as fsl:
        assert (await stack.open(fsl, stack.alert_link(FSL, S04_REF))).status_code == 303
        assert (await fsl.get(f"/dossiers/{S04_REF}")).status_code == 200
        denied = await fsl.get(f"/dossiers/{S01_REF}")
        assert denied.status_code == 403
        assert "Durand" not in denied.text

    link = stack.alert_link(CCAS, S01_REF)
    token = link.rsplit("/", 1)[1]
    altered = link[: -len(token)] + token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    async with _client(stack) as stranger:
        for path in (altered, f"{stack.url}/d/{'x' * 20}", f"{stack.url}/d/{S01_REF}"):
            answer = await stranger.get(path)
            assert answer.status_code == 403, path
            assert "set-cookie" not in answer.headers
        assert (await stranger.get(f"/dossiers/{S01_REF}")).status_code == 401

    log_text = stack.services.log_path("workspace").read_text("utf-8")
    for personal in (*PERSONAL_DATA, token):
        assert personal not in log_text, f"{personal!r} leaked into the workspace log"
    for line in filter(None, log_text.splitlines()):
        json.loads(line)
    assert stack.services.running("workspace")


async def test_an_expired_link_brings_a_new_one_through_kafka_to_the_smtp_sink(
    workspace_stack: WorkspaceStack,
) -> None:
    """FSL90's S-04 link, as minted weeks ago: its expired page asks for a new one; the workspace's outbox,
    the broker and the notifier bring it to FSL90's mailbox, once, and it opens the case."""
    stack = workspace_stack
    link = stack.alert_link(FSL, S04_REF)
    row = await stack.assignment(S04_REF, "FSL90")
    expired = mint_link(
        LinkKeys.parse(stack.services.config.link_secret),
        assignment_id=row["assignment_id"],
        structure_id="FSL90",
        expires_on=datetime.now(UTC).date() - timedelta(days=1),
    )
    expired_link = link.rsplit("/", 1)[0] + "/" + expired
    before = len(stack.smtp.messages)
    async with _client(stack) as partner:
        page = await partner.get(expired_link)
        assert page.status_code == 410
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        assert nonce is not None
        for answer_status in (202, 429):  # the second click sends nothing more
            asked = await partner.post(f"{expired_link}/nouveau-lien", data={"nonce": nonce.group(1)})
            assert asked.status_code == answer_status
            nonce = re.search(r'name="nonce" value="([^"]+)"', (await partner.get(expired_link)).text)
            assert nonce is not None

    await stack.smtp.wait_for(before + 1, timeout=60)
    [fresh] = [m for m in stack.smtp.messages[before:] if FSL in m.rcpt_tos]
    message = fresh.message
    assert isinstance(message, EmailMessage)
    assert str(message["Subject"]) == f"[Prévention expulsions 90] Nouveau lien – Dossier {S04_REF}"
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]{20}", body.get_content())
    assert found is not None
    async with _client(stack) as partner:
        opened = await stack.open(partner, found.group(0))
        assert (opened.status_code, opened.headers["location"]) == (303, f"/dossiers/{S04_REF}")
        assert (await partner.get(f"/dossiers/{S04_REF}")).status_code == 200

    # Two clicks, one request, one alert, one delivery (sent): nothing else is on its way.
    conn = await asyncpg.connect(stack.database_url)
    try:
        requests = await conn.fetchval(
            "SELECT count(*) FROM workspace.link_request WHERE assignment_id = $1", row["assignment_id"]
        )
        deliveries = await conn.fetch(
            "SELECT d.state FROM notifier.delivery d JOIN notifier.alert a USING (alert_id)"
            " WHERE a.assignment_id = $1 AND a.link_request_id IS NOT NULL",
            row["assignment_id"],
        )
    finally:
        await conn.close()
    assert requests == 1
    assert [d["state"] for d in deliveries] == ["sent"]
    for log_name in ("workspace", "notifier"):
        text = stack.services.log_path(log_name).read_text("utf-8")
        for secret in (*PERSONAL_DATA, found.group(0).rsplit("/", 1)[1], FSL):
            assert secret not in text, f"{secret!r} leaked into the {log_name} log"
