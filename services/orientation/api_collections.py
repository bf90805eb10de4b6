"""The admin API's routes on one collection of the référentiel, structures or offers.

List, get, create, update, suspend and reactivate. Every change is checked as a whole référentiel and saved
as one new version; ``If-Match`` (the item's revision, its ``ETag``) refuses a change if the item changed
since it was read (412); ``dry_run=true`` answers the diff a change would make and saves nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ValidationError

from schemas.referential import RecordStatus
from services.orientation import api_services
from services.orientation.api_access import Admin, Reader
from services.orientation.api_errors import InvalidRequestError, body_problems, referential_invalid
from services.orientation.api_models import (
    NOT_FOUND,
    ChangeOut,
    DryRun,
    ErrorOut,
    IfMatch,
    Item,
    ItemList,
    ItemOut,
    OnBehalfOf,
)
from services.orientation.api_services import AdminServices
from services.orientation.domain.diff import EntityKind, diff_referentials
from services.orientation.domain.referential import Offer, Referential, Structure
from services.orientation.domain.referential_yaml import ReferentialError, assemble_referential
from services.orientation.referential_store import ActiveReferential, Commit

__all__ = ["COLLECTIONS", "collection_routes"]


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
            raise referential_invalid(error) from None

    async def parse(self, request: Request) -> Item:
        """The request's body as one item, validated strictly (422 with the body's paths)."""
        try:
            return self.model.model_validate_json(await request.body(), strict=True)
        except ValidationError as error:
            raise InvalidRequestError(f"invalid {self.name}", body_problems(error)) from None

    def existing(
        self, active: ActiveReferential | None, item_id: str, if_match: str | None
    ) -> tuple[ActiveReferential, Item]:
        """The item ``item_id`` of ``active``: 404 if there is none, 412 if ``if_match`` is not its revision."""
        item = self.find(active.referential, item_id) if active is not None else None
        if active is None or item is None:
            raise HTTPException(404, f"no {self.name} {item_id!r}")
        revision = active.revision(self.entity, item_id)
        if if_match is not None and if_match.strip().removeprefix("W/").strip('"') != str(revision):
            raise HTTPException(412, f"{self.name} {item_id} changed in version {revision}: read it again")
        return active, item

    def tagged(self, active: ActiveReferential, item_id: str, response: Response) -> int:
        """The item's revision, also set as the response's ``ETag``."""
        revision = active.revision(self.entity, item_id) or active.version
        response.headers["ETag"] = f'"{revision}"'
        return revision

    def answer(self, done: Commit, item_id: str, response: Response) -> BaseModel:
        """The answer to a saved change: the version now current and the item as it is in it."""
        active, item = self.existing(done.active, item_id, None)
        return self.change_model(
            referentiel_version=active.version,
            version_created=done.created,
            changes=done.diff.text().splitlines(),
            revision=self.tagged(active, item_id, response),
            item=item,
        )

    def preview(
        self,
        active: ActiveReferential,
        change: Callable[[ActiveReferential | None], Referential],
        item_id: str,
        response: Response,
    ) -> BaseModel:
        """What ``change`` would make of the current version, checked (If-Match, the whole référentiel) as a
        save is, but not stored: ``version_created`` false, ``changes`` the diff a save would record."""
        proposed = change(active)
        return self.change_model(
            referentiel_version=active.version,
            version_created=False,
            changes=diff_referentials(active.referential, proposed).text().splitlines(),
            revision=self.tagged(active, item_id, response),
            item=self.find(proposed, item_id),
        )


COLLECTIONS = (
    _Collection(
        EntityKind.STRUCTURE, "structures", Structure, ItemList[Structure], ItemOut[Structure], ChangeOut[Structure]
    ),
    _Collection(EntityKind.OFFER, "offers", Offer, ItemList[Offer], ItemOut[Offer], ChangeOut[Offer]),
)
"""Structures, then offers: the order of their routes in the OpenAPI document."""


def collection_routes(app: APIRouter, collection: _Collection, services: AdminServices) -> None:
    """List, get, create, update, suspend and reactivate one collection (structures or offers)."""
    name, path = collection.name, collection.path
    tags: list[str | Enum] = [path]
    body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{collection.model.__name__}"}}},
        }
    }

    @app.get(f"/{path}", tags=tags, operation_id=f"list_{path}", response_model=collection.list_model)
    async def list_items(_: Reader, status: RecordStatus | None = None) -> Any:
        active = await api_services.current(services)
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
        responses=NOT_FOUND,
    )
    async def get_item(item_id: str, _: Reader, response: Response) -> Any:
        active, item = collection.existing(await api_services.current(services), item_id, None)
        revision = collection.tagged(active, item_id, response)
        return collection.item_model(referentiel_version=active.version, revision=revision, item=item)

    writes: dict[str, Any] = {
        "tags": tags,
        "response_model": collection.change_model,
        "responses": {**NOT_FOUND, 412: {"model": ErrorOut}, 409: {"model": ErrorOut}},
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
        item = await collection.parse(request)

        def change(active: ActiveReferential | None) -> Referential:
            if active is None:
                raise HTTPException(409, "the database holds no référentiel yet: import one first")
            if collection.find(active.referential, item.id) is not None:
                raise HTTPException(409, f"{name} {item.id!r} already exists: update it with PUT")
            return collection.with_item(active.referential, item)

        if dry_run:  # 200, not 201: nothing was created
            response.status_code = 200
            return collection.preview(await api_services.current(services), change, item.id, response)
        what = _for(f"POST /{path} {item.id}", x_on_behalf_of)
        return collection.answer(await api_services.commit(services, change, who, what), item.id, response)

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
        item = await collection.parse(request)
        if item.id != item_id:
            raise InvalidRequestError(f"invalid {name}", [("body.id", f"must be {item_id!r}, the id in the path")])

        def change(active: ActiveReferential | None) -> Referential:
            current, _ = collection.existing(active, item_id, if_match)
            return collection.with_item(current.referential, item)

        if dry_run:
            return collection.preview(await api_services.current(services), change, item_id, response)
        what = _for(f"PUT /{path}/{item_id}", x_on_behalf_of)
        return collection.answer(await api_services.commit(services, change, who, what), item_id, response)

    for verb, status in (("suspend", RecordStatus.SUSPENDED), ("reactivate", RecordStatus.ACTIVE)):
        app.post(f"/{path}/{{item_id}}/{verb}", operation_id=f"{verb}_{name}", **writes)(
            _status_route(collection, services, status, verb)
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


def _status_route(
    collection: _Collection, services: AdminServices, status: RecordStatus, verb: str
) -> Callable[..., Awaitable[Any]]:
    async def set_status(item_id: str, who: Admin, response: Response, if_match: IfMatch = None) -> Any:
        def change(active: ActiveReferential | None) -> Referential:
            current, item = collection.existing(active, item_id, if_match)
            return collection.with_item(current.referential, item.model_copy(update={"status": status}))

        what = f"POST /{collection.path}/{item_id}/{verb}"
        return collection.answer(await api_services.commit(services, change, who, what), item_id, response)

    set_status.__doc__ = (
        f"Set the {collection.name}'s status to {status.value} (a suspended {collection.name} is kept, never matched);"
        " no new version if it already is."
    )
    return set_status
