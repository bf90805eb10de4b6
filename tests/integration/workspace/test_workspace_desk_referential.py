"""The desk edits the référentiel through the real orientation admin API (its app on PostgreSQL, called over
an ASGI transport): the form, the diff before saving, the save as a new version published on the
référentiel topic and folded back into the workspace, a concurrent change refused, bad values, roles."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from schemas import topics
from schemas.referential import ReferentialChangedEvent
from services.orientation.auth import Role, TokenRegistry, hash_token
from services.orientation.http import AdminServices
from services.orientation.http import create_app as orientation_app
from services.orientation.referential_store import ReferentialHolder
from services.workspace.domain.sessions import SessionPolicy
from services.workspace.http import WorkspaceServices, create_app
from services.workspace.referential_admin import ReferentialAdmin
from tests.integration.workspace.conftest import DESK_ADMIN_TOKEN, DESK_TOKENS, DESK_VIEWER_TOKEN, KEYS

if TYPE_CHECKING:
    from tests.integration.workspace.conftest import World

pytestmark = pytest.mark.integration

WORKSPACE_TOKEN = "pvx_the-workspace-own-admin-token-for-tests"
SOMEONE_ELSE = "pvx_another-administrator-with-curl"


@dataclass
class Desk:
    """The workspace wired to orientation's admin API, and that API for a second administrator."""

    world: World
    app: Any
    orientation: Any

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://workspace.test")

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.orientation), base_url="http://orientation")

    async def signed_in(self, browser: httpx.AsyncClient, token: str = DESK_ADMIN_TOKEN) -> None:
        form = await browser.get("/secretariat/connexion")
        answer = await browser.post(
            "/secretariat/connexion", data={"nonce": _field(form.text, "nonce"), "jeton": token}
        )
        assert answer.status_code == 303

    async def referential_records(self) -> list[ReferentialChangedEvent]:
        async with self.world.orientation_pool.acquire() as conn:
            rows = await conn.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topics.REFERENTIAL_CHANGED)
        return [ReferentialChangedEvent.model_validate_json(r["value"]) for r in rows]

    async def journal(self, action: str) -> list[tuple[str | None, str, str]]:
        async with self.world.workspace_pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT s.principal, l.structure_id, l.outcome FROM audit_log l LEFT JOIN session s USING (session_id)"
                " WHERE l.action = $1 ORDER BY l.id",
                action,
            )
        return [(r["principal"], r["structure_id"], r["outcome"]) for r in rows]


@pytest.fixture
async def desk(world: World) -> Desk:
    tokens = TokenRegistry(
        [
            ("workspace-desk", hash_token(WORKSPACE_TOKEN), frozenset({Role.ADMIN})),
            ("autre-admin", hash_token(SOMEONE_ELSE), frozenset({Role.ADMIN})),
        ]
    )
    api = orientation_app(
        AdminServices(pool=lambda: world.orientation_pool, holder=ReferentialHolder(), tokens=tokens, max_structures=3)
    )
    admin = ReferentialAdmin(
        lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://orientation"),
        WORKSPACE_TOKEN,
    )
    services = WorkspaceServices(
        pool=lambda: world.workspace_pool,
        link_keys=KEYS,
        sessions=SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12)),
        cookie_secure=False,
        now=world.clock,
        desk_tokens=DESK_TOKENS,
        referential_admin=admin,
    )
    async with world.orientation_pool.acquire() as conn:
        await conn.execute("DELETE FROM outbox")
    return Desk(world, create_app(services), api)


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, name
    return html.unescape(found.group(1))


def _found(pattern: str, page: str) -> str:
    """The first group of ``pattern`` in ``page``, unescaped (the pattern must match)."""
    found = re.search(pattern, page, re.DOTALL)
    assert found is not None, pattern
    return html.unescape(found.group(1))


async def _post_offer(browser: httpx.AsyncClient, page: str, **changes: str | list[str]) -> httpx.Response:
    """PJ90-INFO's form as ``page`` shows it, with ``changes``, posted."""
    return await browser.post("/secretariat/referentiel/offres/PJ90-INFO", data=_offer_form(page, **changes))


def _offer_form(page: str, **changes: str | list[str]) -> dict[str, str | list[str]]:
    """The offer form's fields as the page shows them, with ``changes``."""
    fields: dict[str, str | list[str]] = {
        name: _field(page, name)
        for name in ("csrf", "revision", "apercu", "nom", "priorite", "capacite", "zone", "zone_exclues")
    }
    fields["description"] = _found(r'name="description"[^>]*>([^<]*)</textarea>', page)
    fields["statut"] = _found(r'id="statut".*?value="(\w+)" selected', page)
    fields["parc"] = _found(r'id="parc".*?value="(\w*)" selected', page)
    fields["etapes"] = re.findall(r'name="etapes" value="(\w+)" checked', page)
    fields["obligatoires"] = re.findall(r'name="obligatoires" value="(\w+)" checked', page)
    fields.update(changes)
    return fields


