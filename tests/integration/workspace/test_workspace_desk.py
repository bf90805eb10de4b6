"""The CCAPEX secretariat's desk on PostgreSQL with the real orientation: sign-in with a token and a role,
the lists, adding and removing a structure through orientation's overrides, the audit log."""

from __future__ import annotations

import html
import re
import uuid
from datetime import datetime, time
from typing import TYPE_CHECKING

import httpx
import pytest

from schemas.assignment import AssignmentOverride, AssignmentStatus, StatusActor
from schemas.orientation import DecisionTrigger, OrientationDecidedEvent
from services.orientation.domain.working_days import add_working_days
from services.workspace.desk import PARIS
from tests.integration.workspace.conftest import DESK_ADMIN_TOKEN, DESK_VIEWER_TOKEN

if TYPE_CHECKING:
    from tests.integration.workspace.conftest import World

pytestmark = pytest.mark.integration

S01, S05 = "90-2026-000001", "90-2026-000005"


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found is not None, name
    return found.group(1)


async def _sign_in(browser: httpx.AsyncClient, token: str = DESK_ADMIN_TOKEN) -> httpx.Response:
    form = await browser.get("/secretariat/connexion")
    return await browser.post("/secretariat/connexion", data={"nonce": _field(form.text, "nonce"), "jeton": token})


async def _desk_csrf(browser: httpx.AsyncClient, ref: str) -> str:
    return _field((await browser.get(f"/secretariat/dossiers/{ref}")).text, "csrf")


async def _s01_and_s05(world: World) -> tuple[uuid.UUID, uuid.UUID]:
    s01, s05 = uuid.uuid4(), uuid.uuid4()
    await world.notify("s01-cj-commandement-payer", procedure_id=s01, short_ref=S01)
    await world.notify("s05-bailleur-impaye-constate", procedure_id=s05, short_ref=S05)
    return s01, s05


def _section(html: str, section_id: str) -> str:
    found = re.search(rf'<section aria-labelledby="{section_id}-titre">(.*?)</section>', html, re.DOTALL)
    assert found is not None, section_id
    return found.group(1)


async def _outbox(world: World) -> list[str]:
    async with world.workspace_pool.acquire() as conn:
        return [r["value"].decode() for r in await conn.fetch("SELECT value FROM outbox ORDER BY id")]


async def test_the_secretariat_signs_in_with_its_token_and_a_wrong_one_or_a_forged_form_is_refused(
    world: World,
) -> None:
    async with world.client() as browser:
        wrong = await _sign_in(browser, "pvx_not-a-known-token")
        assert wrong.status_code == 401
        assert "Ce jeton n'est pas reconnu." in html.unescape(wrong.text)
        assert (await browser.get("/secretariat")).headers["location"] == "/secretariat/connexion"
        forged = await browser.post("/secretariat/connexion", data={"nonce": "guess", "jeton": DESK_ADMIN_TOKEN})
        assert forged.status_code == 403
        signed = await _sign_in(browser)
        assert signed.status_code == 303
        assert signed.headers["location"] == "/secretariat"
        assert "HttpOnly" in signed.headers["set-cookie"]
        desk = await browser.get("/secretariat")
        # The partner's pages are not the desk's.
        assert (await browser.get("/dossiers")).headers["location"] == "/secretariat"
    assert desk.status_code == 200
    assert "Connecté : secretariat-ccapex (administration)" in desk.text
    async with world.workspace_pool.acquire() as conn:
        outcomes = await conn.fetch("SELECT action, outcome FROM audit_log WHERE action = 'DESK_SIGN_IN' ORDER BY id")
    assert [r["outcome"] for r in outcomes] == ["INVALID", "CSRF_REJECTED", "SESSION_STARTED"]


async def test_a_partner_session_cannot_open_the_desk(world: World) -> None:
    s01, _ = await _s01_and_s05(world)
    ccas = (await world.assignment(s01, "CCAS-BELFORT"))["assignment_id"]
    async with world.client() as browser:
        assert (await browser.get(world.link(ccas, "CCAS-BELFORT"))).status_code == 303
        for path in ("/secretariat", f"/secretariat/dossiers/{S05}", "/secretariat/journal"):
            denied = await browser.get(path)
            assert denied.status_code == 403, path
            assert "réservées au secrétariat de la CCAPEX" in denied.text
        posted = await browser.post(f"/secretariat/dossiers/{S05}/ajouter", data={"structure": "CCAS-BELFORT"})
    assert posted.status_code == 403
    assert await _outbox(world) == []


