"""An expired link offers a new one, on PostgreSQL with what the real orientation publishes: only a genuine
expired token asks, the structure must still hold the assignment, one request per assignment per interval
(even two clicks at once), the event goes through the outbox, every request is audited."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

from schemas import topics
from schemas.workspace import LinkRequestedEvent

if TYPE_CHECKING:
    from tests.integration.workspace.conftest import World

pytestmark = pytest.mark.integration

REF = "90-2026-000001"
SENT = "Un nouveau lien a été envoyé au contact de votre structure"


async def _s01_ccas(world: World) -> tuple[uuid.UUID, uuid.UUID]:
    procedure_id = uuid.uuid4()
    await world.notify("s01-cj-commandement-payer", procedure_id=procedure_id, short_ref=REF)
    return procedure_id, (await world.assignment(procedure_id, "CCAS-BELFORT"))["assignment_id"]


def _expired(world: World, assignment_id: uuid.UUID, structure: str = "CCAS-BELFORT") -> str:
    return world.link(assignment_id, structure, expires_on=world.clock.now.date() - timedelta(days=1))


async def _ask(browser: httpx.AsyncClient, path: str) -> httpx.Response:
    """Open the expired link, then press « Recevoir un nouveau lien » with the page's form."""
    page = await browser.get(path)
    assert page.status_code == 410
    found = re.search(
        r'<form method="post" action="([^"]+)">\s*<input type="hidden" name="nonce" value="([^"]+)">', page.text
    )
    assert found is not None, page.text
    return await browser.post(found.group(1), data={"nonce": found.group(2)})


async def _requests(world: World) -> list[LinkRequestedEvent]:
    async with world.workspace_pool.acquire() as conn:
        rows = await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY id")
    assert {r["topic"] for r in rows} <= {topics.WORKSPACE_LINK_REQUESTED}
    return [LinkRequestedEvent.model_validate_json(r["value"]) for r in rows]