async def test_an_administrator_sees_the_diff_then_saves_a_new_version_published_on_the_topic(desk: Desk) -> None:
    async with desk.client() as browser:
        await desk.signed_in(browser)
        overview = await browser.get("/secretariat/referentiel")
        assert overview.status_code == 200
        assert re.search(r'<strong id="version">1</strong>', overview.text)
        assert 'href="/secretariat/referentiel/offres/PJ90-INFO"' in overview.text
        form = await browser.get("/secretariat/referentiel/offres/PJ90-INFO")
        assert (_field(form.text, "priorite"), _field(form.text, "zone"), _field(form.text, "revision")) == (
            "60",
            "90",
            "1",
        )

        previewed = await _post_offer(browser, form.text, priorite="65", etape="apercu")
        assert previewed.status_code == 200, previewed.text
        diff = _found(r'<pre id="diff">(.*?)</pre>', previewed.text)
        assert diff.splitlines() == ["~ offer PJ90-INFO", "    priority: 60 → 65"]
        assert await desk.referential_records() == []  # a preview saves nothing

        saved = await _post_offer(browser, previewed.text, etape="enregistrer")
        assert (saved.status_code, saved.headers["location"]) == (
            303,
            "/secretariat/referentiel/offres/PJ90-INFO?version=2",
        )
        after = await browser.get(saved.headers["location"])
    assert "Enregistré : le référentiel est à la version 2." in html.unescape(after.text)
    assert _field(after.text, "priorite") == "65"
    records = await desk.referential_records()
    assert [(r.payload.structure_id, r.payload.referentiel_version) for r in records] == [("CDAD90", 2)]
    await desk.world.fold(*await desk.world.take_orientation_outbox())
    async with desk.world.workspace_pool.acquire() as conn:
        version = await conn.fetchval("SELECT referentiel_version FROM structure WHERE structure_id = 'CDAD90'")
    assert version == 2  # the partners' référentiel page shows the new version
    # Who asked, for which structure (the offer's): the journal has it, under the secretariat's token name.
    assert await desk.journal("DESK_EDIT_OFFER") == [
        ("secretariat-ccapex", "CDAD90", "PREVIEWED"),
        ("secretariat-ccapex", "CDAD90", "SAVED"),
    ]
    async with desk.api() as api:
        versions = await api.get("/referential/versions", headers={"Authorization": f"Bearer {WORKSPACE_TOKEN}"})
    # Orientation's history names the workspace's token as the author and the member it acted for.
    assert (versions.json()[0]["author"], versions.json()[0]["source"]) == (
        "workspace-desk",
        "api PUT /offers/PJ90-INFO for secretariat-ccapex",
    )


async def test_a_change_made_meanwhile_is_not_overwritten_and_the_typed_values_stay(desk: Desk) -> None:
    async with desk.client() as browser:
        await desk.signed_in(browser)
        form = await browser.get("/secretariat/referentiel/offres/PJ90-INFO")
        previewed = await _post_offer(
            browser, form.text, nom="Information juridique (version du secrétariat)", etape="apercu"
        )
        # Another administrator saves first, through the API.
        async with desk.api() as api:
            auth = {"Authorization": f"Bearer {SOMEONE_ELSE}"}
            offer = (await api.get("/offers/PJ90-INFO", headers=auth)).json()["item"]
            other = await api.put(
                "/offers/PJ90-INFO", json={**offer, "priority": 70}, headers=auth | {"If-Match": '"1"'}
            )
            assert other.status_code == 200
        refused = await _post_offer(browser, previewed.text, etape="enregistrer")
    assert refused.status_code == 409
    page = html.unescape(refused.text)
    assert "Cette offre a été modifiée par quelqu'un d'autre depuis que vous l'avez ouverte" in page
    assert "rien n'a été enregistré" in page
    assert _field(refused.text, "nom") == "Information juridique (version du secrétariat)"  # nothing lost
    assert _field(refused.text, "revision") == "2"  # the next preview compares with the version now in force
    assert _field(refused.text, "apercu") == ""  # « Enregistrer » needs a new preview
    async with desk.api() as api:
        now = (await api.get("/offers/PJ90-INFO", headers={"Authorization": f"Bearer {SOMEONE_ELSE}"})).json()
    assert (now["item"]["nom"], now["item"]["priority"], now["referentiel_version"]) == (
        "Information juridique des locataires du parc privé",
        70,
        2,
    )
    assert await desk.journal("DESK_EDIT_OFFER") == [
        ("secretariat-ccapex", "CDAD90", "PREVIEWED"),
        ("secretariat-ccapex", "CDAD90", "STALE"),
    ]


