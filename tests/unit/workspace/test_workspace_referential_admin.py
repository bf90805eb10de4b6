"""Orientation's admin API as the desk calls it: each answer becomes the error the pages show, and a request
carries the token, the revision read and the member it is made for."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from services.workspace.referential_admin import (
    ItemKind,
    OrientationUnavailableError,
    ReferentialAdmin,
    RejectedChangeError,
    StaleItemError,
    UnknownItemError,
)


def _admin(answer: Callable[[httpx.Request], httpx.Response]) -> ReferentialAdmin:
    transport = httpx.MockTransport(answer)
    return ReferentialAdmin(lambda: httpx.AsyncClient(transport=transport, base_url="http://orientation"), "pvx_t")


async def test_a_dry_run_sends_the_token_the_revision_and_the_member() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"referentiel_version": 4, "version_created": False, "changes": ["no change"], "revision": 3}
        return httpx.Response(200, json=body | {"item": {}})

    done = await _admin(answer).put(
        ItemKind.OFFER, "PJ90-INFO", {"id": "PJ90-INFO"}, revision="3", dry_run=True, on_behalf_of="secretariat"
    )

    assert (done.changes, done.version, done.created, done.revision) == (["no change"], 4, False, "3")
    [request] = seen
    assert (request.method, request.url.path, request.url.params.get("dry_run")) == ("PUT", "/offers/PJ90-INFO", "true")
    assert request.headers["Authorization"] == "Bearer pvx_t"
    assert (request.headers["If-Match"], request.headers["X-On-Behalf-Of"]) == ('"3"', "secretariat")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(404, json={"detail": "no offer"}), UnknownItemError),
        (httpx.Response(412, json={"detail": "changed"}), StaleItemError),
        (httpx.Response(401, json={"detail": "token"}), OrientationUnavailableError),
        (httpx.Response(403, json={"detail": "role"}), OrientationUnavailableError),
        (httpx.Response(503, text="down"), OrientationUnavailableError),
    ],
)
async def test_each_refusal_is_the_error_its_page_shows(response: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error):
        await _admin(lambda _: response).read(ItemKind.STRUCTURE, "CD90")


async def test_orientation_s_problems_come_with_their_paths() -> None:
    problems = {"detail": "invalid", "errors": [{"path": "body.zone", "message": "Field required"}]}
    admin = _admin(lambda _: httpx.Response(422, json=problems))
    with pytest.raises(RejectedChangeError) as raised:
        await admin.put(ItemKind.OFFER, "X", {}, revision="1", dry_run=True, on_behalf_of="s")
    assert raised.value.problems == [("body.zone", "Field required")]


async def test_an_unreachable_orientation_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(OrientationUnavailableError, match="ConnectError"):
        await _admin(refuse).items(ItemKind.STRUCTURE)
