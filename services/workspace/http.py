"""The partner workspace's pages: server-rendered French HTML (Jinja2), the only service facing the internet.

- ``GET /d/<token>``: an alert's link. A valid token starts a session for the assignment's structure
  (cookie: HttpOnly, SameSite=Lax, Secure unless configured off for http on the loopback; idle and
  absolute expiry, a server-side row keeping only the cookie's hash) and redirects (303) to the case
  page, so that neither the token nor anything personal stays in the address bar. A malformed, altered,
  guessed or another structure's token → 403; a genuine but expired one → 410, a page offering to send a
  new link to the structure's contact.
- ``POST /d/<token>/nouveau-lien``: that offer. Only a genuine, expired token asks (``link_requests``:
  the structure must still hold the assignment, one request per assignment per
  ``link_request_interval``); the notifier sends the new link to the contact the référentiel names, and
  the page never shows that contact's address. The form is protected by a double-submit cookie (there is
  no session yet).
- ``GET /d``: the digests' link, to ``/`` (the list when signed in, a welcome page otherwise).
- ``GET /dossiers``: the structure's open assignments, most urgent first.
- ``GET /dossiers/<reference>``: the case as the structure may see it; **need-to-know**: only a
  structure that is or was assigned the procedure sees it (403 otherwise, the same page whether the
  procedure exists or not).
- ``POST /dossiers/<reference>/accepter|refuser|cloturer``: publishes ``assignment.status`` through the
  outbox; the page shows the new status once the event came back and was folded with orientation's rules.
- ``GET /referentiel``: structures and offers, searchable by name, stage, kind and commune.
- ``POST /deconnexion``: ends the session.

Every form carries the session's CSRF token. Every view and action is written to the audit log. URLs
hold references and codes only; nothing a partner types is logged.
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any, Final

import asyncpg
import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.datastructures import FormData
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from schemas import topics
from schemas.assignment import AssignmentStatus, AssignmentStatusEvent
from schemas.envelope import new_envelope_fields
from schemas.referential import StructureTypology
from schemas.stages import Stage, stage_label
from schemas.warnings import partner_warnings, warning_texts
from services.orientation.auth import TokenRegistry
from services.platform.db import Conn
from services.platform.links import ExpiredLinkError, InvalidLinkError, LinkKeys, read_link, verify_link
from services.platform.logging import get_logger
from services.platform.outbox import OutboxMessage, enqueue
from services.workspace import repository as repo
from services.workspace.desk import DeskKit, mount_desk
from services.workspace.domain.actions import (
    CLOSURE_REASONS,
    COMMENT_MAX_LENGTH,
    REFUSAL_REASONS,
    Action,
    ActionError,
    allowed_actions,
    status_change,
)
from services.workspace.domain.casefile import (
    case_facts,
    deadlines,
    french_date,
    stage_lines,
    urgency_rank,
    why_assigned,
)
from services.workspace.domain.labels import label
from services.workspace.domain.link_requests import HELD_STATUSES, LinkRequestVerdict
from services.workspace.domain.referential import CommuneFinder, search_structures
from services.workspace.domain.sessions import SessionPolicy, hash_secret, new_session
from services.workspace.double_submit import DoubleSubmit
from services.workspace.link_requests import AUDIT_ACTION as REQUEST_LINK
from services.workspace.link_requests import request_new_link
from services.workspace.referential_admin import ReferentialAdmin

__all__ = ["PRODUCER", "SCHEMA", "WorkspaceServices", "create_app"]

SCHEMA = "workspace"
PRODUCER = "workspace"

MAX_FORM_BYTES = 16_384
"""A larger form body is refused (413) before it is read."""

_ACTION_PATHS: Final[Mapping[str, Action]] = {
    "accepter": Action.ACCEPT,
    "refuser": Action.REFUSE,
    "cloturer": Action.CLOSE,
}
_OPEN = (AssignmentStatus.OUVERTE, AssignmentStatus.ACCEPTEE)

_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

log = get_logger(__name__)

_SignedIn = Callable[[Conn, Request, "repo.SessionRow"], Awaitable[Response]]
"""A page's handler, called with a live session inside the request's transaction."""


@dataclass(frozen=True)
class WorkspaceServices:
    """What the pages need from the running service. ``pool`` is a function: the pool only exists once
    the service started, after the app was built. ``now`` is the service's one clock."""

    pool: Callable[[], asyncpg.Pool]
    link_keys: LinkKeys
    sessions: SessionPolicy
    cookie_secure: bool
    now: Callable[[], datetime]
    desk_tokens: TokenRegistry = field(default_factory=TokenRegistry.empty)
    desk_overdue_days: int = 5
    referential_admin: ReferentialAdmin | None = None
    """Orientation's admin API for the desk's référentiel forms; ``None``: not configured, no forms."""
    link_request_interval: timedelta = timedelta(minutes=15)
    """An expired link asks for a new one at most once per assignment within this time."""

    @property
    def cookie_name(self) -> str:
        # The __Host- prefix makes browsers refuse the cookie unless Secure, path=/ and no Domain.
        return "__Host-prevex_session" if self.cookie_secure else "prevex_session"


