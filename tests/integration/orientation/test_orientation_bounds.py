"""The admin API on PostgreSQL answers 4xx with its documented body where the database has bounds.

Before: a version at 2³¹ overflowed an ``integer`` parameter, a NUL character in a structure's text and a
priority or a weekly capacity beyond int4 were refused by PostgreSQL, and each answered 500. The errors of
the YAML export were JSON while documented ``text/plain``; quiet hours were documented ``format: time``
(which demands an offset) and returned without one.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from services.orientation import cli
from services.orientation import referential_repository as ref_repo
from services.orientation.auth import Role, TokenRegistry, hash_token
from services.orientation.http import OPENAPI_PATH, AdminServices, create_app
from services.orientation.referential_store import ReferentialHolder

pytestmark = pytest.mark.integration

TOKEN = "pvx_bounds-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INT4_OVER = 2**31
OFFER: dict[str, Any] = {
    "id": "CCAS-BELFORT-BOUNDS",
    "structure_id": "CCAS-BELFORT",
    "nom": "Aide aux impayés",
    "description": "Une aide du CCAS.",
    "type": "aide-financiere",
    "zone": {"include": [{"kind": "COMMUNE", "code": "90010"}]},
}
STRUCTURE: dict[str, Any] = {
    "id": "ASSO-BOUNDS",
    "nom": "Association de test",
    "typologie": "ASSOCIATION",
    "contacts": [{"id": "ASSO-BOUNDS-1", "label": "Accueil", "channels_enabled": {"email": False}}],
}


@pytest.fixture
async def client(pool: asyncpg.Pool, seeded: ReferentialHolder) -> AsyncIterator[httpx.AsyncClient]:
    tokens = TokenRegistry([("bounds", hash_token(TOKEN), frozenset({Role.ADMIN}))])
    app = create_app(AdminServices(pool=lambda: pool, holder=seeded, tokens=tokens, max_structures=3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as http:
        yield http


def _problems(response: httpx.Response) -> dict[str, str]:
    """The documented 422 body (``ValidationProblems``), as path → message."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "errors"}
    return {problem["path"]: problem["message"] for problem in body["errors"]}


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (f"/referential/export?version={INT4_OVER}", "query.version"),
        (f"/referential/diff?from_version={INT4_OVER}", "query.from_version"),
        (f"/referential/diff?from_version=1&to_version={INT4_OVER}", "query.to_version"),
    ],
)
async def test_a_version_beyond_int4_is_a_422_not_a_database_error(
    client: httpx.AsyncClient, url: str, path: str
) -> None:
    assert path in _problems(await client.get(url, headers=AUTH))


async def test_a_version_beyond_int4_is_simply_not_found_in_the_store(pool: asyncpg.Pool) -> None:
    """What the CLI's ``--version`` reaches: the same "no such version" as any unknown number."""
    async with pool.acquire() as conn:
        with pytest.raises(LookupError, match="no référentiel version"):
            await ref_repo.load_version(conn, INT4_OVER)


@pytest.mark.parametrize(
    "argv",
    [
        ["referential", "export", "--version", str(INT4_OVER)],
        ["referential", "diff", f"db:{INT4_OVER}", "db:1"],
        ["simulate", "{notice}", "--version", str(INT4_OVER)],
    ],
)
async def test_the_cli_says_no_such_version_beyond_int4(
    *,
    database_url: str,
    schema_pool: tuple[str, asyncpg.Pool],
    seeded: ReferentialHolder,
    make_event: Callable[..., Any],
    tmp_path: Path,
    argv: list[str],
) -> None:
    notice = tmp_path / "notice.json"
    notice.write_text(make_event("s06-cj-commandement-quitter").payload.model_dump_json(), "utf-8")
    database = ["--database-url", database_url, "--schema", schema_pool[0]]
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run([arg.format(notice=notice) for arg in argv] + database, out=out, err=err)
    assert (code, err.getvalue()) == (cli.FAILED, f"error: no référentiel version {INT4_OVER}\n")


