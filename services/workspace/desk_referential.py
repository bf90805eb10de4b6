"""The desk's référentiel pages: the administrators edit structures, contacts and offers through forms.

- ``GET /secretariat/referentiel``: the structures and their offers as orientation holds them now, with
  the version in force; a « Modifier » link on each (administrators).
- ``GET /secretariat/referentiel/structures/<id>``, ``…/offres/<id>``: the form, filled with the item
  as orientation returned it, with the revision it was read at.
- ``GET|POST /secretariat/referentiel/structures/<id>/nouvelle-offre``: a new offer of that structure, the
  same way (its diff, then « Enregistrer »; an identifier already used is said so).
- ``POST`` on the same address: « Voir les modifications » asks orientation for a dry run and shows
  its diff above the form; « Enregistrer » saves with ``If-Match`` the revision read, only the very body
  whose diff was shown (``preview_key``: a form changed after the preview shows its diff again). A change
  made meanwhile by someone else is refused (412) and the form comes back as typed, on the new
  revision, with a message: nothing is lost, nothing is overwritten unseen.

Orientation validates, versions and publishes (``services/workspace/referential_admin.py``); the
workspace keeps who asked: every preview, save and refusal is in the audit log with the session (its
token's name) and the structure concerned. ``ccapex-viewer`` sees the list, not the forms.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData

from schemas.referential import RecordStatus, StructureTypology
from schemas.stages import Stage
from services.orientation.domain.referential import TypeService
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.workspace import desk_repository as desk_repo
from services.workspace import repository as repo
from services.workspace.domain.desk import may_edit_referential
from services.workspace.domain.referential_edit import (
    PARC_CHOICES,
    EditFormError,
    FormFields,
    OfferForm,
    StructureForm,
    new_offer_payload,
    offer_fields,
    offer_form,
    offer_payload,
    preview_key,
    structure_fields,
    structure_form,
    structure_payload,
)
from services.workspace.referential_admin import (
    ItemKind,
    OrientationUnavailableError,
    ReferentialAdmin,
    RejectedChangeError,
    StaleItemError,
    TakenIdError,
    UnknownItemError,
)

if TYPE_CHECKING:
    from services.workspace.desk import DeskKit

__all__ = ["mount_referential_desk"]

log = get_logger(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # schemas.referential.RefId: safe in orientation's paths

_ADD_OFFER: Final = "DESK_ADD_OFFER"
_NEW: Final = "nouveau"
"""The revision a new offer's preview key is computed on (it has none yet)."""
_TYPES: Final = tuple(t.value for t in TypeService)