class _SecurityHeaders(BaseHTTPMiddleware):
    """Headers every response carries: no framing, no sniffing, no referrer (a link's token must not
    leak), no caching of pages that show personal data, and a CSP allowing only our own stylesheet."""

    def __init__(self, app: Any, *, hsts: bool) -> None:
        super().__init__(app)
        self._hsts = hsts

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            response: Response = PlainTextResponse("Requête trop volumineuse.", status_code=413)
        else:
            response = await call_next(request)
        headers = response.headers
        headers["Content-Security-Policy"] = _CSP
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if not request.url.path.startswith("/static/"):
            headers["Cache-Control"] = "no-store"
        if self._hsts:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        return response


def _templates() -> jinja2.Environment:
    folder = files("services.workspace") / "templates"
    sources = {entry.name: entry.read_text("utf-8") for entry in folder.iterdir() if entry.name.endswith(".html")}
    env = jinja2.Environment(
        loader=jinja2.DictLoader(sources),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["label"] = label
    env.filters["stage"] = stage_label
    env.filters["day"] = french_date
    return env


def create_app(services: WorkspaceServices) -> FastAPI:  # noqa: PLR0915 (one closure per page)
    """The workspace's ASGI app (no OpenAPI: these are pages, not an API)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_SecurityHeaders, hsts=services.cookie_secure)
    env = _templates()
    stylesheet = (files("services.workspace") / "static" / "style.css").read_text("utf-8")

    def page(name: str, status: int = 200, session: repo.SessionRow | None = None, **values: Any) -> HTMLResponse:
        html = env.get_template(name).render(session=session, **values)
        return HTMLResponse(html, status_code=status)

    def refused(status: int, title: str, message: str, session: repo.SessionRow | None = None) -> HTMLResponse:
        return page("message.html", status, session, title=title, message=message)

    async def current_session(conn: Conn, request: Request) -> repo.SessionRow | None:
        secret = request.cookies.get(services.cookie_name)
        if not secret:
            return None
        session = await repo.session_by_hash(conn, hash_secret(secret))
        now = services.now()
        if session is None:
            return None
        if not services.sessions.alive(created_at=session.created_at, last_seen_at=session.last_seen_at, now=now):
            await repo.end_session(conn, session.session_id, now)
            return None
        await repo.touch_session(conn, session.session_id, now)
        return session

    async def signed_in(request: Request, handler: _SignedIn) -> Response:
        async with services.pool().acquire() as conn, conn.transaction():
            session = await current_session(conn, request)
            if session is None:
                return refused(
                    401,
                    "Session terminée",
                    "Votre session a expiré ou n'existe pas. Ouvrez à nouveau le lien reçu dans une alerte.",
                )
            if session.role is not None:
                return RedirectResponse("/secretariat", status_code=303)  # the desk's own pages
            return await handler(conn, request, session)

    async def audit(
        conn: Conn,
        action: str,
        /,
        outcome: str,
        session: repo.SessionRow | None = None,
        procedure_id: uuid.UUID | None = None,
        *,
        structure_id: str | None = None,
    ) -> None:
        await repo.audit(
            conn,
            at=services.now(),
            action=action,
            outcome=outcome,
            session_id=session.session_id if session else None,
            structure_id=session.structure_id if session else structure_id,
            procedure_id=procedure_id,
        )

    @app.get("/health", include_in_schema=False)
    async def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/static/style.css", include_in_schema=False)
    async def style() -> Response:
        return Response(stylesheet, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        async with services.pool().acquire() as conn, conn.transaction():
            if await current_session(conn, request) is not None:
                return RedirectResponse("/dossiers", status_code=303)
        return page("welcome.html")

    @app.get("/d", include_in_schema=False)
    async def digest_link() -> Response:
        # The digests' link (the base without a token): the list when signed in, else the welcome page.
        return RedirectResponse("/", status_code=303)

    async def genuine(conn: Conn, token: str) -> tuple[repo.AssignmentRow, bool] | None:
        """The assignment ``token`` was signed for and whether its day has passed; ``None`` (audited as
        ``INVALID``) when it is malformed, altered, guessed or signed with no key we hold."""
        try:
            candidates = await repo.assignments_by_prefix(conn, read_link(token).prefix)
        except InvalidLinkError:
            candidates = []
        for assignment in candidates:
            try:
                verify_link(
                    services.link_keys,
                    token,
                    assignment_id=assignment.assignment_id,
                    structure_id=assignment.structure_id,
                    today=services.now().date(),
                )
            except InvalidLinkError:
                continue
            except ExpiredLinkError:
                return assignment, True
            return assignment, False
        await audit(conn, "OPEN_LINK", "INVALID")
        log.info("link_refused")
        return None

    def invalid_link() -> HTMLResponse:
        return refused(403, "Lien non valide", "Ce lien n'est pas valide. Utilisez le lien reçu dans l'alerte.")

    @app.get("/d/{token}", include_in_schema=False)
    async def open_link(token: str) -> Response:
        async with services.pool().acquire() as conn, conn.transaction():
            found = await genuine(conn, token)
            if found is None:
                return invalid_link()
            assignment, expired = found
            if not expired:
                return await _start_session(conn, assignment)
            await audit(
                conn, "OPEN_LINK", "EXPIRED", None, assignment.procedure_id, structure_id=assignment.structure_id
            )
            log.info("link_expired", structure_id=assignment.structure_id)
            if assignment.status not in HELD_STATUSES:
                # Nothing to offer: the structure no longer holds the file (the request would be refused).
                return page("expired.html", 410, token=token, nonce=None, error=None)
            return expired_page(token)

    link_request_nonce = DoubleSubmit("prevex_link_request", path="/d", secure=services.cookie_secure)

    def expired_page(token: str, status: int = 410, error: str | None = None) -> Response:
        """The expired link's page and its « Recevoir un nouveau lien » form, with a fresh double-submit
        nonce scoped to the links' path."""
        return link_request_nonce.issue(
            lambda nonce: page("expired.html", status, token=token, nonce=nonce, error=error)
        )

    @app.post("/d/{token}/nouveau-lien", include_in_schema=False)
    async def ask_new_link(request: Request, token: str) -> Response:
        form = await request.form()
        async with services.pool().acquire() as conn, conn.transaction():
            found = await genuine(conn, token)
            if found is None:
                return invalid_link()
            assignment, expired = found
            if not expired:
                # Still valid (the day changed, or a stale form): the link itself opens the case.
                return RedirectResponse(f"/d/{token}", status_code=303)
            if not link_request_nonce.matches(request, form):
                await audit(
                    conn,
                    REQUEST_LINK,
                    "CSRF_REJECTED",
                    None,
                    assignment.procedure_id,
                    structure_id=assignment.structure_id,
                )
                return expired_page(token, 403, "Le formulaire a expiré : recommencez.")
            result = await request_new_link(
                conn,
                assignment,
                producer=PRODUCER,
                schema=SCHEMA,
                now=services.now(),
                interval=services.link_request_interval,
            )
        response = refused(*_LINK_REQUEST_PAGES[result.verdict](services.link_request_interval))
        link_request_nonce.clear(response)
        return response

    async def _start_session(conn: Conn, assignment: repo.AssignmentRow) -> Response:
        fresh = new_session()
        session_id = uuid.uuid4()
        await repo.create_session(
            conn,
            session_id=session_id,
            secret_hash=fresh.secret_hash,
            structure_id=assignment.structure_id,
            csrf_token=fresh.csrf_token,
            now=services.now(),
        )
        await repo.audit(
            conn,
            at=services.now(),
            action="OPEN_LINK",
            outcome="SESSION_STARTED",
            session_id=session_id,
            structure_id=assignment.structure_id,
            procedure_id=assignment.procedure_id,
        )
        log.info("session_started", structure_id=assignment.structure_id, session_id=str(session_id))
        response = RedirectResponse(f"/dossiers/{assignment.short_ref}", status_code=303)
        set_session_cookie(response, fresh.secret)
        return response

    def set_session_cookie(response: Response, secret: str) -> None:
        response.set_cookie(
            services.cookie_name,
            secret,
            max_age=int(services.sessions.absolute.total_seconds()),
            path="/",
            secure=services.cookie_secure,
            httponly=True,
            samesite="lax",
        )

    @app.get("/dossiers", include_in_schema=False)
    async def my_cases(request: Request) -> Response:
        async def show(conn: Conn, _: Request, session: repo.SessionRow) -> Response:
            rows = await repo.my_cases(conn, session.structure_id, _OPEN)
            rows.sort(key=lambda r: urgency_rank(r.urgency, r.earliest_expulsion_date, r.decided_at))
            await audit(conn, "VIEW_CASES", "OK", session)
            return page("cases.html", session=session, cases=rows)

        return await signed_in(request, show)

    @app.get("/dossiers/{ref}", include_in_schema=False)
    async def case(request: Request, ref: str) -> Response:
        async def show(conn: Conn, _: Request, session: repo.SessionRow) -> Response:
            held = await held_case(conn, session, ref, "VIEW_CASE")
            if held is None:
                return _not_yours(session)
            procedure, assignments, current = held
            others: dict[str, repo.AssignmentRow] = {
                a.structure_id: a for a in assignments if a.structure_id != session.structure_id
            }
            stages = await repo.stages_of(conn, procedure.procedure_id)
            actions = await repo.latest_actions(conn, [current.assignment_id])
            structure = await repo.structure(conn, session.structure_id)
            offer_names = {o.id: o.nom for o in structure.offers} if structure else {}
            await audit(conn, "VIEW_CASE", "OK", session, procedure.procedure_id)
            record = procedure.record
            return page(
                "case.html",
                session=session,
                procedure=procedure,
                facts=case_facts(record) if record else None,
                # The warnings meant for this structure, in French (the others are ops' data-quality codes).
                warnings=warning_texts(partner_warnings(record.warnings, structure.typologie, current.offer_ids))
                if record and structure
                else (),
                stages=stage_lines(stages),
                deadlines=deadlines(record, stages, services.now().date()),
                assignment=current,
                why=why_assigned(
                    current.offer_ids,
                    offer_names,
                    mandatory=current.mandatory,
                    over_capacity=current.over_capacity,
                ),
                last_action=actions.get(current.assignment_id),
                actions=allowed_actions(current.status),
                others=list(others.values()),
                refusal_reasons=REFUSAL_REASONS,
                closure_reasons=CLOSURE_REASONS,
                comment_max=COMMENT_MAX_LENGTH,
            )

        return await signed_in(request, show)

    async def held_case(
        conn: Conn, session: repo.SessionRow, ref: str, action: str
    ) -> tuple[repo.ProcedureRow, list[repo.AssignmentRow], repo.AssignmentRow] | None:
        """The procedure ``ref``, its assignments and the session's structure's latest one — **need-to-know**:
        ``None`` (audited as denied) when the structure never held it or it does not exist."""
        # A reference is at most 32 characters (the contract's bound); PostgreSQL refuses text holding NUL.
        plausible = 0 < len(ref) <= _REF_MAX_LENGTH and "\x00" not in ref
        procedure = await repo.procedure_by_ref(conn, ref) if plausible else None
        assignments = await repo.assignments_of(conn, procedure.procedure_id) if procedure else []
        mine = [a for a in assignments if a.structure_id == session.structure_id]
        if procedure is None or not mine:
            await audit(conn, action, "DENIED", session, procedure.procedure_id if procedure else None)
            log.info("case_denied", structure_id=session.structure_id, action=action)
            return None
        return procedure, assignments, mine[-1]

    async def csrf_valid(conn: Conn, form: FormData, session: repo.SessionRow, action: str) -> bool:
        """Whether the form carries the session's CSRF token; a form without it is audited."""
        sent = form.get("csrf")
        if isinstance(sent, str) and hmac.compare_digest(sent, session.csrf_token):
            return True
        await audit(conn, action, "CSRF_REJECTED", session)
        return False

    def _form_expired(session: repo.SessionRow) -> HTMLResponse:
        return refused(403, "Formulaire expiré", "Rechargez la page puis recommencez.", session)

    def _not_yours(session: repo.SessionRow) -> HTMLResponse:
        return refused(
            403,
            "Accès refusé",
            "Ce dossier n'est pas orienté vers votre structure : vous ne pouvez pas le consulter.",
            session,
        )

    @app.post("/dossiers/{ref}/{verb}", include_in_schema=False)
    async def act(request: Request, ref: str, verb: str) -> Response:
        async def handle(conn: Conn, _: Request, session: repo.SessionRow) -> Response:
            action = _ACTION_PATHS.get(verb)
            if action is None:
                return refused(404, "Page introuvable", "Cette action n'existe pas.", session)
            form = await request.form()
            if not await csrf_valid(conn, form, session, action.value):
                return _form_expired(session)
            held = await held_case(conn, session, ref, action.value)
            if held is None:
                return _not_yours(session)
            procedure, current = held[0], held[2]
            reason = _text(form.get("reason"))
            comment = _text(form.get("comment"))
            try:
                _check_comment(comment)
                change = status_change(
                    action,
                    assignment_id=current.assignment_id,
                    procedure_id=procedure.procedure_id,
                    structure_id=session.structure_id,
                    current=current.status,
                    reason=reason,
                )
            except ActionError as error:
                await audit(conn, action.value, error.code, session, procedure.procedure_id)
                log.info("action_refused", action=action.value, code=error.code)
                return refused(
                    409 if error.code == "NOT_ALLOWED" else 400,
                    "Action impossible",
                    _ACTION_ERRORS[error.code],
                    session,
                )
            event = AssignmentStatusEvent(
                **new_envelope_fields(PRODUCER, correlation_id=procedure.correlation_id, now=services.now()),
                payload=change,
            )
            await repo.record_action(
                conn,
                event_id=event.event_id,
                assignment_id=current.assignment_id,
                session_id=session.session_id,
                action=action.value,
                reason=reason,
                comment=comment,
                now=services.now(),
            )
            await enqueue(
                conn, SCHEMA, [OutboxMessage.of(topics.ASSIGNMENT_STATUS, str(procedure.procedure_id), event)]
            )
            await audit(conn, action.value, "PUBLISHED", session, procedure.procedure_id)
            log.info("assignment_status_requested", action=action.value, event_id=str(event.event_id))
            return RedirectResponse(f"/dossiers/{procedure.short_ref}", status_code=303)

        return await signed_in(request, handle)

    @app.get("/referentiel", include_in_schema=False)
    async def referential(
        request: Request, q: str = "", etape: str = "", type: str = "", commune: str = ""
    ) -> Response:
        async def show(conn: Conn, _: Request, session: repo.SessionRow) -> Response:
            stage = Stage(etape) if etape in Stage.__members__ else None
            kind = StructureTypology(type) if type in StructureTypology.__members__ else None
            place = commune.strip()[:100]
            finder = CommuneFinder.packaged()
            communes = finder.find(place) if place else None
            records = await repo.referential(conn)
            await audit(conn, "VIEW_REFERENTIAL", "OK", session)
            return page(
                "referential.html",
                session=session,
                cards=search_structures(
                    records, text=q[:100], stage=stage, kind=kind, communes=communes, commune_name=finder.name
                ),
                version=max((r.referentiel_version for r in records), default=None),
                query=q[:100],
                stage=stage,
                kind=kind,
                commune=place,
                communes=communes,
                stages=list(Stage),
                kinds=list(StructureTypology),
            )

        return await signed_in(request, show)

    @app.post("/deconnexion", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        async def end(conn: Conn, _: Request, session: repo.SessionRow) -> Response:
            if not await csrf_valid(conn, await request.form(), session, "SIGN_OUT"):
                return _form_expired(session)
            await repo.end_session(conn, session.session_id, services.now())
            await audit(conn, "SIGN_OUT", "OK", session)
            response = page("message.html", title="Déconnecté", message="Vous êtes déconnecté.")
            response.delete_cookie(services.cookie_name, path="/", secure=services.cookie_secure, httponly=True)
            return response

        return await signed_in(request, end)

    mount_desk(
        app,
        DeskKit(
            services=services,
            page=page,
            refused=refused,
            current_session=current_session,
            set_session_cookie=set_session_cookie,
        ),
    )
    return app


_ACTION_ERRORS: Final[Mapping[str, str]] = {
    "NOT_ALLOWED": "Le statut actuel de l'orientation ne permet pas cette action.",
    "REASON_REQUIRED": "Choisissez un motif dans la liste.",
    "REASON_UNKNOWN": "Ce motif n'existe pas : choisissez-en un dans la liste.",
    "COMMENT_TOO_LONG": f"Le commentaire dépasse {COMMENT_MAX_LENGTH} caractères.",
    "COMMENT_INVALID": "Le commentaire contient des caractères de contrôle : retirez-les.",
}


def _minutes(interval: timedelta) -> str:
    minutes = max(1, round(interval.total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


# The answer to « Recevoir un nouveau lien »: status, title and message. None names or shows the contact.
_LINK_REQUEST_PAGES: Final[Mapping[LinkRequestVerdict, Callable[[timedelta], tuple[int, str, str]]]] = {
    LinkRequestVerdict.SENT: lambda _: (
        202,
        "Nouveau lien envoyé",
        "Un nouveau lien a été envoyé au contact de votre structure : par courriel, ou par SMS si votre"
        " structure n'est jointe que par SMS. Il ouvre le même dossier.",
    ),
    LinkRequestVerdict.TOO_SOON: lambda interval: (
        429,
        "Nouveau lien déjà envoyé",
        "Un nouveau lien a déjà été envoyé au contact de votre structure il y a moins de"
        f" {_minutes(interval)} : consultez sa messagerie avant d'en demander un autre.",
    ),
    LinkRequestVerdict.NOT_HELD: lambda _: (
        409,
        "Dossier plus suivi par votre structure",
        "Ce dossier n'est plus orienté vers votre structure (orientation refusée, expirée ou clôturée, ou"
        " dossier clos) : aucun nouveau lien n'est envoyé. Pour toute question, contactez le secrétariat"
        " de la CCAPEX.",
    ),
}

_REF_MAX_LENGTH = 32
# Control characters but tab and line breaks (a NUL cannot even be stored).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_comment(comment: str | None) -> None:
    if comment is None:
        return
    if len(comment) > COMMENT_MAX_LENGTH:
        raise ActionError("COMMENT_TOO_LONG", f"at most {COMMENT_MAX_LENGTH} characters")
    if _CONTROL.search(comment):
        raise ActionError("COMMENT_INVALID", "control characters")


def _text(value: Any) -> str | None:
    """A form field as stripped text; absent, empty or a file upload → ``None``."""
    return value.strip() or None if isinstance(value, str) else None
