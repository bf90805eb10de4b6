"""What emitters and ops are told about their inputs: the HTTP API's bodies and the CSV report.

The models are the API contract (they make ``services/ingest/openapi.json``); the CLI prints the same
CSV report as the HTTP upload returns. No field carries personal data: references, codes and ids only.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.stages import Stage
from services.ingest.domain.rejections import RejectionError
from services.ingest.intake import IntakeResult, Outcome, Receipt, RejectionReceipt
from services.ingest.submissions import CsvReport

__all__ = [
    "AcceptedBody",
    "BatchBody",
    "BatchItem",
    "Counts",
    "CsvBody",
    "CsvLineBody",
    "ErrorItem",
    "RefusedBody",
    "RejectedBody",
    "accepted_body",
    "counts",
    "csv_body",
    "error_items",
    "rejected_body",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorItem(_Body):
    """One coded reason (docs/domain.md §3.1 codes). ``field`` is a JSON path in the payload sent (``csv.line``,
    ``csv.header`` for CSV layout problems); ``message`` states the rule, never the value received."""

    code: str = Field(examples=["DEBT_NEGATIVE", "REQUIRED_FOR_STAGE_MISSING:debt.amount"])
    field: str | None = Field(default=None, examples=["debt.amount"])
    message: str


class AcceptedBody(_Body):
    """An accepted act. Re-sending the act unchanged gets this very body again, with the header
    ``Idempotent-Replayed: true`` and no new event."""

    outcome: Literal["ACCEPTED", "CORRECTION"] = Field(description="CORRECTION: a new revision of an act")
    notification_id: uuid.UUID
    procedure_short_ref: str = Field(examples=["90-2026-000042"], description="The case reference partners see")
    revision: int = Field(ge=1)
    stage: Stage
    external_ref: str
    warnings: list[str] = Field(description="Non-blocking codes (LATE_EARLIER_STAGE, AMOUNT_COERCED…)")


class RejectedBody(_Body):
    """A rejected input: stored, published on ``exp.ingest.rejected.v1``, and findable by ``rejection_id``."""

    outcome: Literal["REJECTED"] = "REJECTED"
    rejection_id: uuid.UUID
    external_ref: str | None
    errors: list[ErrorItem]


class RefusedBody(_Body):
    """A request refused before any input was taken (authentication, size, rate): nothing was stored."""

    outcome: Literal["REFUSED"] = "REFUSED"
    errors: list[ErrorItem]


class Counts(_Body):
    accepted: int = 0
    corrections: int = 0
    duplicates: int = 0
    rejected: int = 0


class BatchItem(_Body):
    """One element of a batch, answered as if it had been sent alone (``status`` is that answer's)."""

    index: int = Field(ge=0)
    status: int = Field(examples=[201, 422])
    replayed: bool = Field(description="An unchanged re-send of an act already accepted")
    result: AcceptedBody | RejectedBody = Field(discriminator="outcome")


class BatchBody(_Body):
    counts: Counts
    items: list[BatchItem]


class CsvLineBody(_Body):
    """One line of a CSV file (``line``: its number in the file, the header being line 1)."""

    line: int = Field(ge=2)
    outcome: Literal["ACCEPTED", "CORRECTION", "DUPLICATE_IGNORED", "REJECTED"]
    external_ref: str | None
    procedure_short_ref: str | None = None
    notification_id: uuid.UUID | None = None
    revision: int | None = None
    warnings: list[str] = Field(default_factory=list)
    rejection_id: uuid.UUID | None = None
    errors: list[ErrorItem] = Field(default_factory=list)


class CsvBody(_Body):
    """The per-line report of a CSV file (the HTTP upload's answer and ``cli csv --json``)."""

    encoding: str = Field(examples=["utf-8", "windows-1252", "latin-1"], description="As detected (docs/ingest.md)")
    counts: Counts
    lines: list[CsvLineBody]


def error_items(errors: tuple[RejectionError, ...]) -> list[ErrorItem]:
    return [ErrorItem(code=e.code, field=e.field, message=e.message) for e in errors]


def accepted_body(receipt: Receipt) -> AcceptedBody:
    return AcceptedBody(
        outcome="CORRECTION" if receipt.outcome is Outcome.CORRECTION else "ACCEPTED",
        notification_id=receipt.notification_id,
        procedure_short_ref=receipt.procedure_short_ref,
        revision=receipt.revision,
        stage=receipt.stage,
        external_ref=receipt.external_ref,
        warnings=list(receipt.warnings),
    )


def rejected_body(rejection: RejectionReceipt) -> RejectedBody:
    return RejectedBody(
        rejection_id=rejection.rejection_id, external_ref=rejection.external_ref, errors=error_items(rejection.errors)
    )


def counts(results: list[IntakeResult]) -> Counts:
    """How many of ``results`` had each outcome."""
    outcomes = [result.outcome for result in results]
    return Counts(
        accepted=outcomes.count(Outcome.ACCEPTED),
        corrections=outcomes.count(Outcome.CORRECTION),
        duplicates=outcomes.count(Outcome.DUPLICATE_IGNORED),
        rejected=outcomes.count(Outcome.REJECTED),
    )


_LineOutcome = Literal["ACCEPTED", "CORRECTION", "DUPLICATE_IGNORED"]
_RECEIPT_OUTCOMES: dict[Outcome, _LineOutcome] = {
    Outcome.ACCEPTED: "ACCEPTED",
    Outcome.CORRECTION: "CORRECTION",
    Outcome.DUPLICATE_IGNORED: "DUPLICATE_IGNORED",
}


def _csv_line(line: int, external_ref: str | None, result: IntakeResult) -> CsvLineBody:
    if result.rejection is not None:
        rejection = result.rejection
        return CsvLineBody(
            line=line,
            outcome="REJECTED",
            external_ref=rejection.external_ref or external_ref,
            rejection_id=rejection.rejection_id,
            errors=error_items(rejection.errors),
        )
    receipt, outcome = result.receipt, _RECEIPT_OUTCOMES.get(result.outcome)
    if receipt is None or outcome is None:  # ALREADY_PROCESSED is a Kafka outcome only
        raise ValueError(f"line {line}: no receipt for outcome {result.outcome.value}")
    shared = {"external_ref", "procedure_short_ref", "notification_id", "revision", "warnings"}
    return CsvLineBody(line=line, outcome=outcome, **accepted_body(receipt).model_dump(include=shared))


def csv_body(report: CsvReport) -> CsvBody:
    """The report of a file whose lines were processed (not of a file rejected as a whole)."""
    return CsvBody(
        encoding=report.encoding,
        counts=counts([line.result for line in report.lines]),
        lines=[_csv_line(line.line, line.external_ref, line.result) for line in report.lines],
    )