async def test_the_lists_show_f1_refusals_urgency_and_assignments_not_accepted_after_n_working_days(
    world: World,
) -> None:
    s01, _ = await _s01_and_s05(world)
    ccas = await world.assignment(s01, "CCAS-BELFORT")
    # 5 working days (the fixture's N) after the decision's day, French public holidays skipped, at 10:00.
    decided_on = ccas["decided_at"].astimezone(PARIS).date()
    pages = []
    for count in (4, 5):
        world.clock.now = datetime.combine(add_working_days(decided_on, count), time(10), PARIS)
        async with world.client() as browser:
            await _sign_in(browser)
            pages.append((await browser.get("/secretariat")).text)
    early, late = pages
    assert S05 in _section(early, "sans-orientation")
    assert S01 not in _section(early, "sans-orientation")
    assert S01 not in _section(early, "non-acceptes")
    # The fifth working day, still OUVERTE: listed with each structure that did not answer.
    overdue = _section(late, "non-acceptes")
    assert S01 in overdue
    assert "<td>CCAS de Belfort</td><td>À traiter</td>" in overdue


async def test_adding_a_structure_to_the_f1_procedure_goes_through_orientation_which_alerts_it(world: World) -> None:
    _, s05 = await _s01_and_s05(world)
    async with world.client() as browser:
        await _sign_in(browser)
        csrf = await _desk_csrf(browser, S05)
        added = await browser.post(f"/secretariat/dossiers/{S05}/ajouter", data={"csrf": csrf, "structure": "FSL90"})
        assert added.status_code == 303
        events = await world.relay_workspace()
        assert [(e.payload.override, e.payload.by, e.payload.status) for e in events] == [
            (AssignmentOverride.ADD, StatusActor.CCAPEX, AssignmentStatus.OUVERTE)
        ]
        # Orientation opened the assignment and published the decision the notifier alerts FSL90 from.
        published = await world.take_orientation_outbox()
        decisions = [OrientationDecidedEvent.model_validate_json(r.value or b"") for r in published]
        assert [d.payload.trigger for d in decisions] == [DecisionTrigger.CCAPEX_OVERRIDE]
        assert "FSL90" in {a.structure_id for a in decisions[0].payload.assignments}
        await world.fold(*published)
        page = (await browser.get(f"/secretariat/dossiers/{S05}")).text
        assert (await world.assignment(s05, "FSL90"))["status"] == "OUVERTE"
        assert re.search(r"<th scope=\"row\">[^<]*FSL[^<]*</th>\s*<td>À traiter", page)

        removed = await browser.post(
            f"/secretariat/dossiers/{S05}/retirer", data={"csrf": _field(page, "csrf"), "structure": "FSL90"}
        )
        assert removed.status_code == 303
        await world.relay_workspace()
    fsl = await world.assignment(s05, "FSL90")
    assert fsl["status"] == "CLOTUREE"
    assert await world.orientation_status(fsl["assignment_id"]) == "CLOTUREE"


async def test_a_viewer_cannot_override_and_bad_forms_publish_nothing(world: World) -> None:
    await _s01_and_s05(world)
    async with world.client() as viewer:
        await _sign_in(viewer, DESK_VIEWER_TOKEN)
        page = await viewer.get(f"/secretariat/dossiers/{S05}")
        assert page.status_code == 200
        assert "Ajouter une structure" not in page.text
        refused = await viewer.post(
            f"/secretariat/dossiers/{S05}/ajouter", data={"csrf": _field(page.text, "csrf"), "structure": "FSL90"}
        )
        assert refused.status_code == 403
    async with world.client() as admin:
        await _sign_in(admin)
        csrf = await _desk_csrf(admin, S05)
        answers = [
            await admin.post(f"/secretariat/dossiers/{S05}/ajouter", data={"structure": "FSL90"}),
            await admin.post(f"/secretariat/dossiers/{S05}/ajouter", data={"csrf": "x", "structure": "FSL90"}),
            await admin.post(f"/secretariat/dossiers/{S05}/ajouter", data={"csrf": csrf, "structure": "NOPE"}),
            await admin.post(f"/secretariat/dossiers/{S05}/ajouter", data={"csrf": csrf, "structure": "Z" * 500}),
            await admin.post(f"/secretariat/dossiers/{S05}/ajouter", data={"csrf": csrf}),
            await admin.post(f"/secretariat/dossiers/{S05}/retirer", data={"csrf": csrf, "structure": "FSL90"}),
            await admin.post(f"/secretariat/dossiers/{S05}/effacer", data={"csrf": csrf, "structure": "FSL90"}),
            await admin.post("/secretariat/dossiers/90-2026-999999/ajouter", data={"csrf": csrf, "structure": "FSL90"}),
            await admin.get("/secretariat/dossiers/" + "9" * 40),
        ]
    assert [a.status_code for a in answers] == [403, 403, 400, 400, 400, 400, 404, 404, 404]
    assert await _outbox(world) == []
    async with world.workspace_pool.acquire() as conn:
        outcomes = await conn.fetch("SELECT action, outcome FROM audit_log WHERE action LIKE 'DESK_ADD%' ORDER BY id")
    assert [r["outcome"] for r in outcomes] == [
        "NOT_ALLOWED",
        "CSRF_REJECTED",
        "CSRF_REJECTED",
        "STRUCTURE_UNKNOWN",
        "STRUCTURE_UNKNOWN",
        "STRUCTURE_UNKNOWN",
        "UNKNOWN",
    ]


