"""The admin API of orientation: the référentiel (read, create, update, suspend), simulate, assignments.

Every request but ``GET /health`` (and the operations routes ``/health/live``, ``/health/ready``, ``/metrics``,
which are not in this document) carries ``Authorization: Bearer <token>`` (``auth.py``): no or an
unknown token → 401; a token without the role → 403. Reading and simulating need ``ccapex-viewer`` or
``ccapex-admin``; changing needs ``ccapex-admin``.

Every change is one new référentiel version (``referential_store.commit_referential``): validated as a
whole, published on the compacted référentiel topic, and used at once by this process (other
processes and replicas load it at their next batch or request). A change that changes nothing makes
no version. Responses carry the version and, for one structure or offer, its revision as ``ETag``;
send it back as ``If-Match`` to refuse the change if someone else changed the item meanwhile (412).

Errors: 422 lists every problem with its path (``body.contacts[0].email`` for the request,
``referential.offers[4](id=PJ90-INFO).structure_id`` when the change would break the référentiel),
404 unknown id, 409 id already used. Bodies are validated strictly, like the YAML file: ``"50"`` is not
a priority. Nothing a request carries is logged but ids and the caller's token name.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError
from pydantic.json_schema import models_json_schema

from schemas.procedure import ProcedureNotice, ProcedureNotification
from schemas.referential import RecordStatus
from services.orientation import referential_repository as ref_repo
from services.orientation import repository as repo
from services.orientation.auth import Principal, Role, TokenRegistry
from services.orientation.domain.diff import EntityKind, diff_referentials
from services.orientation.domain.matching import DEFAULT_CAP
from services.orientation.domain.referential import INT4_MAX, Offer, Referential, Structure
from services.orientation.domain.referential_yaml import (
    ReferentialError,
    assemble_referential,
    dump_referential,
    load_referential,
)
from services.orientation.referential_store import (
    ActiveReferential,
    Change,
    Commit,
    ReferentialHolder,
    commit_referential,
    load_active,
)
from services.orientation.simulate import SimulationOut, parse_canonical, read_state, run_simulation
from services.platform.clock import SYSTEM_CLOCK, Clock
from services.platform.logging import get_logger

__all__ = ["API_TITLE", "OPENAPI_PATH", "AdminServices", "create_app", "openapi_document"]

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"

API_TITLE = "prevex orientation admin API"
API_VERSION = "1.0"

log = get_logger(__name__)

T = TypeVar("T", Structure, Offer)
Item = Structure | Offer


@dataclass(frozen=True)
class AdminServices:
    """What the API needs from the running service. ``pool`` is a function: the pool only exists once
    the service started, after the app was built. ``clock`` dates the week whose capacity ``simulate`` reads."""

    pool: Callable[[], asyncpg.Pool]
    holder: ReferentialHolder
    tokens: TokenRegistry
    max_structures: int
    clock: Clock = SYSTEM_CLOCK


# --------------------------------------------------------------------------------------------- models


class Problem(BaseModel):
    path: str = Field(description="Where: body.<field> or referential.<collection>[i](id=…).<field>")
    message: str


class ValidationProblems(BaseModel):
    detail: str
    errors: list[Problem]


class ErrorOut(BaseModel):
    detail: str


class VersionOut(BaseModel):
    version: int
    content_hash: str
    source: str
    author: str
    default_referent: str | None
    changes: list[str] = Field(description="One line per changed structure or offer")
    created_at: datetime


class ReferentialOut(BaseModel):
    current: VersionOut
    structures: int
    offers: int


class Entry(BaseModel, Generic[T]):
    revision: int = Field(description="The référentiel version this item last changed in (its ETag)")
    item: T


class ItemList(BaseModel, Generic[T]):
    referentiel_version: int
    items: list[Entry[T]]


class ItemOut(BaseModel, Generic[T]):
    referentiel_version: int
    revision: int
    item: T


class ChangeOut(BaseModel, Generic[T]):
    referentiel_version: int = Field(description="The version now current")
    version_created: bool = Field(description="False when the request changed nothing")
    changes: list[str] = Field(description="The diff, for a person")
    revision: int
    item: T


class ImportOut(BaseModel):
    referentiel_version: int
    version_created: bool
    dry_run: bool
    changes: list[str]


class DiffOut(BaseModel):
    from_version: int
    to_version: int
    changes: list[str]


class HistoryOut(BaseModel):
    from_status: str | None
    to_status: str
    reason: str | None
    actor: str
    override: str | None
    event_id: uuid.UUID | None
    changed_at: datetime


class AssignmentOut(BaseModel):
    assignment_id: uuid.UUID
    structure_id: str
    offer_ids: list[str]
    status: str
    origin: str
    mandatory: bool
    referentiel_version: int
    explanation: str
    created_at: datetime
    history: list[HistoryOut]


class ProcedureAssignmentsOut(BaseModel):
    procedure_id: uuid.UUID
    removed_structures: list[str]
    assignments: list[AssignmentOut]


class HealthOut(BaseModel):
    status: str
    referentiel_version: int | None


class YamlResponse(PlainTextResponse):
    media_type = "application/yaml"


# What the YAML text holds, as a parser of it reads it (stage lists may be written as "A..B" ranges).
_YAML_FILE = {
    "application/yaml": {
        "schema": {
            "type": "object",
            "required": ["default_referent", "structures"],
            "properties": {
                "default_referent": {"type": "string"},
                "structures": {"type": "array", "items": {"type": "object"}},
                "offers": {"type": "array", "items": {"type": "object"}},
            },
        }
    }
}


# ------------------------------------------------------------------------------------------ errors


class InvalidRequestError(Exception):
    """A 422 with every problem's path."""

    def __init__(self, detail: str, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems


def _body_problems(error: ValidationError) -> list[tuple[str, str]]:
    return [(_path("body", e["loc"]), e["msg"].removeprefix("Value error, ")) for e in error.errors()]


def _path(root: str, loc: Sequence[int | str]) -> str:
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _referential_invalid(error: ReferentialError) -> InvalidRequestError:
    problems = [(f"referential.{path}" if path else "referential", message) for path, message in error.problems]
    return InvalidRequestError("the change would make the référentiel invalid", problems)


# ----------------------------------------------------------------------------------- authentication

_bearer = HTTPBearer(auto_error=False, description="An admin token (python -m services.orientation.cli token new)")


def _services(request: Request) -> AdminServices:
    services: AdminServices = request.app.state.services
    return services


def _principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    found = _services(request).tokens.authenticate(credentials.credentials) if credentials else None
    if found is None:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return found


def _requires(*allowed: Role) -> Callable[[Principal], Principal]:
    def check(who: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not who.roles & set(allowed):
            raise HTTPException(403, f"this token lacks the role {' or '.join(allowed)}")
        return who

    return check


Reader = Annotated[Principal, Depends(_requires(Role.ADMIN, Role.VIEWER))]
Admin = Annotated[Principal, Depends(_requires(Role.ADMIN))]
OnBehalfOf = Annotated[
    str | None,
    Header(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$",
        description="The person a calling service acts for (the workspace's desk: the member's token name),"
        " recorded in the version's source beside the token's name as its author",
    ),
]
DryRun = Annotated[bool, Query(description="Validate and answer the diff against the current version; save nothing")]
IfMatch = Annotated[str | None, Header(description="The ETag read before: refuses the change if the item changed")]
# Versions are int4 in PostgreSQL: a larger one is a 422 here, not a database error.
Version = Annotated[
    int | None, Query(ge=1, le=INT4_MAX, description="A référentiel version (default: the current one)")
]

_INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationProblems}}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}


