"""HTTP intake for emitters that cannot produce to Kafka (contract: ``services/ingest/openapi.json``).

Every request authenticates with the emitter's API key (``Authorization: Bearer <key>`` or ``X-Api-Key``);
the emitter's identity and type come from the key, never from the payload. What is accepted goes through
the same :meth:`~services.ingest.intake.Intake.process` as a Kafka batch, in one transaction with its
outbox events. Status codes:

- ``201`` accepted (or a correction); an unchanged re-send gets the same body again with
  ``Idempotent-Replayed: true`` and no new event;
- ``422`` rejected with codes (stored and published on ``exp.ingest.rejected.v1`` like on Kafka),
  ``403`` when the payload claims another emitter (``EMITTER_MISMATCH``, also stored);
- ``401`` no valid key, ``413`` body or batch too large, ``429`` rate limit (``Retry-After``), ``503``
  storage unavailable: these refuse the request before any input is taken, and store nothing.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at run time, and
# string annotations naming the closure ``authenticated`` could not be resolved from the module.

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, FastAPI, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from schemas.sources import BailleurNotice, CjAct
from services.ingest.domain.normalise import Emitter
from services.ingest.domain.payload import split_json_array
from services.ingest.domain.rejections import RejectionCode, RejectionError
from services.ingest.emitters import EmitterRegistry
from services.ingest.intake import INTERNAL_ERROR, Intake, IntakeResult, Outcome, Refusal
from services.ingest.ratelimit import TokenBuckets
from services.ingest.reports import (
    AcceptedBody,
    BatchBody,
    BatchItem,
    CsvBody,
    ErrorItem,
    RefusedBody,
    RejectedBody,
    accepted_body,
    counts,
    csv_body,
    rejected_body,
)
from services.ingest.settings import IngestSettings
from services.ingest.submissions import Submissions, csv_allowed
from services.platform.clock import SYSTEM_CLOCK
from services.platform.logging import get_logger, log_context

__all__ = ["REPLAYED_HEADER", "ApiError", "create_app", "openapi_document"]

REPLAYED_HEADER = "Idempotent-Replayed"
_RETRY_UNAVAILABLE_S = 5
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
T = TypeVar("T")

log = get_logger(__name__)

_bearer = HTTPBearer(auto_error=False, description="The emitter's API key: `Authorization: Bearer <key>`")
_api_key = APIKeyHeader(name="X-Api-Key", auto_error=False, description="The emitter's API key, as a header")

_SOURCE_DOCUMENT = {"oneOf": [{"$ref": "#/components/schemas/CjAct"}, {"$ref": "#/components/schemas/BailleurNotice"}]}
_ONE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": _SOURCE_DOCUMENT}}}}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "array", "items": _SOURCE_DOCUMENT}}},
    }
}
_CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": RefusedBody, "description": "No valid API key (`UNAUTHENTICATED`); nothing stored"},
    413: {"model": RefusedBody, "description": "Body or batch too large (`PAYLOAD_TOO_LARGE`); nothing stored"},
    429: {"model": RefusedBody, "description": "Rate limit (`RATE_LIMITED`), see `Retry-After`; nothing stored"},
    503: {"model": RefusedBody, "description": "Storage unavailable (`UNAVAILABLE`), retry later; nothing stored"},
}
_REPLAYED_DOC = {
    REPLAYED_HEADER: {
        "description": "`true` when this answers an unchanged re-send of an act already accepted (no new event)",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_REJECTIONS: dict[int | str, dict[str, Any]] = {
    403: {"model": RejectedBody, "description": "The payload claims another emitter (`EMITTER_MISMATCH`); stored"},
    422: {"model": RejectedBody, "description": "Rejected with codes; stored and published"},
    500: {
        "model": RejectedBody | RefusedBody,
        "description": "Ingest failed on this input (`INTERNAL_ERROR`): either stored (a rejection id) and"
        " re-submitted by ops once fixed, not to be sent again; or not taken (refused): retry later",
    },
}
_DESCRIPTION = """\
Procedure notifications from commissaires de justice, the préfecture (its CFP request and decision) and
bailleurs, for emitters that cannot produce to the Kafka raw topics. Payloads are the source formats
`prevex.cj-act/1` and `prevex.bailleur-notice/1` (JSON Schemas in `schemas/json/sources/`), or a bailleur
CSV export (`docs/ingest.md`, "CSV").

