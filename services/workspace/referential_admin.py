"""Orientation's admin API as the desk calls it, over the internal network (``services/orientation/http.py``).

The workspace never reads orientation's tables: the référentiel's owner validates, versions and
publishes every change; the desk only sends the person's edit with the revision it was read at
(``If-Match``), first as a dry run (the diff to show), then for real. The workspace's own token
(``ccapex-admin``) authenticates it; orientation records that token's name as the version's author and the
member of the secretariat who asked (``X-On-Behalf-Of``) in its source; the workspace's audit log records
that member too.

Errors are typed for the pages: ``StaleItemError`` (412: changed meanwhile), ``TakenIdError`` (409: a new
item's id is used), ``RejectedChangeError``
(422: orientation's problems with their paths), ``UnknownItemError`` (404), ``OrientationUnavailableError``
(anything else: unreachable, refused token, 5xx). Nothing a body holds is logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from services.platform.logging import get_logger

__all__ = [
    "ItemKind",
    "OrientationUnavailableError",
    "ReadItem",
    "ReferentialAdmin",
    "RejectedChangeError",
    "SavedChange",
    "StaleItemError",
    "TakenIdError",
    "UnknownItemError",
]

log = get_logger(__name__)

_TIMEOUT = httpx.Timeout(10.0)


class ItemKind(StrEnum):
    """What the desk edits: the admin API's collections."""

    STRUCTURE = "structures"
    OFFER = "offers"


class OrientationUnavailableError(Exception):
    """Orientation did not answer, or not as expected (its status, never a body, is the message)."""


class UnknownItemError(LookupError):
    """No such structure or offer in the current version."""


class StaleItemError(Exception):
    """The item changed since the revision the edit was based on (412)."""


class TakenIdError(Exception):
    """A new item's identifier is already used (409)."""


class RejectedChangeError(ValueError):
    """Orientation refused the body (422); ``problems`` are its ``(path, message)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ReadItem:
    """An item as the API returns it (a JSON object), its revision (the ETag's value) and the version."""

    item: dict[str, Any]
    revision: str
    version: int


@dataclass(frozen=True, slots=True)
class SavedChange:
    """The answer to a dry run or a save: the diff's lines, the version now current, whether one was made."""

    changes: list[str]
    version: int
    created: bool
    revision: str


class ReferentialAdmin:
    """Calls orientation's admin API with the workspace's token. ``client`` makes an ``httpx.AsyncClient``
    on orientation's base URL (tests hand one on an ASGI transport: the real app, no network)."""

    def __init__(self, client: Callable[[], httpx.AsyncClient], token: str) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {token}"}

    @classmethod
    def over_http(cls, base_url: str, token: str) -> ReferentialAdmin:
        return cls(lambda: httpx.AsyncClient(base_url=base_url, timeout=_TIMEOUT), token)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            async with self._client() as http:
                response = await http.request(
                    method, path, headers={**self._headers, **kwargs.pop("headers", {})}, **kwargs
                )
        except httpx.HTTPError as error:
            log.warning("orientation_unreachable", path=path, error=type(error).__name__)
            raise OrientationUnavailableError(type(error).__name__) from None
        if response.status_code == 404:
            raise UnknownItemError(path)
        if response.status_code == 412:
            raise StaleItemError(path)
        if response.status_code == 409:
            raise TakenIdError(path)
        if response.status_code == 422:
            errors = response.json().get("errors", [])
            raise RejectedChangeError([(str(e.get("path", "")), str(e.get("message", ""))) for e in errors])
        if response.status_code >= 300:
            log.warning("orientation_refused", path=path, status=response.status_code)
            raise OrientationUnavailableError(f"HTTP {response.status_code}")
        return response

    async def items(self, kind: ItemKind) -> tuple[int, list[dict[str, Any]]]:
        """The current version and every item of ``kind`` (each a JSON object)."""
        body = (await self._call("GET", f"/{kind.value}")).json()
        return int(body["referentiel_version"]), [entry["item"] for entry in body["items"]]

    async def read(self, kind: ItemKind, item_id: str) -> ReadItem:
        response = await self._call("GET", f"/{kind.value}/{item_id}")
        body = response.json()
        return ReadItem(body["item"], str(body["revision"]), int(body["referentiel_version"]))

    async def put(
        self,
        kind: ItemKind,
        item_id: str,
        body: Mapping[str, Any],
        *,
        revision: str,
        dry_run: bool,
        on_behalf_of: str,
    ) -> SavedChange:
        """Replace the item, refused if it is no longer at ``revision``; with ``dry_run``, only the diff.
        ``on_behalf_of`` (the desk member's token name) goes into the version's source in orientation."""
        response = await self._call(
            "PUT",
            f"/{kind.value}/{item_id}",
            json=dict(body),
            params={"dry_run": "true"} if dry_run else None,
            headers={"If-Match": f'"{revision}"', "X-On-Behalf-Of": on_behalf_of},
        )
        return _saved(response)

    async def create(self, kind: ItemKind, body: Mapping[str, Any], *, dry_run: bool, on_behalf_of: str) -> SavedChange:
        """Add the item (refused if its id is taken); with ``dry_run``, only the diff."""
        response = await self._call(
            "POST",
            f"/{kind.value}",
            json=dict(body),
            params={"dry_run": "true"} if dry_run else None,
            headers={"X-On-Behalf-Of": on_behalf_of},
        )
        return _saved(response)


def _saved(response: httpx.Response) -> SavedChange:
    answer = response.json()
    return SavedChange(
        changes=[str(line) for line in answer["changes"]],
        version=int(answer["referentiel_version"]),
        created=bool(answer["version_created"]),
        revision=str(answer["revision"]),
    )