async def _audit(world: World, action: str = "REQUEST_LINK") -> list[str]:
    async with world.workspace_pool.acquire() as conn:
        rows = await conn.fetch("SELECT outcome FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [r["outcome"] for r in rows]


async def test_an_expired_link_asks_for_a_new_one_through_the_outbox(world: World) -> None:
    procedure_id, ccas = await _s01_ccas(world)
    async with world.client() as browser:
        page = await browser.get(_expired(world, ccas))
        assert page.status_code == 410
        assert "Recevoir un nouveau lien" in page.text
        assert "prevex_link_request=" in page.headers["set-cookie"]
        assert "SameSite=strict" in page.headers["set-cookie"]
        asked = await _ask(browser, _expired(world, ccas))
        assert asked.status_code == 202
        assert SENT in asked.text
        # The contact's address is never shown, and asking signs nobody in.
        assert "@" not in asked.text
        assert "@" not in page.text
        assert (await browser.get(f"/dossiers/{REF}")).status_code == 401

    [event] = await _requests(world)
    async with world.workspace_pool.acquire() as conn:
        case_correlation = await conn.fetchval(
            "SELECT correlation_id FROM procedure WHERE procedure_id = $1", procedure_id
        )
    assert event.correlation_id == case_correlation  # the case's journey (prevex-ops trace) includes it
    assert event.producer == "workspace"
    payload = event.payload
    assert (payload.assignment_id, payload.procedure_id, payload.procedure_short_ref, payload.structure_id) == (
        ccas,
        procedure_id,
        REF,
        "CCAS-BELFORT",
    )
    async with world.workspace_pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT request_id, event_id, assignment_id FROM link_request")
        key = await conn.fetchval("SELECT key FROM outbox")
    assert stored is not None
    assert (stored["request_id"], stored["event_id"], stored["assignment_id"]) == (
        payload.request_id,
        event.event_id,
        ccas,
    )
    assert key == str(procedure_id).encode()  # the procedure's partition, like its other events
    assert await _audit(world, "OPEN_LINK") == ["EXPIRED", "EXPIRED"]
    assert await _audit(world) == ["LINK_REQUESTED"]


async def test_repeated_clicks_send_once_per_interval(world: World) -> None:
    _, ccas = await _s01_ccas(world)
    async with world.client() as browser:
        assert (await _ask(browser, _expired(world, ccas))).status_code == 202
        again = await _ask(browser, _expired(world, ccas))
        assert again.status_code == 429
        assert "déjà été envoyé" in again.text
        assert "15 minutes" in again.text
        world.clock.now += timedelta(minutes=15)
        assert (await _ask(browser, _expired(world, ccas))).status_code == 202
    assert len(await _requests(world)) == 2
    assert await _audit(world) == ["LINK_REQUESTED", "RATE_LIMITED", "LINK_REQUESTED"]


async def test_two_clicks_at_once_make_one_request(world: World) -> None:
    _, ccas = await _s01_ccas(world)
    async with world.client() as first, world.client() as second:
        answers = await asyncio.gather(_ask(first, _expired(world, ccas)), _ask(second, _expired(world, ccas)))
    assert sorted(a.status_code for a in answers) == [202, 429]
    assert len(await _requests(world)) == 1


async def test_only_a_genuine_expired_token_with_its_form_asks(world: World) -> None:
    _, ccas = await _s01_ccas(world)
    token = _expired(world, ccas).rsplit("/", 1)[1]
    altered = f"{token[:-1]}{'A' if token[-1] != 'A' else 'B'}"
    foreign = _expired(world, ccas, "CD90").rsplit("/", 1)[1]  # CD90's name on the CCAS's assignment
    async with world.client() as browser:
        for bad in (altered, foreign, "A" * 20, "short"):
            answer = await browser.post(f"/d/{bad}/nouveau-lien", data={"nonce": "x"})
            assert answer.status_code == 403, bad
            assert "Lien non valide" in answer.text
        # Genuine, but no form from the page: no cookie, or a nonce that is not the cookie's.
        assert (await browser.post(f"/d/{token}/nouveau-lien", data={"nonce": "x"})).status_code == 403
        await browser.get(f"/d/{token}")
        forged = await browser.post(f"/d/{token}/nouveau-lien", data={"nonce": "not-the-cookie"})
        assert forged.status_code == 403
        assert "Le formulaire a expiré" in forged.text
        # A link still valid opens the case instead.
        valid = world.link(ccas, "CCAS-BELFORT").rsplit("/", 1)[1]
        opened = await browser.post(f"/d/{valid}/nouveau-lien", data={"nonce": "x"})
        assert (opened.status_code, opened.headers["location"]) == (303, f"/d/{valid}")
    assert await _requests(world) == []
    assert await _audit(world) == ["CSRF_REJECTED", "CSRF_REJECTED"]
    assert await _audit(world, "OPEN_LINK") == ["INVALID"] * 4 + ["EXPIRED"]
    async with world.workspace_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM link_request") == 0


async def test_an_assignment_the_structure_no_longer_holds_gets_no_new_link(world: World) -> None:
    _, ccas = await _s01_ccas(world)
    async with world.client() as late:
        # The expired page is opened while the CCAS still holds the file...
        page = await late.get(_expired(world, ccas))
        form = re.search(r'action="([^"]+)">\s*<input type="hidden" name="nonce" value="([^"]+)">', page.text)
        assert form is not None
        # ...a colleague refuses it meanwhile (orientation applies it, the read model folds it)...
        async with world.client() as colleague:
            await colleague.get(world.link(ccas, "CCAS-BELFORT"))
            csrf = re.search(r'name="csrf" value="([^"]+)"', (await colleague.get(f"/dossiers/{REF}")).text)
            assert csrf is not None
            refused = await colleague.post(
                f"/dossiers/{REF}/refuser", data={"csrf": csrf.group(1), "reason": "HORS_COMPETENCE"}
            )
            assert refused.status_code == 303
        await world.relay_workspace()
        # ...then the button is pressed: nothing is sent, and the page says why.
        answer = await late.post(form.group(1), data={"nonce": form.group(2)})
        assert answer.status_code == 409
        assert "plus orienté vers votre structure" in answer.text
        assert "aucun nouveau lien" in answer.text
        # Opened again, the expired page no longer offers the button.
        again = await late.get(_expired(world, ccas))
        assert again.status_code == 410
        assert "Recevoir un nouveau lien" not in again.text
        assert "plus orienté vers votre structure" in again.text
        assert "set-cookie" not in again.headers
    assert await _requests(world) == []
    assert await _audit(world) == ["NOT_HELD"]