async def test_a_form_changed_after_its_preview_is_shown_again_not_saved(desk: Desk) -> None:
    async with desk.client() as browser:
        await desk.signed_in(browser)
        form = await browser.get("/secretariat/referentiel/offres/PJ90-INFO")
        previewed = await _post_offer(browser, form.text, priorite="65", etape="apercu")
        sneaked = await _post_offer(browser, previewed.text, priorite="99", etape="enregistrer")
    assert sneaked.status_code == 200
    assert "Le formulaire a changé depuis l'aperçu" in html.unescape(sneaked.text)
    assert "priority: 60 → 99" in html.unescape(sneaked.text)
    assert await desk.referential_records() == []


async def test_values_the_form_or_orientation_refuse_come_back_with_the_reason_and_save_nothing(desk: Desk) -> None:
    async with desk.client() as browser:
        await desk.signed_in(browser)
        form = await browser.get("/secretariat/referentiel/offres/PJ90-INFO")
        bad_zone = await _post_offer(browser, form.text, zone="90, Belfort", etape="apercu")
        # A mandatory stage outside the eligible ones: orientation's own rule answers.
        outside = await _post_offer(browser, form.text, obligatoires=["DEMANDE_CFP"], etape="apercu")
    assert bad_zone.status_code == 422
    assert "« BELFORT » n'est ni un département, ni une commune, ni un EPCI" in html.unescape(bad_zone.text)
    assert _field(bad_zone.text, "zone") == "90, Belfort"
    assert outside.status_code == 422
    assert "mandatory_stages DEMANDE_CFP not in eligibility.stages" in html.unescape(outside.text)
    assert await desk.referential_records() == []
    assert [outcome for _, _, outcome in await desk.journal("DESK_EDIT_OFFER")] == ["INVALID", "INVALID"]


async def test_a_structure_s_contacts_are_edited_and_one_added(desk: Desk) -> None:
    async with desk.client() as browser:
        await desk.signed_in(browser)
        form = await browser.get("/secretariat/referentiel/structures/CCAS-BELFORT")
        fields = {
            "csrf": _field(form.text, "csrf"),
            "revision": _field(form.text, "revision"),
            "nom": "CCAS de Belfort",
            "typologie": "CCAS",
            "code_insee": "90010",
            "statut": "active",
            "contact-0-id": "CCAS-BELFORT-ACCUEIL",
            "contact-0-libelle": "Accueil social du CCAS",
            "contact-0-email": "social@ccas-belfort.test",
            "contact-0-canal-email": "1",
            "contact-0-generique": "1",
            "contact-1-id": "CCAS-BELFORT-SMS",
            "contact-1-libelle": "Permanence sociale",
            "contact-1-mobile": "+33612345678",
            "contact-1-canal-sms": "1",
            "etape": "apercu",
        }
        previewed = await browser.post("/secretariat/referentiel/structures/CCAS-BELFORT", data=fields)
        assert previewed.status_code == 200, previewed.text
        saved = await browser.post(
            "/secretariat/referentiel/structures/CCAS-BELFORT",
            data={**fields, "apercu": _field(previewed.text, "apercu"), "etape": "enregistrer"},
        )
    diff = _found(r'<pre id="diff">(.*?)</pre>', previewed.text)
    assert diff.startswith("~ structure CCAS-BELFORT\n")
    assert "social@ccas-belfort.test" in diff
    assert saved.status_code == 303
    (record,) = await desk.referential_records()
    contacts = {c.id: c for c in record.payload.contacts}
    assert contacts["CCAS-BELFORT-ACCUEIL"].email == "social@ccas-belfort.test"
    assert (contacts["CCAS-BELFORT-SMS"].mobile, contacts["CCAS-BELFORT-SMS"].channels_enabled.sms) == (
        "+33612345678",
        True,
    )