async def test_the_audit_log_is_filtered_by_procedure_and_structure_and_paginated(world: World) -> None:
    s01, _ = await _s01_and_s05(world)
    ccas = (await world.assignment(s01, "CCAS-BELFORT"))["assignment_id"]
    async with world.client() as partner:
        await partner.get(world.link(ccas, "CCAS-BELFORT"))
        for _ in range(60):
            await partner.get(f"/dossiers/{S01}")
    async with world.client() as browser:
        await _sign_in(browser)
        by_case = await browser.get("/secretariat/journal", params={"dossier": S01})
        second = await browser.get("/secretariat/journal", params={"dossier": S01, "page": "2"})
        by_structure = await browser.get("/secretariat/journal", params={"structure": "CD90"})
        odd = await browser.get("/secretariat/journal", params={"page": "abc", "dossier": "'; DROP TABLE x"})
    assert "61 entrée(s), page 1 sur 2." in by_case.text
    assert by_case.text.count("VIEW_CASE") == 50
    assert "Page suivante" in by_case.text
    assert "page 2 sur 2" in second.text
    assert second.text.count("<tr><td>") == 11
    assert "CCAS-BELFORT" in second.text
    assert "0 entrée(s)" in by_structure.text
    assert odd.status_code == 200
    assert "0 entrée(s), page 1 sur 1." in odd.text


async def test_the_secretariat_opens_any_procedure_with_its_case_file_and_the_view_is_audited(world: World) -> None:
    s01, _ = await _s01_and_s05(world)
    async with world.client() as viewer:
        await _sign_in(viewer, DESK_VIEWER_TOKEN)
        page = await viewer.get(f"/secretariat/dossiers/{S01}")
    assert page.status_code == 200
    shown = html.unescape(page.text)
    for fact in ("Léa Durand (titulaire du bail)", "12 rue de Mulhouse", "Fin du délai du commandement de payer"):
        assert fact in shown, fact
    assert "CCAS de Belfort" in shown
    async with world.workspace_pool.acquire() as conn:
        seen = await conn.fetchrow(
            "SELECT l.structure_id, s.principal FROM audit_log l JOIN session s USING (session_id)"
            " WHERE l.action = 'DESK_VIEW_CASE' AND l.procedure_id = $1",
            s01,
        )
    assert seen is not None
    assert (seen["structure_id"], seen["principal"]) == ("CCAPEX", "lecteur-ccapex")


async def test_a_partner_refusal_is_listed_with_its_reason_code(world: World) -> None:
    s01, _ = await _s01_and_s05(world)
    ccas = (await world.assignment(s01, "CCAS-BELFORT"))["assignment_id"]
    async with world.client() as partner:
        case = await partner.get(world.link(ccas, "CCAS-BELFORT"), follow_redirects=True)
        await partner.post(f"/dossiers/{S01}/refuser", data={"csrf": _field(case.text, "csrf"), "reason": "DEJA_SUIVI"})
    await world.relay_workspace()
    async with world.client() as browser:
        await _sign_in(browser)
        desk = await browser.get("/secretariat")
        case_page = await browser.get(f"/secretariat/dossiers/{S01}")
    assert desk.status_code == case_page.status_code == 200
    refused = _section(desk.text, "refus")
    assert S01 in refused
    assert "<td>CCAS de Belfort</td><td>Refusée (DEJA_SUIVI)</td>" in refused
    assert "Refusée (DEJA_SUIVI)" in case_page.text