def _json_content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


# A route that answers YAML still answers its errors in JSON: declared by content, not by model, or FastAPI
# would document them with the route's own media type.
_JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or an unknown bearer token", "content": _json_content(ErrorOut)},
    403: {"description": "The token lacks the role", "content": _json_content(ErrorOut)},
    404: {"description": "No such version", "content": _json_content(ErrorOut)},
    422: {"description": "Invalid request", "content": _json_content(ValidationProblems)},
}


# ------------------------------------------------------------------------------------ collections


@dataclass(frozen=True)
class _Collection:
    """Structures or offers: where they sit in a référentiel, and their response models."""

    entity: EntityKind
    path: str
    model: type[Structure] | type[Offer]
    list_model: type[BaseModel]
    item_model: type[BaseModel]
    change_model: type[BaseModel]

    @property
    def name(self) -> str:
        return self.entity.value

    def items(self, referential: Referential) -> tuple[Item, ...]:
        return referential.structures if self.entity is EntityKind.STRUCTURE else referential.offers

    def find(self, referential: Referential, item_id: str) -> Item | None:
        return next((item for item in self.items(referential) if item.id == item_id), None)

    def with_item(self, referential: Referential, item: Item) -> Referential:
        """``referential`` with ``item`` in place of the one with its id (or appended), validated as a whole."""
        current = self.items(referential)
        replaced = [item if existing.id == item.id else existing for existing in current]
        if all(existing.id != item.id for existing in current):
            replaced.append(item)
        structures = [s for s in replaced if isinstance(s, Structure)] if self.entity is EntityKind.STRUCTURE else None
        offers = [o for o in replaced if isinstance(o, Offer)] if self.entity is EntityKind.OFFER else None
        try:
            return assemble_referential(
                referential.default_referent,
                structures if structures is not None else referential.structures,
                offers if offers is not None else referential.offers,
            )
        except ReferentialError as error:
            raise _referential_invalid(error) from None