async def test_a_viewer_a_forged_form_and_an_unknown_item_are_refused(desk: Desk) -> None:
    async with desk.client() as viewer:
        await desk.signed_in(viewer, DESK_VIEWER_TOKEN)
        listed = await viewer.get("/secretariat/referentiel")
        refused = await viewer.get("/secretariat/referentiel/offres/PJ90-INFO")
    assert listed.status_code == 200
    assert 'href="/secretariat/referentiel/offres/' not in listed.text
    assert refused.status_code == 403
    async with desk.client() as browser:
        await desk.signed_in(browser)
        form = await browser.get("/secretariat/referentiel/offres/PJ90-INFO")
        forged = await _post_offer(browser, form.text, csrf="guess", etape="apercu")
        unknown = await browser.get("/secretariat/referentiel/offres/NOWHERE")
        odd = await browser.get("/secretariat/referentiel/offres/..%2Fstructures")
    assert forged.status_code == 403
    assert (unknown.status_code, odd.status_code) == (404, 404)
    assert await desk.referential_records() == []
    assert [outcome for _, _, outcome in await desk.journal("DESK_EDIT_OFFER")] == ["NOT_ALLOWED", "CSRF_REJECTED"]


async def test_without_orientation_configured_the_desk_says_so(world: World) -> None:
    async with world.client() as browser:
        form = await browser.get("/secretariat/connexion")
        await browser.post(
            "/secretariat/connexion", data={"nonce": _field(form.text, "nonce"), "jeton": DESK_ADMIN_TOKEN}
        )
        page = await browser.get("/secretariat/referentiel")
    assert page.status_code == 503
    assert "WORKSPACE_ORIENTATION_URL" in page.text


NEW_OFFER = {
    "identifiant": "CCAS-BELFORT-ENERGIE",
    "type": "aide-financiere",
    "nom": "Aide aux impayés d'énergie",
    "description": "Aide facultative du CCAS pour les factures d'énergie.",
    "priorite": "10",
    "capacite": "",
    "statut": "active",
    "etapes": ["COMMANDEMENT_PAYER", "ASSIGNATION"],
    "parc": "",
    "zone": "90010",
    "zone_exclues": "",
}


async def test_an_administrator_adds_an_offer_after_seeing_its_diff(desk: Desk) -> None:
    path = "/secretariat/referentiel/structures/CCAS-BELFORT/nouvelle-offre"
    async with desk.client() as browser:
        await desk.signed_in(browser)
        overview = await browser.get("/secretariat/referentiel")
        assert f'href="{path}"' in overview.text
        form = await browser.get(path)
        csrf = _field(form.text, "csrf")
        previewed = await browser.post(path, data={**NEW_OFFER, "csrf": csrf, "etape": "apercu"})
        assert previewed.status_code == 200, previewed.text
        assert await desk.referential_records() == []
        saved = await browser.post(
            path, data={**NEW_OFFER, "csrf": csrf, "apercu": _field(previewed.text, "apercu"), "etape": "enregistrer"}
        )
        again = await browser.post(
            path, data={**NEW_OFFER, "csrf": csrf, "apercu": _field(previewed.text, "apercu"), "etape": "enregistrer"}
        )
    diff = _found(r'<pre id="diff">(.*?)</pre>', previewed.text)
    assert diff.splitlines()[0] == "+ offer CCAS-BELFORT-ENERGIE"
    assert (saved.status_code, saved.headers["location"]) == (
        303,
        "/secretariat/referentiel/offres/CCAS-BELFORT-ENERGIE?version=2",
    )
    [record] = await desk.referential_records()
    assert (record.payload.structure_id, record.payload.referentiel_version) == ("CCAS-BELFORT", 2)
    assert "Aide aux impayés d'énergie" in [o.nom for o in record.payload.offers]
    # The same identifier a second time: said so on the form, nothing created.
    assert again.status_code == 409
    assert "un dispositif porte déjà cet identifiant" in html.unescape(again.text)
    assert _field(again.text, "nom") == "Aide aux impayés d'énergie"
    assert await desk.journal("DESK_ADD_OFFER") == [
        ("secretariat-ccapex", "CCAS-BELFORT", "PREVIEWED"),
        ("secretariat-ccapex", "CCAS-BELFORT", "SAVED"),
        ("secretariat-ccapex", "CCAS-BELFORT", "INVALID"),
    ]
    async with desk.api() as api:
        versions = await api.get("/referential/versions", headers={"Authorization": f"Bearer {WORKSPACE_TOKEN}"})
    assert versions.json()[0]["source"] == "api POST /offers CCAS-BELFORT-ENERGIE for secretariat-ccapex"


async def test_a_viewer_cannot_add_an_offer(desk: Desk) -> None:
    async with desk.client() as viewer:
        await desk.signed_in(viewer, DESK_VIEWER_TOKEN)
        refused = await viewer.get("/secretariat/referentiel/structures/CCAS-BELFORT/nouvelle-offre")
    assert refused.status_code == 403
    assert await desk.journal("DESK_ADD_OFFER") == [("lecteur-ccapex", "CCAS-BELFORT", "NOT_ALLOWED")]
