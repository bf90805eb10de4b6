"""The double-submit nonce guarding the forms shown before a session (link request, desk sign-in)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from services.workspace.double_submit import DoubleSubmit

GUARD = DoubleSubmit("prevex_test_form", path="/f", secure=False)


def _app(guard: DoubleSubmit) -> FastAPI:
    app = FastAPI()

    @app.get("/f")
    async def show() -> Response:
        return guard.issue(PlainTextResponse)

    @app.post("/f")
    async def post(request: Request) -> Response:
        if not guard.matches(request, await request.form()):
            return PlainTextResponse("refused", 403)
        response = PlainTextResponse("done")
        guard.clear(response)
        return response

    return app


def _client(guard: DoubleSubmit) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(guard)), base_url="http://workspace")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(GUARD) as client:
        yield client


async def _shown(client: httpx.AsyncClient) -> str:
    """Show the form; the nonce its hidden field would carry."""
    text: str = (await client.get("/f")).text
    return text


async def test_the_page_and_its_cookie_carry_the_same_fresh_nonce(client: httpx.AsyncClient) -> None:
    first = await client.get("/f")
    assert first.cookies["prevex_test_form"] == first.text
    assert len(first.text) >= 43  # 32 random bytes, url-safe base64
    assert await _shown(client) != first.text


@pytest.mark.parametrize(("secure", "flags"), [(False, set()), (True, {"secure"})])
async def test_the_cookie_is_http_only_strict_scoped_and_short_lived(secure: bool, flags: set[str]) -> None:
    async with _client(DoubleSubmit("prevex_test_form", path="/f", secure=secure)) as client:
        header = (await client.get("/f")).headers["set-cookie"]
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert attributes == {"httponly", "max-age=900", "path=/f", "samesite=strict"} | flags


async def test_the_right_nonce_is_accepted_once(client: httpx.AsyncClient) -> None:
    nonce = await _shown(client)
    assert (await client.post("/f", data={"nonce": nonce})).status_code == 200
    # The answer deleted the cookie: the same form posted again is refused.
    assert "prevex_test_form" not in client.cookies
    assert (await client.post("/f", data={"nonce": nonce})).status_code == 403


async def test_a_missing_cookie_is_refused(client: httpx.AsyncClient) -> None:
    nonce = await _shown(client)
    client.cookies.clear()
    assert (await client.post("/f", data={"nonce": nonce})).status_code == 403


async def test_a_missing_or_empty_field_is_refused(client: httpx.AsyncClient) -> None:
    await _shown(client)
    assert (await client.post("/f", data={})).status_code == 403
    assert (await client.post("/f", data={"nonce": ""})).status_code == 403


async def test_a_wrong_nonce_is_refused(client: httpx.AsyncClient) -> None:
    await _shown(client)
    assert (await client.post("/f", data={"nonce": "guess"})).status_code == 403


def _last_changed(nonce: str) -> str:
    return nonce[:-1] + ("B" if nonce.endswith("A") else "A")


def _non_ascii(nonce: str) -> str:
    # hmac.compare_digest raises on non-ASCII str: a forged field must answer 403, not 500.
    return nonce + "é"


@pytest.mark.parametrize("tamper", [_last_changed, _non_ascii])
async def test_a_tampered_nonce_is_refused(client: httpx.AsyncClient, tamper: Callable[[str], str]) -> None:
    nonce = await _shown(client)
    assert (await client.post("/f", data={"nonce": tamper(nonce)})).status_code == 403


async def test_a_cookie_from_another_page_does_not_match_this_one(client: httpx.AsyncClient) -> None:
    old = await _shown(client)
    await _shown(client)  # a second tab replaced the cookie
    assert (await client.post("/f", data={"nonce": old})).status_code == 403