STRUCTURES = _Collection(
    EntityKind.STRUCTURE, "structures", Structure, ItemList[Structure], ItemOut[Structure], ChangeOut[Structure]
)
OFFERS = _Collection(EntityKind.OFFER, "offers", Offer, ItemList[Offer], ItemOut[Offer], ChangeOut[Offer])


# ------------------------------------------------------------------------------------------- app


def create_app(services: AdminServices) -> FastAPI:
    """The admin API over ``services`` (the OpenAPI document does not depend on them)."""
    # No Swagger UI nor ReDoc: they load their code from a CDN. The runtime serves /docs/api instead.
    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        title=API_TITLE,
        version=API_VERSION,
        description=__doc__,
        separate_input_output_schemas=False,
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.services = services

    @app.exception_handler(InvalidRequestError)
    async def invalid(_: Request, error: InvalidRequestError) -> JSONResponse:
        problems = [Problem(path=path, message=message) for path, message in error.problems]
        return JSONResponse(ValidationProblems(detail=error.detail, errors=problems).model_dump(), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [Problem(path=_path(str(e["loc"][0]), e["loc"][1:]), message=e["msg"]) for e in error.errors()]
        body = ValidationProblems(detail="invalid request", errors=problems)
        return JSONResponse(body.model_dump(), status_code=422)

    @app.get("/health", tags=["service"])
    async def health() -> HealthOut:
        """Liveness and the référentiel version in use (no authentication)."""
        try:
            version: int | None = services.holder.active.version
        except RuntimeError:
            version = None
        return HealthOut(status="ok", referentiel_version=version)

    # Every route but /health is authenticated, and answers 422 with paths (never FastAPI's default body).
    api = APIRouter(responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, **_INVALID})
    _referential_routes(api, services)
    for collection in (STRUCTURES, OFFERS):
        _collection_routes(api, collection, services)
    _simulate_routes(api, services)
    _assignment_routes(api, services)
    app.include_router(api)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    return app


