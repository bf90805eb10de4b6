"""The workspace on PostgreSQL with what the real orientation publishes: links, sessions, need-to-know, the
case page, actions through the outbox applied by orientation, the audit log, the référentiel, retention."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
import pytest

from devtools.orientation_inputs import example_record, notice, notice_event
from schemas import topics
from schemas.procedure import Act, ClotureReason
from schemas.stages import Stage
from services.workspace import repository as repo

if TYPE_CHECKING:
    from tests.integration.workspace.conftest import World

pytestmark = pytest.mark.integration

REF = "90-2026-000001"


async def _s01(world: World) -> uuid.UUID:
    procedure_id = uuid.uuid4()
    await world.notify("s01-cj-commandement-payer", procedure_id=procedure_id, short_ref=REF)
    return procedure_id


async def _open(world: World, client: httpx.AsyncClient, procedure_id: uuid.UUID, structure: str) -> httpx.Response:
    assignment = await world.assignment(procedure_id, structure)
    return await client.get(world.link(assignment["assignment_id"], structure))


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_an_alert_link_opens_the_case_for_its_structure_and_leaves_no_token_in_the_address(world: World) -> None:
    procedure_id = await _s01(world)
    async with world.client() as browser:
        opened = await _open(world, browser, procedure_id, "CCAS-BELFORT")
        assert opened.status_code == 303
        assert opened.headers["location"] == f"/dossiers/{REF}"
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "prevex_session=" in cookie

        page = await browser.get(f"/dossiers/{REF}")
    assert page.status_code == 200
    html = page.text
    # The household, dwelling, landlord and debt the notice carried.
    assert "Léa Durand (titulaire du bail)" in html
    assert "12 rue de Mulhouse" in html
    assert "2\u202f400,00 €" in html
    assert "Personne physique" in html
    # Stages with their emitter kind, derived deadlines, the trêve.
    assert "Commandement de payer" in html
    assert "Commissaire de justice" in html
    assert "Fin du délai du commandement de payer" in html
    assert "Trêve hivernale en cours" in html
    # Why this structure, and the others (names and status only).
    assert re.search(r'id="statut-courant">À traiter<', html)
    assert "Pourquoi votre structure a été sollicitée" in html
    assert "Dispositifs concernés : « Aides facultatives et suivi social du CCAS de Belfort »" in html
    assert "Règles appliquées par l'orientation" in html  # orientation's explanation, rule by rule
    assert "En mois de loyer</dt><dd>4,0" in html
    assert "Parc</dt><dd>Parc privé" in html
    assert "Point-justice / CDAD 90 – À traiter" in html
    headers = page.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


async def test_a_structure_cannot_open_a_case_it_was_never_assigned(world: World) -> None:
    mine = await _s01(world)
    # S-05 finds no offer: only the CCAPEX secretariat holds it (fallback F1).
    await world.notify("s05-bailleur-impaye-constate", procedure_id=uuid.uuid4(), short_ref="90-2026-000005")
    async with world.client() as browser:
        assert (await _open(world, browser, mine, "CCAS-BELFORT")).status_code == 303
        denied = await browser.get("/dossiers/90-2026-000005")
        unknown = await browser.get("/dossiers/90-2026-999999")
    assert denied.status_code == unknown.status_code == 403
    assert "Durand" not in denied.text
    # The same answer whether the procedure exists or not: a reference reveals nothing.
    assert denied.text == unknown.text
    async with world.workspace_pool.acquire() as conn:
        outcomes = await conn.fetch("SELECT action, outcome, structure_id FROM audit_log ORDER BY id")
    assert [(r["action"], r["outcome"]) for r in outcomes] == [
        ("OPEN_LINK", "SESSION_STARTED"),
        ("VIEW_CASE", "DENIED"),
        ("VIEW_CASE", "DENIED"),
    ]
    assert {r["structure_id"] for r in outcomes} == {"CCAS-BELFORT"}


async def test_altered_guessed_foreign_and_expired_links(world: World) -> None:
    procedure_id = await _s01(world)
    ccas = (await world.assignment(procedure_id, "CCAS-BELFORT"))["assignment_id"]
    good = world.link(ccas, "CCAS-BELFORT")
    token = good.rsplit("/", 1)[1]
    altered = f"/d/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}"
    foreign = world.link(ccas, "CD90")  # CD90's name on the CCAS's assignment
    async with world.client() as browser:
        for path in (altered, foreign, "/d/" + "A" * 20, "/d/short", "/d/" + "é" * 20):
            answer = await browser.get(path)
            assert answer.status_code == 403, path
            assert "Lien non valide" in answer.text
            assert "set-cookie" not in answer.headers
        expired = await browser.get(
            world.link(ccas, "CCAS-BELFORT", expires_on=world.clock.now.date() - timedelta(days=1))
        )
        assert expired.status_code == 410
        assert "Lien expiré" in expired.text
        assert "nouveau lien" in expired.text
        assert (await browser.get(f"/dossiers/{REF}")).status_code == 401  # none of these signed in


async def test_accept_publishes_the_status_orientation_applies_and_the_page_then_shows(world: World) -> None:
    procedure_id = await _s01(world)
    ccas = (await world.assignment(procedure_id, "CCAS-BELFORT"))["assignment_id"]
    async with world.client() as browser:
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        page = (await browser.get(f"/dossiers/{REF}")).text
        done = await browser.post(f"/dossiers/{REF}/accepter", data={"csrf": _csrf(page)})
        assert done.status_code == 303
        waiting = (await browser.get(f"/dossiers/{REF}")).text
        assert 'id="action-en-attente"' in waiting
        assert re.search(r'id="statut-courant">À traiter<', waiting)

        [event] = await world.relay_workspace()
        assert (event.payload.assignment_id, event.payload.structure_id, event.payload.status, event.payload.by) == (
            ccas,
            "CCAS-BELFORT",
            "ACCEPTEE",
            "PARTNER",
        )
        assert await world.orientation_status(ccas) == "ACCEPTEE"
        applied = (await browser.get(f"/dossiers/{REF}")).text
        assert re.search(r'id="statut-courant">Acceptée<', applied)
        assert 'id="action-en-attente"' not in applied
        assert 'id="form-accepter"' not in applied
        assert 'id="form-cloturer"' in applied

        closed = await browser.post(
            f"/dossiers/{REF}/cloturer",
            data={"csrf": _csrf(applied), "reason": "PLAN_APUREMENT_SIGNE", "comment": "Plan signé avec le bailleur."},
        )
        assert closed.status_code == 303
        [closing] = await world.relay_workspace()
        assert (closing.payload.status, closing.payload.reason) == ("CLOTUREE", "PLAN_APUREMENT_SIGNE")
        assert "Plan signé" not in closing.model_dump_json()  # the comment stays in the workspace
        assert await world.orientation_status(ccas) == "CLOTUREE"
        listed = (await browser.get("/dossiers")).text
    assert REF not in listed  # closed: no longer among the open cases


async def test_refusal_needs_a_reason_from_the_list_and_a_valid_form(world: World) -> None:
    procedure_id = await _s01(world)
    ccas = (await world.assignment(procedure_id, "CCAS-BELFORT"))["assignment_id"]
    async with world.client() as browser:
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        csrf = _csrf((await browser.get(f"/dossiers/{REF}")).text)
        url = f"/dossiers/{REF}/refuser"
        assert (await browser.post(url, data={"reason": "DEJA_SUIVI"})).status_code == 403  # no CSRF token
        assert (await browser.post(url, data={"csrf": "forged", "reason": "DEJA_SUIVI"})).status_code == 403
        no_reason = await browser.post(url, data={"csrf": csrf})
        assert no_reason.status_code == 400
        assert "Choisissez un motif" in no_reason.text
        assert (await browser.post(url, data={"csrf": csrf, "reason": "PAS_ENVIE"})).status_code == 400
        long_comment = {"csrf": csrf, "reason": "AUTRE", "comment": "x" * 1001}
        assert (await browser.post(url, data=long_comment)).status_code == 400
        oversized = await browser.post(url, data={"csrf": csrf, "reason": "AUTRE", "comment": "x" * 20_000})
        assert oversized.status_code == 413
        assert (await browser.post(f"/dossiers/{REF}/supprimer", data={"csrf": csrf})).status_code == 404
        async with world.workspace_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0  # nothing published by the bad forms

        refused = await browser.post(url, data={"csrf": csrf, "reason": "DEJA_SUIVI", "comment": "Suivi par le CD."})
        assert refused.status_code == 303
        await world.relay_workspace()
        assert await world.orientation_status(ccas) == "REFUSEE"
        page = (await browser.get(f"/dossiers/{REF}")).text
        assert re.search(r'id="statut-courant">Refusée<', page)
        assert "Votre commentaire du 02/03/2026 : Suivi par le CD." in page  # for the structure only
        assert 'id="form-' not in page  # a refusal is final: no action left
        again = await browser.post(url, data={"csrf": csrf, "reason": "DEJA_SUIVI"})
        assert again.status_code == 409
    async with world.workspace_pool.acquire() as conn:
        actions = await conn.fetch("SELECT action, outcome FROM audit_log WHERE action = 'REFUSE' ORDER BY id")
    assert [r["outcome"] for r in actions] == [
        "CSRF_REJECTED",
        "CSRF_REJECTED",
        "REASON_REQUIRED",
        "REASON_UNKNOWN",
        "COMMENT_TOO_LONG",
        "PUBLISHED",
        "NOT_ALLOWED",
    ]


async def test_sessions_end_when_idle_or_too_old_and_on_sign_out(world: World) -> None:
    procedure_id = await _s01(world)
    async with world.client() as browser:
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        world.clock.now += timedelta(minutes=29)
        assert (await browser.get("/dossiers")).status_code == 200
        world.clock.now += timedelta(minutes=31)
        assert (await browser.get("/dossiers")).status_code == 401  # idle for 31 minutes
    async with world.client() as browser:
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        for _ in range(25):  # active every 29 minutes, yet past 12 hours
            world.clock.now += timedelta(minutes=29)
            last = await browser.get("/dossiers")
        assert last.status_code == 401
    async with world.client() as browser:
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        page = (await browser.get("/dossiers")).text
        assert (await browser.post("/deconnexion", data={"csrf": _csrf(page)})).status_code == 200
        assert (await browser.get("/dossiers")).status_code == 401


async def test_my_cases_lists_open_assignments_most_urgent_first(world: World) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    # Both alert the CD90; the commandement de quitter (S-06) is the more urgent.
    await world.notify("s01-cj-commandement-payer", procedure_id=first, short_ref=REF)
    await world.notify("s06-cj-commandement-quitter", procedure_id=second, short_ref="90-2026-000006")
    async with world.client() as browser:
        await _open(world, browser, first, "CD90")
        listed = (await browser.get("/dossiers")).text
    rows = re.findall(r'<a href="/dossiers/([0-9-]+)">', listed)
    assert rows == ["90-2026-000006", REF]


async def test_the_referential_is_searchable_by_name_stage_and_kind(world: World) -> None:
    procedure_id = await _s01(world)
    async with world.client() as browser:
        assert (await browser.get("/referentiel")).status_code == 401  # signed-in partners only
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        everything = (await browser.get("/referentiel")).text
        by_name = (await browser.get("/referentiel", params={"q": "solidarite"})).text
        by_kind = (await browser.get("/referentiel", params={"type": "SIAO"})).text
        by_stage = (await browser.get("/referentiel", params={"etape": Stage.DEMANDE_CFP.value})).text
        nonsense = await browser.get("/referentiel", params={"etape": "<script>", "type": "X" * 500, "q": "é" * 500})
    assert re.search(r'id="version">1<', everything)
    assert "CCAS de Belfort" in everything
    assert "FSL 90 – Fonds de solidarité pour le logement" in by_name
    assert "CCAS de Belfort" not in by_name
    assert "SIAO / 115 du Territoire de Belfort" in by_kind
    assert "CCAS de Belfort" not in by_kind
    assert "Réquisition de la force publique" in by_stage
    assert nonsense.status_code == 200
    assert "<script>" not in nonsense.text


async def test_personal_data_is_purged_a_configured_time_after_the_procedure_closed(world: World) -> None:
    procedure_id = await _s01(world)
    async with world.client() as browser:
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        csrf = _csrf((await browser.get(f"/dossiers/{REF}")).text)
        await browser.post(f"/dossiers/{REF}/refuser", data={"csrf": csrf, "reason": "AUTRE", "comment": "Mme Durand."})
        await world.relay_workspace()
        far = world.clock.now + timedelta(days=9999)
        async with world.workspace_pool.acquire() as conn, conn.transaction():
            assert await repo.purge_closed(conn, closed_before=far, now=far) == 0  # open: never purged

        # The procedure closes: a CLOTURE act, the next revision.
        s01 = example_record("s01-cj-commandement-payer")
        assert s01 is not None
        closing = s01.model_copy(
            update={"act": Act(stage=Stage.CLOTURE, date=s01.act.date, cloture_reason=ClotureReason.DETTE_SOLDEE)}
        )
        event = notice_event(notice(closing, procedure_id=procedure_id, short_ref=REF, revision=2))
        await world.fold_event(topics.PROCEDURE_NOTIFICATION, event)
        async with world.workspace_pool.acquire() as conn, conn.transaction():
            closed_at = await conn.fetchval("SELECT closed_at FROM procedure WHERE procedure_id = $1", procedure_id)
            assert closed_at == event.occurred_at
            # Closed for less than the retention: kept.
            assert await repo.purge_closed(conn, closed_before=closed_at, now=closed_at) == 0
        assert "Durand" in (await browser.get(f"/dossiers/{REF}")).text

        async with world.workspace_pool.acquire() as conn, conn.transaction():
            later = closed_at + timedelta(days=366)
            assert await repo.purge_closed(conn, closed_before=later - timedelta(days=365), now=later) == 1
            leftovers = await conn.fetchval(
                "SELECT count(*) FROM procedure p JOIN assignment a USING (procedure_id)"
                " LEFT JOIN partner_action pa USING (assignment_id)"
                " WHERE p.case_file IS NOT NULL OR a.explanation IS NOT NULL OR pa.comment IS NOT NULL"
            )
        assert leftovers == 0
        purged = (await browser.get(f"/dossiers/{REF}")).text
    assert "Durand" not in purged
    assert "Mulhouse" not in purged
    assert "les données personnelles ont été effacées" in purged
    assert REF in purged  # the reference, stages and statuses remain


async def test_hostile_requests_get_clear_answers_and_publish_nothing(world: World) -> None:
    procedure_id = await _s01(world)
    async with world.client() as stranger:
        stranger.cookies.set("prevex_session", "forged-session-cookie")
        assert (await stranger.get("/dossiers")).status_code == 401
        assert (await stranger.post(f"/dossiers/{REF}/accepter", data={"csrf": "x"})).status_code == 401
    async with world.client() as browser:
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        csrf = _csrf((await browser.get(f"/dossiers/{REF}")).text)
        for ref in ("<script>alert(1)", "x" * 5000, "90-2026-000001' OR '1'='1", "\x00", "é"):
            answer = await browser.get(f"/dossiers/{quote(ref, safe='')}")
            assert answer.status_code == 403, ref
            assert "<script>alert" not in answer.text
        assert (await browser.get(f"/dossiers/{REF}/accepter")).status_code == 405  # actions are POSTs
        # A file where a reason is expected, a reason twice, a huge reason code.
        upload = await browser.post(
            f"/dossiers/{REF}/refuser", data={"csrf": csrf}, files={"reason": ("r.txt", b"DEJA_SUIVI", "text/plain")}
        )
        assert upload.status_code == 400
        assert (
            await browser.post(f"/dossiers/{REF}/refuser", data={"csrf": csrf, "reason": "Z" * 5000})
        ).status_code == 400
        nul = await browser.post(
            f"/dossiers/{REF}/refuser", data={"csrf": csrf, "reason": "AUTRE", "comment": "a\x00b"}
        )
        assert nul.status_code == 400
        missing_length = await browser.post(
            f"/dossiers/{REF}/accepter", content=b"csrf=" + csrf.encode(), headers={"content-length": "abc"}
        )
        assert missing_length.status_code in {400, 413}
    async with world.workspace_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        assert await conn.fetchval("SELECT count(*) FROM partner_action") == 0


async def test_each_structure_reads_the_warnings_meant_for_it_in_french(world: World) -> None:
    procedure_id = await _s01(world)
    s01 = example_record("s01-cj-commandement-payer")
    assert s01 is not None
    warned = s01.model_copy(update={"warnings": ["LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W", "LINK_LOW_CONFIDENCE"]})
    await world.fold_event(
        topics.PROCEDURE_NOTIFICATION,
        notice_event(notice(warned, procedure_id=procedure_id, short_ref=REF, revision=2)),
    )
    async with world.client() as departement, world.client() as ccas:
        await _open(world, departement, procedure_id, "CD90")
        await _open(world, ccas, procedure_id, "CCAS-BELFORT")
        told = (await departement.get(f"/dossiers/{REF}")).text
        not_told = (await ccas.get(f"/dossiers/{REF}")).text
    assert "Date du bail inconnue : délai du commandement compté à 6 semaines" in told
    for page in (told, not_told):
        assert "LINK_LOW_CONFIDENCE" not in page  # ops' codes never reach partners
    assert 'id="avertissements"' not in not_told


async def test_the_digest_link_leads_to_the_list_when_signed_in_and_to_the_welcome_page_otherwise(world: World) -> None:
    procedure_id = await _s01(world)
    async with world.client() as browser:
        assert (await browser.get("/d")).headers["location"] == "/"
        welcome = await browser.get("/")
        assert welcome.status_code == 200
        assert "lien personnel reçu dans une alerte" in welcome.text
        await _open(world, browser, procedure_id, "CCAS-BELFORT")
        assert (await browser.get("/")).headers["location"] == "/dossiers"
