"""The workspace as a running process: a partner opens its alert's link from the ``.eml`` the SMTP sink
received, sees the case, accepts it; orientation (another process) applies the acceptance and the page then
shows it. Another structure's session, an altered and a guessed token are refused."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

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