async def _current(services: AdminServices, version: int | None = None) -> ActiveReferential:
    """The current version (reloaded if another process changed it), or ``version`` (404 if unknown)."""
    async with services.pool().acquire() as conn:
        active = await services.holder.refresh(conn)
        if version is None or version == active.version:
            return active
        try:
            return await load_active(conn, version)
        except LookupError:
            raise HTTPException(404, f"no référentiel version {version}") from None


async def _commit(services: AdminServices, change: Change, who: Principal, what: str) -> Commit:
    """Apply ``change`` as a new version, then use it in this process at once."""
    async with services.pool().acquire() as conn, conn.transaction():
        done = await commit_referential(conn, change, source=f"api {what}", author=who.name)
    services.holder.offer(done.active)
    log.info("referential_changed_by_api", request=what, author=who.name, version=done.active.version)
    return done


def _referential_routes(app: APIRouter, services: AdminServices) -> None:
    tags: list[str | Enum] = ["référentiel"]

    @app.get("/referential", tags=tags)
    async def get_referential(_: Reader) -> ReferentialOut:
        """The current version: when, from where, by whom, what changed."""
        active = await _current(services)
        async with services.pool().acquire() as conn:
            row = await ref_repo.version_row(conn, active.version)
        if row is None:  # pragma: no cover - the holder only knows stored versions
            raise HTTPException(404, "no référentiel")
        return ReferentialOut(
            current=_version_out(row),
            structures=len(active.referential.structures),
            offers=len(active.referential.offers),
        )

    @app.get("/referential/versions", tags=tags)
    async def list_versions(_: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[VersionOut]:
        """The latest versions, newest first."""
        async with services.pool().acquire() as conn:
            rows = await ref_repo.list_versions(conn, limit=limit)
        return [_version_out(row) for row in rows]

    @app.get(
        "/referential/export",
        tags=tags,
        response_class=YamlResponse,
        responses={200: {"description": "The référentiel file", "content": _YAML_FILE}, **_JSON_ERRORS},
    )
    async def export_referential(_: Reader, version: Version = None) -> YamlResponse:
        """The référentiel as the YAML file ``cli referential import`` reads."""
        referential = (await _current(services, version)).referential
        return YamlResponse(dump_referential(referential))

    @app.get("/referential/diff", tags=tags, responses=_NOT_FOUND)
    async def diff_referential(
        _: Reader, from_version: Annotated[int, Query(ge=1, le=INT4_MAX)], to_version: Version = None
    ) -> DiffOut:
        """What changed between two versions."""
        old, new = await _current(services, from_version), await _current(services, to_version)
        changes = diff_referentials(old.referential, new.referential)
        return DiffOut(from_version=old.version, to_version=new.version, changes=changes.text().splitlines())

    @app.put(
        "/referential",
        tags=tags,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/yaml": {"schema": {"type": "string"}}},
                "description": "The whole référentiel in the YAML file format (deploy/referential/*.yaml)",
            }
        },
    )
    async def import_referential(
        request: Request, who: Admin, dry_run: Annotated[bool, Query(description="Only show the diff")] = False
    ) -> ImportOut:
        """Replace the whole référentiel with a YAML document, as ``cli referential import`` does."""
        try:
            new = load_referential((await request.body()).decode("utf-8", "replace"))
        except ReferentialError as error:
            raise _referential_invalid(error) from None
        if dry_run:
            active = await _current(services)
            lines = diff_referentials(active.referential, new).text().splitlines()
            return ImportOut(referentiel_version=active.version, version_created=False, dry_run=True, changes=lines)
        done = await _commit(services, lambda _: new, who, "PUT /referential")
        return ImportOut(
            referentiel_version=done.active.version,
            version_created=done.created,
            dry_run=False,
            changes=done.diff.text().splitlines(),
        )


