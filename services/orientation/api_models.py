"""The admin API's bodies, answers and parameters, as its OpenAPI document shows them (``http.py``).

Class names are the document's schema names: renaming one changes the committed ``openapi.json``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Header, Query
from pydantic import BaseModel, Field

from services.orientation.domain.referential import INT4_MAX, Offer, Structure

__all__ = [
    "INVALID",
    "NOT_FOUND",
    "AssignmentOut",
    "ChangeOut",
    "DiffOut",
    "DryRun",
    "Entry",
    "ErrorOut",
    "HealthOut",
    "HistoryOut",
    "IfMatch",
    "ImportOut",
    "Item",
    "ItemList",
    "ItemOut",
    "OnBehalfOf",
    "Problem",
    "ProcedureAssignmentsOut",
    "ReferentialOut",
    "ValidationProblems",
    "Version",
    "VersionOut",
]

T = TypeVar("T", Structure, Offer)
Item = Structure | Offer


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


# ---------------------------------------------------------------------------------------- parameters

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

INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationProblems}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
