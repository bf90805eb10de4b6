"""The CCAPEX secretariat's desk: its sign-in, its lists, a procedure's structures, the audit log.

- ``GET|POST /secretariat/connexion``: a member of the secretariat signs in with its personal token
  (orientation's tokens file format: SHA-256 hashes with roles ``ccapex-admin`` / ``ccapex-viewer``).
  The token travels in the form's body only; the session is the partners' (same cookie, same expiry),
  with the role stored in it. The sign-in form is protected by a double-submit cookie (no session yet).
- ``GET /secretariat``: procedures with no match (F1), over-capacity assignments, assignments still
  OUVERTE after N working days, refusals, urgency HIGH/CRITICAL.
- ``GET /secretariat/dossiers/<reference>``: any procedure (the CCAPEX's role) with its structures;
  ``POST …/ajouter`` and ``…/retirer`` publish orientation's override events (``ccapex-admin`` only).
- ``GET /secretariat/journal?dossier=&structure=&page=``: the audit log, filtered and paginated.
- ``/secretariat/referentiel…``: the référentiel's edition through orientation's admin API
  (``desk_referential.py``).
- ``POST /secretariat/deconnexion``.

A partner's session gets 403 on every desk page. Every view and action is audited.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from schemas import topics
from schemas.assignment import (
    AssignmentOverride,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    StatusActor,
)
from schemas.envelope import new_envelope_fields
from schemas.referential import RecordStatus
from services.orientation.domain.working_days import latest_start_due
from services.platform.db import Conn
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage, enqueue
from services.workspace import desk_repository as desk_repo
from services.workspace import repository as repo
from services.workspace.desk_referential import mount_referential_desk
from services.workspace.domain.casefile import case_facts, deadlines, stage_lines
from services.workspace.domain.desk import DESK_STRUCTURE, may_override
from services.workspace.domain.sessions import new_session
from services.workspace.double_submit import DoubleSubmit

if TYPE_CHECKING:
    from services.workspace.http import WorkspaceServices

__all__ = ["DeskKit", "mount_desk"]

log = get_logger(__name__)

PARIS = ZoneInfo("Europe/Paris")
"""The day an assignment was decided, and today, are French days (working days are)."""
_REF_MAX_LENGTH = 32
_OPEN = (AssignmentStatus.OUVERTE, AssignmentStatus.ACCEPTEE)

_DeskHandler = Callable[[Conn, desk_repo.DeskSession], Awaitable[Response]]


@dataclass(frozen=True)
class DeskKit:
    """What the desk shares with the partners' pages: the service, the page renderer, the session."""

    services: WorkspaceServices
    page: Callable[..., HTMLResponse]
    refused: Callable[..., HTMLResponse]
    current_session: Callable[[Conn, Request], Awaitable[repo.SessionRow | None]]
    set_session_cookie: Callable[[Response, str], None]