def _collection_routes(app: APIRouter, collection: _Collection, services: AdminServices) -> None:
    """List, get, create, update, suspend and reactivate one collection (structures or offers)."""
    name, path = collection.name, collection.path
    tags: list[str | Enum] = [path]
    errors: dict[int | str, dict[str, Any]] = {**_NOT_FOUND, 412: {"model": ErrorOut}}
    body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{collection.model.__name__}"}}},
        }
    }

    async def parse(request: Request) -> Item:
        try:
            return collection.model.model_validate_json(await request.body(), strict=True)
        except ValidationError as error:
            raise InvalidRequestError(f"invalid {name}", _body_problems(error)) from None

    def existing(
        active: ActiveReferential | None, item_id: str, if_match: str | None
    ) -> tuple[ActiveReferential, Item]:
        item = collection.find(active.referential, item_id) if active is not None else None
        if active is None or item is None:
            raise HTTPException(404, f"no {name} {item_id!r}")
        revision = active.revision(collection.entity, item_id)
        if if_match is not None and if_match.strip().removeprefix("W/").strip('"') != str(revision):
            raise HTTPException(412, f"{name} {item_id} changed in version {revision}: read it again")
        return active, item

    def answer(done: Commit, item_id: str, response: Response) -> BaseModel:
        active, item = existing(done.active, item_id, None)
        revision = active.revision(collection.entity, item_id) or active.version
        response.headers["ETag"] = f'"{revision}"'
        return collection.change_model(
            referentiel_version=active.version,
            version_created=done.created,
            changes=done.diff.text().splitlines(),
            revision=revision,
            item=item,
        )

    @app.get(f"/{path}", tags=tags, operation_id=f"list_{path}", response_model=collection.list_model)
    async def list_items(_: Reader, status: RecordStatus | None = None) -> Any:
        active = await _current(services)
        entries = [
            {"revision": active.revision(collection.entity, item.id) or active.version, "item": item}
            for item in collection.items(active.referential)
            if status is None or item.status is status
        ]
        return collection.list_model(referentiel_version=active.version, items=entries)

    @app.get(
        f"/{path}/{{item_id}}",
        tags=tags,
        operation_id=f"get_{name}",
        response_model=collection.item_model,
        responses=_NOT_FOUND,
    )
    async def get_item(item_id: str, _: Reader, response: Response) -> Any:
        active, item = existing(await _current(services), item_id, None)
        revision = active.revision(collection.entity, item_id) or active.version
        response.headers["ETag"] = f'"{revision}"'
        return collection.item_model(referentiel_version=active.version, revision=revision, item=item)

    writes: dict[str, Any] = {
        "tags": tags,
        "response_model": collection.change_model,
        "responses": {**errors, 409: {"model": ErrorOut}},
    }

    # A dry run creates nothing: it answers 200 with the diff, documented beside the creation's 201.
    writes_or_preview = writes | {
        "responses": writes["responses"]
        | {200: {"model": collection.change_model, "description": "``dry_run=true``: the diff, nothing saved"}}
    }

    @app.post(f"/{path}", operation_id=f"create_{name}", status_code=201, openapi_extra=body, **writes_or_preview)
    async def create_item(
        request: Request, who: Admin, response: Response, *, dry_run: DryRun = False, x_on_behalf_of: OnBehalfOf = None
    ) -> Any:
        item = await parse(request)

        def change(active: ActiveReferential | None) -> Referential:
            if active is None:
                raise HTTPException(409, "the database holds no référentiel yet: import one first")
            if collection.find(active.referential, item.id) is not None:
                raise HTTPException(409, f"{name} {item.id!r} already exists: update it with PUT")
            return collection.with_item(active.referential, item)

        if dry_run:  # 200, not 201: nothing was created
            return _preview(collection, await _current(services), change, item.id, response, status=200)
        what = _for(f"POST /{path} {item.id}", x_on_behalf_of)
        return answer(await _commit(services, change, who, what), item.id, response)

    @app.put(f"/{path}/{{item_id}}", operation_id=f"update_{name}", openapi_extra=body, **writes)
    async def update_item(
        item_id: str,
        request: Request,
        who: Admin,
        response: Response,
        *,
        if_match: IfMatch = None,
        dry_run: DryRun = False,
        x_on_behalf_of: OnBehalfOf = None,
    ) -> Any:
        item = await parse(request)
        if item.id != item_id:
            raise InvalidRequestError(f"invalid {name}", [("body.id", f"must be {item_id!r}, the id in the path")])

        def change(active: ActiveReferential | None) -> Referential:
            current, _ = existing(active, item_id, if_match)
            return collection.with_item(current.referential, item)

        if dry_run:
            return _preview(collection, await _current(services), change, item_id, response)
        return answer(
            await _commit(services, change, who, _for(f"PUT /{path}/{item_id}", x_on_behalf_of)), item_id, response
        )

    for verb, status in (("suspend", RecordStatus.SUSPENDED), ("reactivate", RecordStatus.ACTIVE)):
        app.post(f"/{path}/{{item_id}}/{verb}", operation_id=f"{verb}_{name}", **writes)(
            _status_route(
                collection=collection,
                services=services,
                status=status,
                verb=verb,
                existing=existing,
                answer=answer,
            )
        )

    list_items.__doc__ = f"Every {name} of the current version, or only those with ``status``."
    get_item.__doc__ = f"One {name}; its revision is the ``ETag``."
    create_item.__doc__ = (
        f"Add a {name}; the whole référentiel is validated again. With ``dry_run=true`` nothing is saved: the"
        " answer (200) is the diff the addition would make."
    )
    update_item.__doc__ = (
        f"Replace a {name} (the body is the whole {name}); send ``If-Match`` to guard concurrent edits."
        " With ``dry_run=true`` nothing is saved: the answer is the diff the change would make (the partner"
        " workspace's desk shows it before « Enregistrer »)."
    )