@pytest.mark.parametrize(
    ("change", "path"),
    [({"priority": INT4_OVER}, "body.priority"), ({"priority": -(2**31) - 1}, "body.priority")],
)
async def test_a_priority_beyond_int4_is_refused_with_its_path(
    client: httpx.AsyncClient, change: dict[str, Any], path: str
) -> None:
    assert path in _problems(await client.post("/offers", json=OFFER | change, headers=AUTH))


async def test_a_weekly_capacity_beyond_int4_is_refused_with_its_path(client: httpx.AsyncClient) -> None:
    body = OFFER | {"max_new_assignments_per_week": INT4_OVER, "eligibility": {"children_min": INT4_OVER}}
    problems = _problems(await client.post("/offers", json=body, headers=AUTH))
    assert {"body.max_new_assignments_per_week", "body.eligibility.children_min"} <= problems.keys()
    accepted = await client.post("/offers", json=OFFER | {"priority": 2**31 - 1}, headers=AUTH)
    assert accepted.status_code == 201, accepted.text


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"nom": "Association\x00 de test"}, "nom"),
        ({"contacts": [{**STRUCTURE["contacts"][0], "label": "Acc\x00ueil"}]}, "contacts[0].label"),
    ],
)
async def test_a_nul_character_in_a_structure_is_refused_with_its_path(
    client: httpx.AsyncClient, pool: asyncpg.Pool, change: dict[str, Any], where: str
) -> None:
    response = await client.post("/structures", json=STRUCTURE | change, headers=AUTH)
    [message] = _problems(response).values()
    assert where in message
    assert "NUL" in message
    assert await pool.fetchval("SELECT count(*) FROM structure WHERE structure_id = 'ASSO-BOUNDS'") == 0
    assert (await client.post("/structures", json=STRUCTURE, headers=AUTH)).status_code == 201


async def test_a_yaml_import_with_out_of_bounds_values_is_refused_with_paths(client: httpx.AsyncClient) -> None:
    exported = yaml.safe_load((await client.get("/referential/export", headers=AUTH)).text)
    exported["offers"][0]["priority"] = INT4_OVER
    exported["structures"][0]["nom"] = "CD\x00 90"
    text = yaml.safe_dump(exported, allow_unicode=True)  # writes the NUL as the escape "\0"
    response = await client.put("/referential", content=text.encode(), headers=AUTH)
    problems = _problems(response)
    assert any(path.endswith(".priority") for path in problems)
    assert any("NUL" in message for message in problems.values())


async def test_the_export_answers_yaml_and_its_errors_json_as_documented(client: httpx.AsyncClient) -> None:
    document = json.loads(OPENAPI_PATH.read_text("utf-8"))
    responses = document["paths"]["/referential/export"]["get"]["responses"]
    ok = await client.get("/referential/export", headers=AUTH)
    missing = await client.get("/referential/export?version=999", headers=AUTH)
    anonymous = await client.get("/referential/export")
    assert ok.headers["content-type"].split(";")[0] in responses["200"]["content"]
    for response in (missing, anonymous):
        assert response.headers["content-type"] == "application/json"
        assert list(responses[str(response.status_code)]["content"]) == ["application/json"]
        assert set(response.json()) == {"detail"}


async def test_quiet_hours_are_returned_as_documented(client: httpx.AsyncClient) -> None:
    document = json.loads(OPENAPI_PATH.read_text("utf-8"))
    start = document["components"]["schemas"]["QuietHours"]["properties"]["start"]
    assert "format" not in start
    response = await client.get("/structures/MEDIATION-SUD", headers=AUTH)
    [contact] = [c for c in response.json()["item"]["contacts"] if c["quiet_hours"]]
    assert contact["quiet_hours"] == {"start": "20:00:00", "end": "08:00:00"}
    assert re.fullmatch(start["pattern"], contact["quiet_hours"]["start"])
    offset = STRUCTURE["contacts"][0] | {"quiet_hours": {"start": "20:00:00+01:00", "end": "08:00"}}
    problems = _problems(await client.post("/structures", json=STRUCTURE | {"contacts": [offset]}, headers=AUTH))
    assert "body.contacts[0].quiet_hours.start" in problems
