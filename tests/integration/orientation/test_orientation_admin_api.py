"""The admin API on PostgreSQL: authentication, référentiel changes as versions, errors with paths, simulate."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from schemas import topics
from schemas.procedure import ProcedureNotificationEvent
from schemas.referential import ReferentialChangedEvent
from services.orientation.auth import Role, TokenRegistry, hash_token
from services.orientation.domain import Referential, dump_referential, load_referential
from services.orientation.http import AdminServices, create_app
from services.orientation.referential_store import ReferentialHolder

pytestmark = pytest.mark.integration

ADMIN, VIEWER, OUTSIDER = "pvx_admin-token", "pvx_viewer-token", "pvx_no-role-token"
MakeEvent = Callable[..., ProcedureNotificationEvent]
Orient = Callable[..., Any]

NEW_OFFER: dict[str, Any] = {
    "id": "CCAS-BELFORT-ENERGIE",
    "structure_id": "CCAS-BELFORT",
    "nom": "Aide aux impayés d'énergie",
    "description": "Aide facultative du CCAS pour les factures d'énergie.",
    "type": "aide-financiere",
    "priority": 10,
    "eligibility": {"stages": ["COMMANDEMENT_PAYER", "ASSIGNATION"], "parc": "ALL"},
    "zone": {"include": [{"kind": "COMMUNE", "code": "90010"}]},
}


@pytest.fixture
async def client(pool: asyncpg.Pool, seeded: ReferentialHolder) -> AsyncIterator[httpx.AsyncClient]:
    tokens = TokenRegistry(
        [
            ("secretariat", hash_token(ADMIN), frozenset({Role.ADMIN})),
            ("lecture", hash_token(VIEWER), frozenset({Role.VIEWER})),
            ("autre", hash_token(OUTSIDER), frozenset()),
        ]
    )
    app = create_app(AdminServices(pool=lambda: pool, holder=seeded, tokens=tokens, max_structures=3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as http:
        yield http


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _records(pool: asyncpg.Pool) -> list[ReferentialChangedEvent]:
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topics.REFERENTIAL_CHANGED)
    return [ReferentialChangedEvent.model_validate_json(row["value"]) for row in rows]


async def test_every_route_but_health_needs_a_token_with_a_role(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok", "referentiel_version": 1}
    missing = await client.get("/structures")
    assert (missing.status_code, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert (await client.get("/structures", headers=_auth("pvx_unknown"))).status_code == 401
    assert (await client.get("/structures", headers=_auth(OUTSIDER))).status_code == 403
    assert (await client.get("/structures", headers=_auth(VIEWER))).status_code == 200
    forbidden = await client.post("/structures/CD90/suspend", headers=_auth(VIEWER))
    assert (forbidden.status_code, forbidden.json()) == (403, {"detail": "this token lacks the role ccapex-admin"})


async def test_creating_an_offer_makes_a_version_published_and_used_at_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool, seeded: ReferentialHolder
) -> None:
    await pool.execute("DELETE FROM outbox")
    created = await client.post("/offers", json=NEW_OFFER, headers=_auth(ADMIN))

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["referentiel_version"], body["version_created"], body["revision"]) == (2, True, 2)
    assert body["changes"] == ["+ offer CCAS-BELFORT-ENERGIE"]
    assert created.headers["ETag"] == '"2"'
    assert seeded.active.version == 2
    [record] = await _records(pool)
    assert (record.payload.structure_id, record.payload.referentiel_version) == ("CCAS-BELFORT", 2)
    assert "CCAS-BELFORT-ENERGIE" in [o.id for o in record.payload.offers]
    version = await pool.fetchrow("SELECT author, source FROM referential_version WHERE version = 2")
    assert version is not None
    assert dict(version) == {"author": "secretariat", "source": "api POST /offers CCAS-BELFORT-ENERGIE"}

    again = await client.post("/offers", json=NEW_OFFER, headers=_auth(ADMIN))
    assert again.status_code == 409


async def test_invalid_bodies_are_refused_with_every_path(client: httpx.AsyncClient) -> None:
    bad = {**NEW_OFFER, "priority": "50", "zone": {"include": [{"kind": "COMMUNE", "code": "9001"}]}, "color": "red"}
    response = await client.post("/offers", json=bad, headers=_auth(ADMIN))

    assert response.status_code == 422
    problems = {problem["path"]: problem["message"] for problem in response.json()["errors"]}
    assert {"body.priority", "body.zone.include[0]", "body.color"} <= problems.keys()
    assert problems["body.zone.include[0]"] == "code '9001' is not a valid COMMUNE code"
    assert problems["body.priority"] == "Input should be a valid integer"


async def test_a_change_that_breaks_the_referential_names_the_offending_item(client: httpx.AsyncClient) -> None:
    orphan = await client.post("/offers", json={**NEW_OFFER, "structure_id": "NOWHERE"}, headers=_auth(ADMIN))
    default = await client.post("/structures/CCAPEX90/suspend", headers=_auth(ADMIN))

    assert orphan.status_code == default.status_code == 422
    assert orphan.json()["errors"] == [
        {
            "path": "referential.offers[10](id=CCAS-BELFORT-ENERGIE).structure_id",
            "message": "unknown structure 'NOWHERE'",
        }
    ]
    assert default.json()["errors"] == [
        {"path": "referential.default_referent", "message": "structure 'CCAPEX90' is suspended"}
    ]


async def test_suspending_is_a_version_and_suspending_again_is_not(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    first = await client.post("/structures/CDAD90/suspend", headers=_auth(ADMIN))
    second = await client.post("/structures/CDAD90/suspend", headers=_auth(ADMIN))
    listed = await client.get("/structures", params={"status": "suspended"}, headers=_auth(VIEWER))

    assert (first.json()["version_created"], second.json()["version_created"]) == (True, False)
    assert first.json()["item"]["status"] == second.json()["item"]["status"] == "suspended"
    assert [entry["item"]["id"] for entry in listed.json()["items"]] == ["CDAD90"]
    assert [r.payload.status for r in await _records(pool) if r.payload.referentiel_version == 2] == ["suspended"]
    assert (await client.post("/structures/NOWHERE/suspend", headers=_auth(ADMIN))).status_code == 404


async def test_if_match_refuses_a_change_based_on_a_stale_read(client: httpx.AsyncClient) -> None:
    read = await client.get("/structures/FSL90", headers=_auth(VIEWER))
    structure = read.json()["item"]
    etag = read.headers["ETag"]
    await client.put(
        "/structures/FSL90", json={**structure, "nom": "FSL 90 (A)"}, headers=_auth(ADMIN) | {"If-Match": etag}
    )

    stale = await client.put(
        "/structures/FSL90", json={**structure, "nom": "FSL 90 (B)"}, headers=_auth(ADMIN) | {"If-Match": etag}
    )
    wrong_id = await client.put("/structures/FSL90", json={**structure, "id": "FSL91"}, headers=_auth(ADMIN))

    assert (etag, stale.status_code) == ('"1"', 412)
    assert wrong_id.status_code == 422
    assert wrong_id.json()["errors"] == [{"path": "body.id", "message": "must be 'FSL90', the id in the path"}]
    current = await client.get("/structures/FSL90", headers=_auth(VIEWER))
    assert (current.json()["item"]["nom"], current.headers["ETag"]) == ("FSL 90 (A)", '"2"')


async def test_a_dry_run_of_one_item_answers_its_diff_and_saves_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await pool.execute("DELETE FROM outbox")
    read = await client.get("/offers/PJ90-INFO", headers=_auth(VIEWER))
    offer, etag = read.json()["item"], read.headers["ETag"]
    edited = {**offer, "priority": 65}

    dry = await client.put(
        "/offers/PJ90-INFO", params={"dry_run": "true"}, json=edited, headers=_auth(ADMIN) | {"If-Match": etag}
    )
    unchanged = await client.put("/offers/PJ90-INFO", params={"dry_run": "true"}, json=offer, headers=_auth(ADMIN))
    broken = await client.put(
        "/offers/PJ90-INFO", params={"dry_run": "true"}, json={**offer, "structure_id": "NOWHERE"}, headers=_auth(ADMIN)
    )
    by_viewer = await client.put("/offers/PJ90-INFO", params={"dry_run": "true"}, json=edited, headers=_auth(VIEWER))

    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert (body["referentiel_version"], body["version_created"], dry.headers["ETag"]) == (1, False, etag)
    assert body["changes"] == ["~ offer PJ90-INFO", "    priority: 60 → 65"]
    assert unchanged.json()["changes"] == ["no change"]
    assert broken.status_code == 422
    assert by_viewer.status_code == 403
    assert await _records(pool) == []  # nothing published
    assert (await client.get("/offers/PJ90-INFO", headers=_auth(VIEWER))).json()["item"]["priority"] == 60

    # An addition too: its diff, 200 (nothing created), nothing stored; an id already used is refused as by a save.
    new = await client.post("/offers", params={"dry_run": "true"}, json=NEW_OFFER, headers=_auth(ADMIN))
    taken = await client.post("/offers", params={"dry_run": "true"}, json=offer, headers=_auth(ADMIN))
    assert (new.status_code, new.json()["version_created"]) == (200, False)
    assert new.json()["changes"][0] == "+ offer CCAS-BELFORT-ENERGIE"
    assert taken.status_code == 409
    assert (await client.get("/offers/CCAS-BELFORT-ENERGIE", headers=_auth(VIEWER))).status_code == 404

    # A service acting for someone names them; a value that is not a token name is refused.
    forged = await client.put(
        "/offers/PJ90-INFO", json=edited, headers=_auth(ADMIN) | {"X-On-Behalf-Of": "not a token name!"}
    )
    assert forged.status_code == 422
    assert await _records(pool) == []

    # The dry run checks If-Match as the save does: a stale read is refused before anything is shown.
    await client.put("/offers/PJ90-INFO", json={**offer, "priority": 61}, headers=_auth(ADMIN))
    stale = await client.put(
        "/offers/PJ90-INFO", params={"dry_run": "true"}, json=edited, headers=_auth(ADMIN) | {"If-Match": etag}
    )
    assert stale.status_code == 412


async def test_export_import_and_diff_of_versions(client: httpx.AsyncClient, seed: Referential) -> None:
    exported = await client.get("/referential/export", headers=_auth(VIEWER))
    assert load_referential(exported.text) == seed

    edited = dump_referential(seed).replace("priority: 60", "priority: 65")
    dry = await client.put("/referential", params={"dry_run": "true"}, content=edited, headers=_auth(ADMIN))
    done = await client.put("/referential", content=edited, headers=_auth(ADMIN))
    broken = await client.put("/referential", content="structures: [", headers=_auth(ADMIN))
    diff = await client.get("/referential/diff", params={"from_version": 1}, headers=_auth(VIEWER))
    versions = await client.get("/referential/versions", headers=_auth(VIEWER))

    assert (dry.json()["referentiel_version"], dry.json()["version_created"], dry.json()["dry_run"]) == (1, False, True)
    assert dry.json()["changes"] == done.json()["changes"] == ["~ offer PJ90-INFO", "    priority: 60 → 65"]
    assert done.json()["referentiel_version"] == 2
    assert broken.status_code == 422
    assert diff.json() == {
        "from_version": 1,
        "to_version": 2,
        "changes": ["~ offer PJ90-INFO", "    priority: 60 → 65"],
    }
    assert [v["version"] for v in versions.json()] == [2, 1]
    assert (await client.get("/referential/export", params={"version": 9}, headers=_auth(VIEWER))).status_code == 404


async def test_simulate_explains_every_offer_and_writes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent, seed: Referential
) -> None:
    event = make_event("s01-cj-commandement-payer")
    body = event.payload.model_dump_json()

    fresh = await client.post("/simulate", content=body, headers=_auth(VIEWER))
    assert fresh.status_code == 200, fresh.text
    result = fresh.json()
    assert [a["structure_id"] for a in result["assignments"]] == ["CCAS-BELFORT", "CDAD90", "CD90"]
    assert {a["kind"] for a in result["assignments"]} == {"NEW"}
    outcomes = {o["offer_id"]: o["outcome"] for o in result["offers"]}
    assert len(outcomes) == len(seed.offers)
    assert (outcomes["FSL90-MAINTIEN"], outcomes["BDF90-SURENDET"]) == ("ALSO_ELIGIBLE", "FAILED")
    [bdf] = [o for o in result["offers"] if o["offer_id"] == "BDF90-SURENDET"]
    assert bdf["reasons"] == ["debt below minimum 8000"]
    assert "FAILED        BDF90-SURENDET (BDF90): debt below minimum 8000" in result["text"]

    await orient(event)
    tables = ("assignment", "decision", "outbox", "inbox", "assignment_status_history")
    counts = [await pool.fetchval(f"SELECT count(*) FROM {table}") for table in tables]
    known = (await client.post("/simulate", content=body, headers=_auth(VIEWER))).json()
    bare = await client.post("/simulate", content=event.payload.notification.model_dump_json(), headers=_auth(VIEWER))

    assert {a["kind"] for a in known["assignments"]} == {"STAGE_UPDATE"}
    assert known["state"]["open_structures"] == ["CCAS-BELFORT", "CD90", "CDAD90"]
    assert {a["kind"] for a in bare.json()["assignments"]} == {"NEW"}
    assert [await pool.fetchval(f"SELECT count(*) FROM {table}") for table in tables] == counts
    invalid = await client.post("/simulate", content=json.dumps({"notification": {}}), headers=_auth(VIEWER))
    assert invalid.status_code == 422
    assert "body.notification.act" in {p["path"] for p in invalid.json()["errors"]}


async def test_a_procedures_assignments_with_their_history(
    client: httpx.AsyncClient, orient: Orient, make_event: MakeEvent
) -> None:
    event = make_event("s04-cj-assignation")
    await orient(event)

    response = await client.get(f"/procedures/{event.payload.procedure_id}/assignments", headers=_auth(VIEWER))

    body = response.json()
    assert [(a["structure_id"], a["offer_ids"], a["mandatory"]) for a in body["assignments"]] == [
        ("CD90", ["CD90-DSF", "CD90-ACCOMP"], True),
        ("CDAD90", ["PJ90-INFO"], False),
        ("FSL90", ["FSL90-MAINTIEN"], False),
    ]  # created in one transaction: same time, then by structure id
    assert all([h["to_status"] for h in a["history"]] == ["OUVERTE"] for a in body["assignments"])
