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
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from schemas.procedure import ProcedureNotice, ProcedureNotification
from services.orientation import referential_repository as ref_repo
from services.orientation import repository as repo
from services.orientation.api_access import Admin, Reader
from services.orientation.api_collections import COLLECTIONS, collection_routes
from services.orientation.api_errors import (
    InvalidRequestError,
    add_error_handlers,
    body_problems,
    referential_invalid,
)
from services.orientation.api_models import (
    INVALID,
    NOT_FOUND,
    AssignmentOut,
    DiffOut,
    ErrorOut,
    HealthOut,
    HistoryOut,
    ImportOut,
    ProcedureAssignmentsOut,
    ReferentialOut,
    ValidationProblems,
    Version,
    VersionOut,
)
from services.orientation.api_services import AdminServices, commit, current
from services.orientation.auth import TokenRegistry
from services.orientation.domain.diff import diff_referentials
from services.orientation.domain.matching import DEFAULT_CAP
from services.orientation.domain.referential import INT4_MAX, Offer, Structure
from services.orientation.domain.referential_yaml import ReferentialError, dump_referential, load_referential
from services.orientation.referential_store import ReferentialHolder
from services.orientation.simulate import SimulationOut, parse_canonical, read_state, run_simulation

__all__ = ["API_TITLE", "OPENAPI_PATH", "AdminServices", "create_app", "openapi_document"]

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"

API_TITLE = "prevex orientation admin API"
API_VERSION = "1.0"

# The docstring above is the API's description in its OpenAPI document. The app is assembled here with the
# référentiel's, simulate's and assignments' routes; structures' and offers' routes are in api_collections.py,
# bodies and parameters in api_models.py, 422 answers in api_errors.py, roles in api_access.py, reading and
# saving the référentiel in api_services.py.


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
    add_error_handlers(app)

    @app.get("/health", tags=["service"])
    async def health() -> HealthOut:
        """Liveness and the référentiel version in use (no authentication)."""
        try:
            version: int | None = services.holder.active.version
        except RuntimeError:
            version = None
        return HealthOut(status="ok", referentiel_version=version)

    # Every route but /health is authenticated, and answers 422 with paths (never FastAPI's default body).
    api = APIRouter(responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, **INVALID})
    _referential_routes(api, services)
    for collection in COLLECTIONS:
        collection_routes(api, collection, services)
    _simulate_routes(api, services)
    _assignment_routes(api, services)
    app.include_router(api)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    return app


def _referential_routes(app: APIRouter, services: AdminServices) -> None:
    tags: list[str | Enum] = ["référentiel"]

    @app.get("/referential", tags=tags)
    async def get_referential(_: Reader) -> ReferentialOut:
        """The current version: when, from where, by whom, what changed."""
        active = await current(services)
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
        referential = (await current(services, version)).referential
        return YamlResponse(dump_referential(referential))

    @app.get("/referential/diff", tags=tags, responses=NOT_FOUND)
    async def diff_referential(
        _: Reader, from_version: Annotated[int, Query(ge=1, le=INT4_MAX)], to_version: Version = None
    ) -> DiffOut:
        """What changed between two versions."""
        old, new = await current(services, from_version), await current(services, to_version)
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
            raise referential_invalid(error) from None
        if dry_run:
            active = await current(services)
            lines = diff_referentials(active.referential, new).text().splitlines()
            return ImportOut(referentiel_version=active.version, version_created=False, dry_run=True, changes=lines)
        done = await commit(services, lambda _: new, who, "PUT /referential")
        return ImportOut(
            referentiel_version=done.active.version,
            version_created=done.created,
            dry_run=False,
            changes=done.diff.text().splitlines(),
        )


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

    @app.post("/simulate", tags=["simulate"], responses=NOT_FOUND, openapi_extra=body)
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
                "not a ProcedureNotice nor a ProcedureNotification", body_problems(error)
            ) from None
        active = await current(services, version)
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
