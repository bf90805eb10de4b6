"""How the admin API answers a bad request: 422 with every problem's path, never FastAPI's default body.

A path names where the problem is: ``body.contacts[0].email`` for the request's body or parameters,
``referential.offers[4](id=PJ90-INFO).structure_id`` when a change would break the référentiel as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.orientation.api_models import Problem, ValidationProblems
from services.orientation.domain.referential_yaml import ReferentialError

__all__ = ["InvalidRequestError", "add_error_handlers", "body_problems", "referential_invalid"]


class InvalidRequestError(Exception):
    """A 422 with every problem's path."""

    def __init__(self, detail: str, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems


def body_problems(error: ValidationError) -> list[tuple[str, str]]:
    """Pydantic's errors on a request body read raw, as (path under ``body``, message) pairs."""
    return [(_path("body", e["loc"]), e["msg"].removeprefix("Value error, ")) for e in error.errors()]


def _path(root: str, loc: Sequence[int | str]) -> str:
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def referential_invalid(error: ReferentialError) -> InvalidRequestError:
    """The 422 for a change that would make the référentiel invalid, its problems under ``referential``."""
    problems = [(f"referential.{path}" if path else "referential", message) for path, message in error.problems]
    return InvalidRequestError("the change would make the référentiel invalid", problems)


def add_error_handlers(app: FastAPI) -> None:
    """Answer ``InvalidRequestError`` and FastAPI's own request validation errors as ``ValidationProblems``."""

    @app.exception_handler(InvalidRequestError)
    async def invalid(_: Request, error: InvalidRequestError) -> JSONResponse:
        problems = [Problem(path=path, message=message) for path, message in error.problems]
        return JSONResponse(ValidationProblems(detail=error.detail, errors=problems).model_dump(), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [Problem(path=_path(str(e["loc"][0]), e["loc"][1:]), message=e["msg"]) for e in error.errors()]
        body = ValidationProblems(detail="invalid request", errors=problems)
        return JSONResponse(body.model_dump(), status_code=422)