Authenticate with your API key (`Authorization: Bearer <key>` or `X-Api-Key: <key>`): your identity comes
from the key, and a payload whose `emitter.siret` is not yours is refused (403 `EMITTER_MISMATCH`).
Re-sending an act unchanged is safe: you get the first answer again (`Idempotent-Replayed: true`).
"""


class ApiError(Exception):
    """A request refused before any input was taken; answered with a :class:`RefusedBody`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _json(body: BaseModel, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _rejection_status(errors: tuple[RejectionError, ...]) -> int:
    codes = {error.code for error in errors}
    if RejectionCode.EMITTER_MISMATCH.value in codes:
        return 403
    if RejectionCode.PAYLOAD_TOO_LARGE.value in codes:
        return 413
    if INTERNAL_ERROR in codes:
        # Ingest's fault, not the input's: a 4xx would tell the emitter to fix what is not broken. The input is
        # stored and ops re-submit it once the code is fixed, so the body says there is nothing to send again.
        return 500
    return 422


def _answer(result: IntakeResult) -> tuple[int, AcceptedBody | RejectedBody, bool]:
    """``(status, body, replayed)`` of one input, as the single-notification endpoint answers it."""
    if result.rejection is not None:
        return _rejection_status(result.rejection.errors), rejected_body(result.rejection), False
    if result.receipt is None:  # ALREADY_PROCESSED only exists for Kafka positions
        raise ValueError(f"no answer for outcome {result.outcome.value}")
    return 201, accepted_body(result.receipt), result.outcome is Outcome.DUPLICATE_IGNORED


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` (before it is all read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, RejectionCode.PAYLOAD_TOO_LARGE.value, f"the body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, RejectionCode.PAYLOAD_TOO_LARGE.value, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _csv_bytes(request: Request, body: bytes) -> bytes | RejectionError:
    """The CSV file of an upload: the ``file`` part of a multipart form, or the body itself.

    A multipart body without a readable ``file`` part is a ``SCHEMA_INVALID`` input like any other that
    cannot be read: the caller stores it and answers with its rejection.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    missing = RejectionError(RejectionCode.SCHEMA_INVALID.value, "file", "a multipart upload needs a 'file' part")
    try:
        form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=10).parse()
    except MultiPartException:
        return missing
    try:
        upload = form.get("file")
        return await upload.read() if isinstance(upload, UploadFile) else missing
    finally:
        await form.close()


async def _guarded(call: Awaitable[T]) -> T:
    """Storage failures become 503 (the emitter retries; its re-send is idempotent), logged without data."""
    try:
        return await call
    except _UNAVAILABLE as error:
        log.error("http_intake_unavailable", error=type(error).__name__)  # noqa: TRY400 - no traceback: values
        raise ApiError(
            503, "UNAVAILABLE", "storage unavailable, retry later", {"Retry-After": str(_RETRY_UNAVAILABLE_S)}
        ) from error


async def _unreadable(
    submissions: Submissions, emitter: Emitter, body: bytes, error: RejectionError, *, channel: str, csv: bool = False
) -> JSONResponse:
    """A body its adapter could not read at all: stored as one raw input, answered with its rejection."""
    result = await _guarded(submissions.refused(emitter, body, Refusal(error), channel=channel, csv=csv))
    status, answer, _ = _answer(result)
    return _json(answer, status)


def create_app(
    *,
    intake: Intake,
    emitters: EmitterRegistry,
    pool: Callable[[], asyncpg.Pool],
    settings: IngestSettings,
    now: Callable[[], datetime] = SYSTEM_CLOCK.now,
    limiter: TokenBuckets | None = None,
) -> FastAPI:
    """The HTTP intake app. ``emitters`` authenticates the API keys: the emitter found is the one the
    input is recorded and validated as (never looked up again). ``pool`` is called per request (the
    runtime opens it after the app is built); ``now`` gives reception times; ``limiter`` defaults to the
    settings' per-emitter token buckets."""
    submissions = Submissions(intake, emitters, pool, now=now)
    buckets = limiter or TokenBuckets(rate_per_s=settings.http_rate_limit_per_s, burst=settings.http_rate_limit_burst)
    # No Swagger UI nor ReDoc: they load their code from a CDN. The runtime serves /docs/api instead.
    app = FastAPI(
        title="prevex ingest — HTTP intake", version="1", description=_DESCRIPTION, docs_url=None, redoc_url=None
    )

    async def authenticated(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        api_key: Annotated[str | None, Security(_api_key)],
    ) -> Emitter:
        emitter = emitters.authenticate(bearer.credentials if bearer else api_key)
        if emitter is None:
            message = "a valid API key is required (Authorization: Bearer <key>, or X-Api-Key)"
            raise ApiError(401, "UNAUTHENTICATED", message, {"WWW-Authenticate": "Bearer"})
        retry_after = buckets.take(emitter.emitter_id)
        if retry_after is not None:
            rate, burst = settings.http_rate_limit_per_s, settings.http_rate_limit_burst
            message = f"at most {rate:g} requests per second (burst {burst})"
            raise ApiError(429, "RATE_LIMITED", message, {"Retry-After": str(retry_after)})
        return emitter

    @app.exception_handler(ApiError)
    async def refused(_: Request, error: ApiError) -> JSONResponse:
        body = RefusedBody(errors=[ErrorItem(code=error.code, message=error.message)])
        return _json(body, error.status, error.headers)

    @app.exception_handler(Exception)
    async def failed(_: Request, error: Exception) -> JSONResponse:
        # The type only: an exception's text may quote a value of the payload. The transaction was rolled
        # back, so nothing was taken and the emitter may send again.
        log.error("http_intake_failed", error=type(error).__name__)
        body = RefusedBody(errors=[ErrorItem(code="INTERNAL_ERROR", message="the input was not taken, retry later")])
        return _json(body, 500)

    @app.post(
        "/v1/notifications",
        status_code=201,
        response_model=AcceptedBody,
        response_description="Accepted; or the first answer again for an unchanged re-send",
        responses={201: {"headers": _REPLAYED_DOC}, **_REJECTIONS, **_REFUSALS},
        openapi_extra=_ONE_BODY,
        summary="Submit one notification (CJ act or bailleur notice)",
        tags=["intake"],
    )
    async def post_notification(request: Request, emitter: Annotated[Emitter, Depends(authenticated)]) -> JSONResponse:
        body = await _read_body(request, settings.max_payload_bytes)
        with log_context(emitter_id=emitter.emitter_id):
            [result] = await _guarded(submissions.notifications(emitter, [body]))
        status, answer, replayed = _answer(result)
        return _json(answer, status, {REPLAYED_HEADER: "true"} if replayed else None)

    @app.post(
        "/v1/notifications:batch",
        response_model=BatchBody,
        responses={422: {"model": RejectedBody, "description": "The body is not a JSON array; stored"}, **_REFUSALS},
        openapi_extra=_BATCH_BODY,
        summary="Submit a JSON array of notifications; each is answered as if sent alone",
        tags=["intake"],
    )
    async def post_batch(request: Request, emitter: Annotated[Emitter, Depends(authenticated)]) -> JSONResponse:
        body = await _read_body(request, settings.http_max_body_bytes)
        items = split_json_array(body)
        with log_context(emitter_id=emitter.emitter_id):
            if isinstance(items, RejectionError):
                return await _unreadable(submissions, emitter, body, items, channel="http:batch")
            if len(items) > settings.http_batch_max_items:
                message = f"at most {settings.http_batch_max_items} notifications per batch"
                raise ApiError(413, RejectionCode.PAYLOAD_TOO_LARGE.value, message)
            results = await _guarded(submissions.notifications(emitter, items, channel="http:batch"))
        answers = [_answer(result) for result in results]
        batch = BatchBody(
            counts=counts(results),
            items=[
                BatchItem(index=i, status=status, replayed=replayed, result=answer)
                for i, (status, answer, replayed) in enumerate(answers)
            ],
        )
        return _json(batch, 200)

    @app.post(
        "/v1/csv",
        response_model=CsvBody,
        responses={
            403: {"model": RefusedBody, "description": "Not a bailleur (`EMITTER_MISMATCH`); nothing stored"},
            422: {
                "model": RejectedBody,
                "description": "Not this CSV format (its header), or a multipart form without a `file` part; stored",
            },
            **_REFUSALS,
        },
        openapi_extra=_CSV_BODY,
        summary="Upload a bailleur CSV export; the answer reports each line",
        tags=["intake"],
    )
    async def post_csv(request: Request, emitter: Annotated[Emitter, Depends(authenticated)]) -> JSONResponse:
        if not csv_allowed(emitter):
            message = "CSV files carry bailleur notices; this emitter cannot send them"
            raise ApiError(403, RejectionCode.EMITTER_MISMATCH.value, message)
        body = await _read_body(request, settings.http_max_body_bytes)
        data = await _csv_bytes(request, body)
        with log_context(emitter_id=emitter.emitter_id):
            if isinstance(data, RejectionError):
                return await _unreadable(submissions, emitter, body, data, channel="http:csv", csv=True)
            report = await _guarded(submissions.csv(emitter, data, channel="http:csv"))
        if report.file_rejection is not None:
            status, answer, _ = _answer(report.file_rejection)
            return _json(answer, status)
        return _json(csv_body(report), 200)

    @app.get("/health", summary="Liveness and database readiness", tags=["ops"])
    async def health() -> JSONResponse:
        await _guarded(pool().fetchval("SELECT 1"))
        return JSONResponse({"status": "ok"})

    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, with the source formats' JSON Schemas as request-body components."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, definitions = models_json_schema(
            [(CjAct, "validation"), (BailleurNotice, "validation")], ref_template="#/components/schemas/{model}"
        )
        document.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
        app.openapi_schema = document
    return app.openapi_schema


def render_openapi(app: FastAPI) -> str:
    """The committed form of the document (``services/ingest/openapi.json``): sorted keys, 2-space indent."""
    return json.dumps(openapi_document(app), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