def mount_desk(app: FastAPI, kit: DeskKit) -> None:  # noqa: PLR0915 (one closure per page)
    """Add the desk's pages to the workspace's app."""
    services = kit.services

    async def audit(
        conn: Conn, action: str, outcome: str, session_id: uuid.UUID | None, procedure_id: uuid.UUID | None = None
    ) -> None:
        await repo.audit(
            conn,
            at=services.now(),
            action=action,
            outcome=outcome,
            session_id=session_id,
            structure_id=DESK_STRUCTURE,
            procedure_id=procedure_id,
        )

    async def on_desk(request: Request, handler: _DeskHandler) -> Response:
        async with services.pool().acquire() as conn, conn.transaction():
            session = await kit.current_session(conn, request)
            if session is None:
                return RedirectResponse("/secretariat/connexion", status_code=303)
            desk = await desk_repo.desk_session(conn, session.session_id)
            if desk is None:
                await repo.audit(
                    conn,
                    at=services.now(),
                    action="DESK",
                    outcome="DENIED",
                    session_id=session.session_id,
                    structure_id=session.structure_id,
                )
                log.info("desk_denied", structure_id=session.structure_id)
                return kit.refused(
                    403, "Accès refusé", "Ces pages sont réservées au secrétariat de la CCAPEX.", session
                )
            return await handler(conn, desk)

    async def csrf_ok(conn: Conn, request: Request, desk: desk_repo.DeskSession, action: str) -> dict[str, Any] | None:
        form = dict(await request.form())
        sent = form.get("csrf")
        if isinstance(sent, str) and hmac.compare_digest(sent, desk.csrf_token):
            return form
        await audit(conn, action, "CSRF_REJECTED", desk.session_id)
        return None

    sign_in_nonce = DoubleSubmit("prevex_desk_login", path="/secretariat", secure=services.cookie_secure)

    def sign_in_page(status: int = 200, error: str | None = None) -> Response:
        return sign_in_nonce.issue(lambda nonce: kit.page("desk_signin.html", status, nonce=nonce, error=error))

    @app.get("/secretariat/connexion", include_in_schema=False)
    async def sign_in_form() -> Response:
        return sign_in_page()

    @app.post("/secretariat/connexion", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        token = form.get("jeton")
        async with services.pool().acquire() as conn, conn.transaction():
            if not sign_in_nonce.matches(request, form):
                await audit(conn, "DESK_SIGN_IN", "CSRF_REJECTED", None)
                return sign_in_page(403, "Le formulaire a expiré : recommencez.")
            principal = services.desk_tokens.authenticate(token) if isinstance(token, str) and token else None
            if principal is None:
                await audit(conn, "DESK_SIGN_IN", "INVALID", None)
                log.info("desk_sign_in_refused")
                return sign_in_page(401, "Ce jeton n'est pas reconnu.")
            role = min(principal.roles)  # ccapex-admin sorts before ccapex-viewer: the strongest role
            fresh = new_session()
            session_id = uuid.uuid4()
            await repo.create_session(
                conn,
                session_id=session_id,
                secret_hash=fresh.secret_hash,
                structure_id=DESK_STRUCTURE,
                csrf_token=fresh.csrf_token,
                now=services.now(),
                role=role.value,
                principal=principal.name,
            )
            await audit(conn, "DESK_SIGN_IN", "SESSION_STARTED", session_id)
        log.info("desk_session_started", principal=principal.name, role=role.value, session_id=str(session_id))
        response = RedirectResponse("/secretariat", status_code=303)
        kit.set_session_cookie(response, fresh.secret)
        sign_in_nonce.clear(response)
        return response

    @app.get("/secretariat", include_in_schema=False)
    async def lists(request: Request) -> Response:
        async def show(conn: Conn, desk: desk_repo.DeskSession) -> Response:
            today = services.now().astimezone(PARIS).date()
            found = await desk_repo.desk_lists(
                conn, overdue_decided_by=latest_start_due(today, services.desk_overdue_days)
            )
            await audit(conn, "DESK_VIEW_LISTS", "OK", desk.session_id)
            return kit.page("desk.html", session=desk, lists=found, overdue_days=services.desk_overdue_days)

        return await on_desk(request, show)

    async def procedure_or_none(conn: Conn, ref: str) -> repo.ProcedureRow | None:
        plausible = 0 < len(ref) <= _REF_MAX_LENGTH and "\x00" not in ref
        return await repo.procedure_by_ref(conn, ref) if plausible else None

    def unknown(desk: desk_repo.DeskSession) -> HTMLResponse:
        return kit.refused(404, "Dossier introuvable", "Aucun dossier ne porte cette référence.", desk)

    @app.get("/secretariat/dossiers/{ref}", include_in_schema=False)
    async def procedure(request: Request, ref: str) -> Response:
        async def show(conn: Conn, desk: desk_repo.DeskSession) -> Response:
            found = await procedure_or_none(conn, ref)
            if found is None:
                await audit(conn, "DESK_VIEW_CASE", "UNKNOWN", desk.session_id)
                return unknown(desk)
            assignments = await repo.assignments_of(conn, found.procedure_id)
            holding = {a.structure_id for a in assignments if a.status in _OPEN}
            active = (s for s in await repo.referential(conn) if s.status is RecordStatus.ACTIVE)
            addable = sorted((s for s in active if s.structure_id not in holding), key=lambda s: s.nom)
            stages = await repo.stages_of(conn, found.procedure_id)
            await audit(conn, "DESK_VIEW_CASE", "OK", desk.session_id, found.procedure_id)
            record = found.record
            return kit.page(
                "desk_case.html",
                session=desk,
                procedure=found,
                facts=case_facts(record) if record else None,
                deadlines=deadlines(record, stages, services.now().date()),
                stages=stage_lines(stages),
                warnings=(),  # the partners' warnings are chosen per structure; ops' codes are not for pages
                assignments=assignments,
                open_statuses=_OPEN,
                addable=addable,
                may_override=may_override(desk.role),
            )

        return await on_desk(request, show)

    @app.post("/secretariat/dossiers/{ref}/{verb}", include_in_schema=False)
    async def override(request: Request, ref: str, verb: str) -> Response:
        async def handle(conn: Conn, desk: desk_repo.DeskSession) -> Response:
            kind = {"ajouter": AssignmentOverride.ADD, "retirer": AssignmentOverride.REMOVE}.get(verb)
            if kind is None:
                return kit.refused(404, "Page introuvable", "Cette action n'existe pas.", desk)
            action = f"DESK_{kind.value}"
            form = await csrf_ok(conn, request, desk, action)
            if form is None:
                return kit.refused(403, "Formulaire expiré", "Rechargez la page puis recommencez.", desk)
            found = await procedure_or_none(conn, ref)
            if found is None:
                await audit(conn, action, "UNKNOWN", desk.session_id)
                return unknown(desk)
            if not may_override(desk.role):
                await audit(conn, action, "NOT_ALLOWED", desk.session_id, found.procedure_id)
                return kit.refused(
                    403, "Action réservée", "Seuls les administrateurs de la CCAPEX modifient l'orientation.", desk
                )
            change = await _override_change(conn, kind, found.procedure_id, form.get("structure"))
            if change is None:
                await audit(conn, action, "STRUCTURE_UNKNOWN", desk.session_id, found.procedure_id)
                return kit.refused(400, "Action impossible", "Choisissez une structure dans la liste proposée.", desk)
            event = AssignmentStatusEvent(
                **new_envelope_fields("workspace", correlation_id=found.correlation_id, now=services.now()),
                payload=change,
            )
            await enqueue(
                conn, "workspace", [OutboxMessage.of(topics.ASSIGNMENT_STATUS, str(found.procedure_id), event)]
            )
            await audit(conn, action, "PUBLISHED", desk.session_id, found.procedure_id)
            log.info("ccapex_override_requested", override=kind.value, structure_id=change.structure_id)
            return RedirectResponse(f"/secretariat/dossiers/{found.short_ref}", status_code=303)

        return await on_desk(request, handle)

    @app.get("/secretariat/journal", include_in_schema=False)
    async def journal(request: Request, dossier: str = "", structure: str = "", page: str = "1") -> Response:
        async def show(conn: Conn, desk: desk_repo.DeskSession) -> Response:
            ref, structure_id = dossier.strip()[:_REF_MAX_LENGTH] or None, structure.strip()[:64] or None
            at, lines = await desk_repo.audit_lines(
                conn, short_ref=ref, structure_id=structure_id, requested_page=page[:6]
            )
            await audit(conn, "DESK_VIEW_AUDIT", "OK", desk.session_id)
            return kit.page("desk_journal.html", session=desk, lines=lines, at=at, dossier=ref, structure=structure_id)

        return await on_desk(request, show)

    mount_referential_desk(app, kit, on_desk)

    @app.post("/secretariat/deconnexion", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        async def end(conn: Conn, desk: desk_repo.DeskSession) -> Response:
            if await csrf_ok(conn, request, desk, "SIGN_OUT") is None:
                return kit.refused(403, "Formulaire expiré", "Rechargez la page puis recommencez.", desk)
            await repo.end_session(conn, desk.session_id, services.now())
            await audit(conn, "SIGN_OUT", "OK", desk.session_id)
            response = kit.page("message.html", title="Déconnecté", message="Vous êtes déconnecté.")
            response.delete_cookie(services.cookie_name, path="/", secure=services.cookie_secure, httponly=True)
            return response

        return await on_desk(request, end)


async def _override_change(
    conn: Conn, kind: AssignmentOverride, procedure_id: uuid.UUID, structure: object
) -> AssignmentStatusChange | None:
    """The override of ``structure`` on the procedure: ADD for a known, active structure that does not hold
    it open; REMOVE for one that holds it open. ``None`` for anything else (unknown, malformed, or moot)."""
    if not isinstance(structure, str) or not structure or len(structure) > 64:
        return None
    if kind is AssignmentOverride.REMOVE:
        held = [
            a
            for a in await repo.assignments_of(conn, procedure_id)
            if a.structure_id == structure and a.status in _OPEN
        ]
        if not held:
            return None
        return AssignmentStatusChange(
            assignment_id=held[-1].assignment_id,
            procedure_id=procedure_id,
            structure_id=structure,
            status=AssignmentStatus.CLOTUREE,
            by=StatusActor.CCAPEX,
            override=kind,
        )
    record = await repo.structure(conn, structure)
    if record is None or record.status is not RecordStatus.ACTIVE:
        return None
    return AssignmentStatusChange(
        procedure_id=procedure_id,
        structure_id=structure,
        status=AssignmentStatus.OUVERTE,
        by=StatusActor.CCAPEX,
        override=kind,
    )