OnDesk = Callable[[Request, Callable[[Conn, desk_repo.DeskSession], Awaitable[Response]]], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class _Kind:
    """One edited collection: its path segment here, orientation's, its audit action, how a form reads."""

    segment: str
    api: ItemKind
    action: str
    noun: str
    fields: Callable[[FormFields], StructureForm | OfferForm]
    from_item: Callable[[dict[str, Any]], StructureForm | OfferForm]
    payload: Callable[[dict[str, Any], Any], dict[str, Any]]


_KINDS: Final = {
    "structures": _Kind(
        "structures",
        ItemKind.STRUCTURE,
        "DESK_EDIT_STRUCTURE",
        "structure",
        structure_fields,
        structure_form,
        structure_payload,
    ),
    "offres": _Kind("offres", ItemKind.OFFER, "DESK_EDIT_OFFER", "offre", offer_fields, offer_form, offer_payload),
}


def _fields(form: FormData) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            fields.setdefault(name, []).append(value)
    return fields


def mount_referential_desk(app: FastAPI, kit: DeskKit, on_desk: OnDesk) -> None:  # noqa: PLR0915 (one closure per page)
    """Add the référentiel's pages to the desk (``on_desk`` opens the transaction and checks the session)."""
    services = kit.services
    admin: ReferentialAdmin | None = services.referential_admin

    async def audit(conn: Conn, desk: desk_repo.DeskSession, action: str, outcome: str, structure_id: str) -> None:
        # The structure concerned, not the desk's CCAPEX: the journal filtered by structure finds its edits.
        await repo.audit(
            conn,
            at=services.now(),
            action=action,
            outcome=outcome,
            session_id=desk.session_id,
            structure_id=structure_id,
        )

    def unavailable(desk: desk_repo.DeskSession) -> HTMLResponse:
        return kit.refused(
            503,
            "Référentiel indisponible",
            "Le service d'orientation ne répond pas : réessayez dans quelques minutes. Rien n'a été modifié.",
            desk,
        )

    def not_configured(desk: desk_repo.DeskSession) -> HTMLResponse:
        return kit.refused(
            503,
            "Modification non configurée",
            "Ce poste ne peut pas modifier le référentiel : l'adresse et le jeton du service d'orientation"
            " ne sont pas configurés (WORKSPACE_ORIENTATION_URL, WORKSPACE_ORIENTATION_TOKEN_PATH).",
            desk,
        )

    @app.get("/secretariat/referentiel", include_in_schema=False)
    async def overview(request: Request) -> Response:
        async def show(conn: Conn, desk: desk_repo.DeskSession) -> Response:
            if admin is None:
                return not_configured(desk)
            try:
                version, structures = await admin.items(ItemKind.STRUCTURE)
                _, offers = await admin.items(ItemKind.OFFER)
            except OrientationUnavailableError:
                return unavailable(desk)
            by_structure: dict[str, list[dict[str, Any]]] = {}
            for offer in offers:
                by_structure.setdefault(offer["structure_id"], []).append(offer)
            await repo.audit(
                conn, at=services.now(), action="DESK_VIEW_REFERENTIAL", outcome="OK", session_id=desk.session_id
            )
            return kit.page(
                "desk_referential.html",
                session=desk,
                version=version,
                structures=sorted(structures, key=lambda s: str(s["nom"]).casefold()),
                offers=by_structure,
                may_edit=may_edit_referential(desk.role),
            )

        return await on_desk(request, show)

    def form_page(
        desk: desk_repo.DeskSession,
        kind: _Kind,
        item_id: str,
        form: StructureForm | OfferForm,
        revision: str,
        *,
        status: int = 200,
        changes: list[str] | None = None,
        key: str = "",
        problems: tuple[tuple[str, str], ...] = (),
        notice: str | None = None,
        adding_to: str | None = None,
    ) -> HTMLResponse:
        """The form (``adding_to``: a new offer of that structure, ``item_id`` then being the structure's)."""
        action = f"/secretariat/referentiel/{kind.segment}/{item_id}"
        return kit.page(
            "desk_referential_edit.html",
            status,
            session=desk,
            kind=kind.segment,
            noun=kind.noun,
            item_id=item_id,
            action=f"/secretariat/referentiel/structures/{adding_to}/nouvelle-offre" if adding_to else action,
            adding_to=adding_to,
            types=_TYPES,
            form=form,
            revision=revision,
            changes=changes,
            preview=key,
            problems=problems,
            notice=notice,
            stages=list(Stage),
            kinds=list(StructureTypology),
            statuses=list(RecordStatus),
            parcs=PARC_CHOICES,
        )

    async def checked(
        conn: Conn, desk: desk_repo.DeskSession, segment: str, item_id: str, action: str | None = None
    ) -> tuple[_Kind, ReferentialAdmin] | Response:
        """The collection and the client, or the page refusing: unknown address, viewer, not configured."""
        kind = _KINDS.get(segment)
        if kind is None or not _ID.match(item_id):
            return kit.refused(404, "Page introuvable", "Cette fiche du référentiel n'existe pas.", desk)
        if not may_edit_referential(desk.role):
            await audit(conn, desk, action or kind.action, "NOT_ALLOWED", item_id)
            return kit.refused(
                403, "Action réservée", "Seuls les administrateurs de la CCAPEX modifient le référentiel.", desk
            )
        if admin is None:
            return not_configured(desk)
        return kind, admin

    @app.get("/secretariat/referentiel/structures/{structure_id}/nouvelle-offre", include_in_schema=False)
    async def new_offer(request: Request, structure_id: str) -> Response:
        async def show(conn: Conn, desk: desk_repo.DeskSession) -> Response:
            found = await checked(conn, desk, "structures", structure_id, _ADD_OFFER)
            if isinstance(found, Response):
                return found
            try:
                await found[1].read(ItemKind.STRUCTURE, structure_id)
            except UnknownItemError:
                return kit.refused(404, "Fiche introuvable", "Aucune structure ne porte cet identifiant.", desk)
            except OrientationUnavailableError:
                return unavailable(desk)
            offers = _KINDS["offres"]
            return form_page(desk, offers, structure_id, offer_form({}), _NEW, adding_to=structure_id)

        return await on_desk(request, show)

    @app.post("/secretariat/referentiel/structures/{structure_id}/nouvelle-offre", include_in_schema=False)
    async def add_offer(request: Request, structure_id: str) -> Response:
        async def handle(conn: Conn, desk: desk_repo.DeskSession) -> Response:  # noqa: PLR0911 (one answer per outcome)
            found = await checked(conn, desk, "structures", structure_id, _ADD_OFFER)
            if isinstance(found, Response):
                return found
            client, offers = found[1], _KINDS["offres"]
            fields = _fields(await request.form())
            if not hmac.compare_digest((fields.get("csrf") or [""])[-1], desk.csrf_token):
                await audit(conn, desk, _ADD_OFFER, "CSRF_REJECTED", structure_id)
                return kit.refused(403, "Formulaire expiré", "Rechargez la page puis recommencez.", desk)
            form = offer_fields(fields)

            def again(status: int, **values: Any) -> HTMLResponse:
                return form_page(
                    desk, offers, structure_id, form, _NEW, status=status, adding_to=structure_id, **values
                )

            try:
                body = new_offer_payload(structure_id, form, _TYPES)
                key = preview_key(body, _NEW)
                saving = (fields.get("etape") or [""])[-1] == "enregistrer"
                if saving and hmac.compare_digest(key, (fields.get("apercu") or [""])[-1]):
                    done = await client.create(ItemKind.OFFER, body, dry_run=False, on_behalf_of=desk.principal)
                    await audit(conn, desk, _ADD_OFFER, "SAVED", structure_id)
                    log.info("referential_offer_added_from_desk", item_id=form.id, version=done.version)
                    return RedirectResponse(
                        f"/secretariat/referentiel/offres/{form.id}?version={done.version}", status_code=303
                    )
                diff = await client.create(ItemKind.OFFER, body, dry_run=True, on_behalf_of=desk.principal)
                await audit(conn, desk, _ADD_OFFER, "PREVIEWED", structure_id)
                notice = "Le formulaire a changé depuis l'aperçu : vérifiez ces modifications." if saving else None
                return again(200, changes=diff.changes, key=key, notice=notice)
            except TakenIdError:
                await audit(conn, desk, _ADD_OFFER, "INVALID", structure_id)
                return again(409, problems=(("identifiant", "un dispositif porte déjà cet identifiant"),))
            except (EditFormError, RejectedChangeError) as error:
                await audit(conn, desk, _ADD_OFFER, "INVALID", structure_id)
                return again(422, problems=tuple(error.problems))
            except (UnknownItemError, StaleItemError, OrientationUnavailableError):
                await audit(conn, desk, _ADD_OFFER, "UNAVAILABLE", structure_id)
                return unavailable(desk)

        return await on_desk(request, handle)

    @app.get("/secretariat/referentiel/{segment}/{item_id}", include_in_schema=False)
    async def edit(request: Request, segment: str, item_id: str) -> Response:
        async def show(conn: Conn, desk: desk_repo.DeskSession) -> Response:
            found = await checked(conn, desk, segment, item_id)
            if isinstance(found, Response):
                return found
            kind, client = found
            try:
                read = await client.read(kind.api, item_id)
            except UnknownItemError:
                return kit.refused(404, "Fiche introuvable", f"Aucune {kind.noun} ne porte cet identifiant.", desk)
            except OrientationUnavailableError:
                return unavailable(desk)
            saved = request.query_params.get("version", "")
            notice = f"Enregistré : le référentiel est à la version {saved}." if saved.isdigit() else None
            return form_page(desk, kind, item_id, kind.from_item(read.item), read.revision, notice=notice)

        return await on_desk(request, show)

    @app.post("/secretariat/referentiel/{segment}/{item_id}", include_in_schema=False)
    async def submit(request: Request, segment: str, item_id: str) -> Response:
        async def handle(conn: Conn, desk: desk_repo.DeskSession) -> Response:  # noqa: PLR0911 (one answer per outcome)
            found = await checked(conn, desk, segment, item_id)
            if isinstance(found, Response):
                return found
            kind, client = found
            fields = _fields(await request.form())
            sent = (fields.get("csrf") or [""])[-1]
            if not hmac.compare_digest(sent, desk.csrf_token):
                await audit(conn, desk, kind.action, "CSRF_REJECTED", item_id)
                return kit.refused(403, "Formulaire expiré", "Rechargez la page puis recommencez.", desk)
            form = kind.fields(fields)
            revision = (fields.get("revision") or [""])[-1]
            owner = item_id
            try:
                current = await client.read(kind.api, item_id)
                # The structure an offer belongs to is the one its edits are journalled under.
                owner = str(current.item.get("structure_id", item_id))
                body = kind.payload(current.item, form)
                key = preview_key(body, revision)
                saving = (fields.get("etape") or [""])[-1] == "enregistrer"
                if saving and hmac.compare_digest(key, (fields.get("apercu") or [""])[-1]):
                    done = await client.put(
                        kind.api, item_id, body, revision=revision, dry_run=False, on_behalf_of=desk.principal
                    )
                    await audit(conn, desk, kind.action, "SAVED" if done.created else "UNCHANGED", owner)
                    log.info(
                        "referential_edited_from_desk", item_id=item_id, version=done.version, created=done.created
                    )
                    return RedirectResponse(
                        f"/secretariat/referentiel/{kind.segment}/{item_id}?version={done.version}", status_code=303
                    )
                diff = await client.put(
                    kind.api, item_id, body, revision=revision, dry_run=True, on_behalf_of=desk.principal
                )
                await audit(conn, desk, kind.action, "PREVIEWED", owner)
                notice = "Le formulaire a changé depuis l'aperçu : vérifiez ces modifications." if saving else None
                return form_page(desk, kind, item_id, form, revision, changes=diff.changes, key=key, notice=notice)
            except UnknownItemError:
                return kit.refused(404, "Fiche introuvable", f"Aucune {kind.noun} ne porte cet identifiant.", desk)
            except OrientationUnavailableError:
                await audit(conn, desk, kind.action, "UNAVAILABLE", owner)
                return unavailable(desk)
            except (EditFormError, RejectedChangeError) as error:
                await audit(conn, desk, kind.action, "INVALID", owner)
                return form_page(desk, kind, item_id, form, revision, status=422, problems=tuple(error.problems))
            except StaleItemError:
                await audit(conn, desk, kind.action, "STALE", owner)
                try:
                    fresh = await client.read(kind.api, item_id)
                except (UnknownItemError, OrientationUnavailableError):
                    return unavailable(desk)
                notice = (
                    f"Cette {kind.noun} a été modifiée par quelqu'un d'autre depuis que vous l'avez ouverte"
                    f" (référentiel version {fresh.version}) : rien n'a été enregistré. Vos saisies sont conservées"
                    " ci-dessous ; « Voir les modifications » les compare à la version actuelle."
                )
                return form_page(desk, kind, item_id, form, fresh.revision, status=409, notice=notice)

        return await on_desk(request, handle)
