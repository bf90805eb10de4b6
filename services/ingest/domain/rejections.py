"""Rejection and warning codes of ingest (docs/domain.md §3), and how rejections are reported.

Privacy contract: a :class:`RejectionError` names a JSON path and what was expected there, never the value
it found. Rejections go to ``exp.ingest.rejected.v1``, which carries no personal data beyond the emitter's
``external_ref`` (docs/architecture.md §2), and back to the emitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import ValidationError

__all__ = [
    "Findings",
    "Rejected",
    "RejectionCode",
    "RejectionError",
    "WarningCode",
    "json_path",
    "required_for_stage",
    "schema_errors",
]

_MAX_LISTED_SCHEMA_ERRORS = 50
_MAX_KEY_IN_PATH = 64
_MAX_PATH = 200  # schemas.ingest.IngestError.field


class RejectionCode(StrEnum):
    """Blocking codes. ``REQUIRED_FOR_STAGE_MISSING`` is emitted as ``REQUIRED_FOR_STAGE_MISSING:<field>``."""

    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    SCHEMA_INVALID = "SCHEMA_INVALID"
    EMITTER_UNKNOWN = "EMITTER_UNKNOWN"
    EMITTER_MISMATCH = "EMITTER_MISMATCH"
    STAGE_UNKNOWN = "STAGE_UNKNOWN"
    STAGE_NOT_ALLOWED_FOR_EMITTER = "STAGE_NOT_ALLOWED_FOR_EMITTER"
    DATE_INVALID = "DATE_INVALID"
    DATE_IN_FUTURE = "DATE_IN_FUTURE"
    DATE_OUT_OF_RANGE = "DATE_OUT_OF_RANGE"
    ADDRESS_MISSING = "ADDRESS_MISSING"
    COMMUNE_UNKNOWN = "COMMUNE_UNKNOWN"
    COMMUNE_OUT_OF_TERRITORY = "COMMUNE_OUT_OF_TERRITORY"
    AMOUNT_INVALID = "AMOUNT_INVALID"
    DEBT_NEGATIVE = "DEBT_NEGATIVE"
    RENT_NEGATIVE = "RENT_NEGATIVE"
    TENANT_MISSING = "TENANT_MISSING"
    REQUIRED_FOR_STAGE_MISSING = "REQUIRED_FOR_STAGE_MISSING"


class WarningCode(StrEnum):
    """Non-blocking codes stored in ``ProcedureNotification.warnings``."""

    POSTAL_CODE_COMMUNE_MISMATCH = "POSTAL_CODE_COMMUNE_MISMATCH"
    PREFECT_NOTICE_LT_6_WEEKS = "PREFECT_NOTICE_LT_6_WEEKS"
    CP_BELOW_CCAPEX_THRESHOLD = "CP_BELOW_CCAPEX_THRESHOLD"
    DEBT_ZERO = "DEBT_ZERO"
    LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W = "LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W"
    # Set by procedure linking (it needs the procedure's history), never by normalisation.
    LATE_EARLIER_STAGE = "LATE_EARLIER_STAGE"
    STAGE_SKIPPED = "STAGE_SKIPPED"
    LINK_LOW_CONFIDENCE = "LINK_LOW_CONFIDENCE"
    REOPENED = "REOPENED"
    # Set by the CSV adapter when it read a French-formatted amount ("1 200,50"): docs/domain.md §9.8.
    AMOUNT_COERCED = "AMOUNT_COERCED"


@dataclass(frozen=True, slots=True)
class RejectionError:
    """One reason to reject: a code, the JSON path it concerns, and what was expected.

    ``field`` is ``None`` when the reason concerns the payload as a whole (too large, not JSON, emitter
    unknown), as in ``schemas.ingest.IngestError``.
    """

    code: str
    field: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload ingest refused. Safe to publish: references and hashes only, no personal data."""

    codes: tuple[RejectionError, ...]
    emitter_id: str
    external_ref: str | None
    payload_sha256: str


@dataclass(slots=True)
class Findings:
    """Accumulates every problem of one payload, so the emitter gets them all in a single rejection."""

    errors: list[RejectionError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def reject(self, code: RejectionCode, path: str, message: str) -> None:
        self.errors.append(RejectionError(code.value, path, message))

    def warn(self, code: WarningCode) -> None:
        if code not in self.warnings:
            self.warnings.append(code.value)


def required_for_stage(canonical_field: str, path: str, stage: str) -> RejectionError:
    """``REQUIRED_FOR_STAGE_MISSING:<canonical field>`` for a value the stage needs (docs/domain.md §3.2)."""
    return RejectionError(
        f"{RejectionCode.REQUIRED_FOR_STAGE_MISSING.value}:{canonical_field}", path, f"required for stage {stage}"
    )


def json_path(location: Sequence[str | int]) -> str | None:
    """``("tenants", 0, "last_name")`` → ``"tenants[0].last_name"``; ``None`` for the whole payload.

    Keys are truncated (an unknown key is the emitter's own text and must not make a path unbounded), and
    so is the whole path, to fit the rejection event.
    """
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f"{'.' if path else ''}{part[:_MAX_KEY_IN_PATH]}"
    return path[:_MAX_PATH] or None


def schema_errors(error: ValidationError) -> tuple[RejectionError, ...]:
    """``SCHEMA_INVALID`` errors from a pydantic validation error: path + pydantic's message.

    Pydantic's messages state the expectation ("Input should be a valid string", "Extra inputs are not
    permitted"); the input value is never included. The list is capped so a huge payload cannot make a
    huge rejection.
    """
    details = error.errors(include_url=False, include_input=False, include_context=False)
    found = [
        RejectionError(RejectionCode.SCHEMA_INVALID.value, json_path(detail["loc"]), detail["msg"])
        for detail in details[:_MAX_LISTED_SCHEMA_ERRORS]
    ]
    if len(details) > _MAX_LISTED_SCHEMA_ERRORS:
        omitted = len(details) - _MAX_LISTED_SCHEMA_ERRORS
        found.append(RejectionError(RejectionCode.SCHEMA_INVALID.value, None, f"{omitted} more schema errors"))
    return tuple(found)