def _for(request: str, on_behalf_of: str | None) -> str:
    """The version's source: the request, and the person a calling service acted for when it names one."""
    return f"{request} for {on_behalf_of}" if on_behalf_of else request


def _preview(
    collection: _Collection,
    active: ActiveReferential,
    change: Callable[[ActiveReferential | None], Referential],
    item_id: str,
    response: Response,
    *,
    status: int | None = None,
) -> BaseModel:
    """What ``change`` would make of the current version, checked (If-Match, the whole référentiel) as a
    save is, but not stored: ``version_created`` false, ``changes`` the diff a save would record."""
    if status is not None:
        response.status_code = status
    proposed = change(active)
    item = collection.find(proposed, item_id)
    revision = active.revision(collection.entity, item_id) or active.version
    response.headers["ETag"] = f'"{revision}"'
    return collection.change_model(
        referentiel_version=active.version,
        version_created=False,
        changes=diff_referentials(active.referential, proposed).text().splitlines(),
        revision=revision,
        item=item,
    )


def _status_route(
    *,
    collection: _Collection,
    services: AdminServices,
    status: RecordStatus,
    verb: str,
    existing: Callable[[ActiveReferential | None, str, str | None], tuple[ActiveReferential, Item]],
    answer: Callable[[Commit, str, Response], BaseModel],
) -> Callable[..., Awaitable[Any]]:
    async def set_status(item_id: str, who: Admin, response: Response, if_match: IfMatch = None) -> Any:
        def change(active: ActiveReferential | None) -> Referential:
            current, item = existing(active, item_id, if_match)
            return collection.with_item(current.referential, item.model_copy(update={"status": status}))

        return answer(
            await _commit(services, change, who, f"POST /{collection.path}/{item_id}/{verb}"), item_id, response
        )

    set_status.__doc__ = (
        f"Set the {collection.name}'s status to {status.value} (a suspended {collection.name} is kept, never matched);"
        " no new version if it already is."
    )
    return set_status


def _simulate_routes(app: APIRouter, services: AdminServices) -> None:
    body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/ProcedureNotice"},
                            {"$ref": "#/components/schemas/ProcedureNotification"},
                        ]
                    }
                }
            },
        }
    }

    @app.post("/simulate", tags=["simulate"], responses=_NOT_FOUND, openapi_extra=body)
    async def simulate(
        request: Request,
        _: Reader,
        version: Version = None,
        k: Annotated[int | None, Query(ge=1, le=20, description="Default: the service's cap")] = None,
        on: Annotated[date | None, Query(description="Judge offers' status and validity on this day")] = None,
        with_state: Annotated[
            bool, Query(description="Use the procedure's assignments, CCAPEX removals and this week's capacity")
        ] = True,
    ) -> SimulationOut:
        """The decision for a canonical notification, with every offer's explanation. Writes nothing."""
        try:
            canonical = parse_canonical(await request.body())
        except ValidationError as error:
            raise InvalidRequestError(
                "not a ProcedureNotice nor a ProcedureNotification", _body_problems(error)
            ) from None
        active = await _current(services, version)
        state = None
        if with_state:
            async with services.pool().acquire() as conn:
                state = await read_state(conn, canonical, active.referential, now=services.clock.now())
        k = k or services.max_structures
        return run_simulation(active.matcher, canonical, referentiel_version=active.version, k=k, on=on, state=state)


def _assignment_routes(app: APIRouter, services: AdminServices) -> None:
    @app.get("/procedures/{procedure_id}/assignments", tags=["assignments"])
    async def list_procedure_assignments(procedure_id: uuid.UUID, _: Reader) -> ProcedureAssignmentsOut:
        """A procedure's assignments with their status history, and the structures the CCAPEX removed."""
        async with services.pool().acquire() as conn:
            rows = await repo.procedure_assignments(conn, procedure_id)
            lines = await repo.history(conn, [row.assignment_id for row in rows])
            state = await repo.procedure_state(conn, procedure_id, lock=False)
        history: dict[uuid.UUID, list[HistoryOut]] = {}
        for line in lines:
            history.setdefault(line.pop("assignment_id"), []).append(HistoryOut(**line))
        return ProcedureAssignmentsOut(
            procedure_id=procedure_id,
            removed_structures=sorted(state.removed_structures),
            assignments=[
                AssignmentOut(
                    assignment_id=row.assignment_id,
                    structure_id=row.structure_id,
                    offer_ids=row.offer_ids,
                    status=row.status,
                    origin=row.origin,
                    mandatory=row.mandatory,
                    referentiel_version=row.referentiel_version,
                    explanation=row.explanation,
                    created_at=row.created_at,
                    history=history.get(row.assignment_id, []),
                )
                for row in rows
            ],
        )


def openapi_document() -> str:
    """The OpenAPI document as committed in ``OPENAPI_PATH`` (sorted keys, 2-space indent, final newline)."""
    placeholder = AdminServices(
        pool=_no_pool, holder=ReferentialHolder(), tokens=TokenRegistry.empty(), max_structures=DEFAULT_CAP
    )
    document = create_app(placeholder).openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _no_pool() -> asyncpg.Pool:
    raise RuntimeError("no database: this app only renders its OpenAPI document")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the schemas of the bodies read raw (validated strictly, see module doc)."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, definitions = models_json_schema(
            [(model, "validation") for model in (Structure, Offer, ProcedureNotice, ProcedureNotification)],
            ref_template="#/components/schemas/{model}",
        )
        document.setdefault("components", {}).setdefault("schemas", {}).update(definitions.get("$defs", {}))
        app.openapi_schema = document
    return app.openapi_schema


def _version_out(row: ref_repo.VersionRow) -> VersionOut:
    return VersionOut(**dataclasses.asdict(row))
