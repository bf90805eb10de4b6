"""Inputs that do not come from Kafka: HTTP notifications, CSV files, corrected re-submissions.

Each is turned into :class:`~services.ingest.intake.RawInput`, carrying the emitter its caller
authenticated (the HTTP API from the API key, the CLI from its ``--emitter``), and goes through the very same
:meth:`Intake.process` as a Kafka batch, in a transaction of its own, so its rows and outbox events
commit together exactly as on the Kafka path. Used by the HTTP API and by the ops CLI.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from schemas.procedure import EmitterType, SourceSystem
from schemas.sources import BAILLEUR_NOTICE_FORMAT
from services.ingest import repository as repo
from services.ingest.domain.csv_rows import CsvLine, parse_csv
from services.ingest.domain.normalise import FORMAT_EMITTER_TYPES, Emitter
from services.ingest.domain.rejections import WarningCode
from services.ingest.emitters import EmitterRegistry
from services.ingest.intake import Intake, IntakeResult, Outcome, RawInput, Refusal
from services.platform.logging import get_logger

__all__ = [
    "CSV_CHUNK_LINES",
    "CsvLineResult",
    "CsvReport",
    "Submissions",
    "api_source_system",
    "csv_allowed",
]

CSV_CHUNK_LINES = 500
"""CSV lines per transaction: a huge file commits as it goes, and a re-run after a crash finds the
committed lines as duplicates."""

log = get_logger(__name__)


def api_source_system(emitter: Emitter) -> SourceSystem:
    """The adapter an emitter's HTTP input is recorded under (``source.system``).

    The préfecture's CFP data comes out of EXPLOC, where it instructs the réquisitions: its inputs are
    the canonical record's EXPLOC-derived adapter, as on its raw topic.
    """
    if emitter.emitter_type is EmitterType.COMMISSAIRE_JUSTICE:
        return SourceSystem.CJ_API
    if emitter.emitter_type is EmitterType.PREFECTURE:
        return SourceSystem.EXPLOC_EXPORT
    return SourceSystem.BAILLEUR_API


def csv_allowed(emitter: Emitter) -> bool:
    """Whether ``emitter`` may send CSV files: their lines are bailleur notices."""
    return emitter.emitter_type in FORMAT_EMITTER_TYPES[BAILLEUR_NOTICE_FORMAT]


@dataclass(frozen=True, slots=True)
class CsvLineResult:
    """The outcome of one line of a CSV file."""

    line: int
    external_ref: str | None
    result: IntakeResult


@dataclass(frozen=True, slots=True)
class CsvReport:
    """Per-line outcomes of a CSV file; or, when the file could not be read as a whole (its header), the
    rejection of the file, stored as one raw input."""

    encoding: str
    lines: tuple[CsvLineResult, ...]
    file_rejection: IntakeResult | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for line in self.lines if line.result.outcome is outcome)


class Submissions:
    """Runs non-Kafka inputs through the intake, each call in its own transaction(s)."""

    def __init__(
        self,
        intake: Intake,
        emitters: EmitterRegistry,
        pool: Callable[[], asyncpg.Pool],
        *,
        now: Callable[[], datetime],
    ) -> None:
        """``emitters`` resolves the emitter of a re-submission (the other inputs come with theirs)."""
        self._intake = intake
        self._emitters = emitters
        self._pool = pool
        self._now = now

    async def _process(self, inputs: Sequence[RawInput], received_at: datetime) -> list[IntakeResult]:
        async with self._pool().acquire() as conn, conn.transaction():
            return await self._intake.process(conn, inputs, clock=received_at.date())

    async def notifications(
        self, emitter: Emitter, payloads: Sequence[bytes], *, channel: str = "http"
    ) -> list[IntakeResult]:
        """JSON notifications from an authenticated emitter, all in one transaction."""
        received_at = self._now()
        system = api_source_system(emitter)
        inputs = [RawInput(p, system, channel, emitter.emitter_id, received_at, emitter) for p in payloads]
        return await self._process(inputs, received_at)

    async def refused(
        self, emitter: Emitter, payload: bytes, refusal: Refusal, *, channel: str, csv: bool = False
    ) -> IntakeResult:
        """A payload an adapter could not read (a batch that is not a JSON array, an upload without its CSV
        file when ``csv``): stored and rejected."""
        received_at = self._now()
        system = SourceSystem.BAILLEUR_SFTP if csv else api_source_system(emitter)
        raw = RawInput(payload, system, channel, emitter.emitter_id, received_at, emitter, refusal=refusal)
        [result] = await self._process([raw], received_at)
        return result

    async def csv(self, emitter: Emitter, data: bytes, *, channel: str) -> CsvReport:
        """A bailleur CSV export: every line a raw input of its own, committed by chunks of lines.

        A line that cannot be read is rejected on its own; only a file whose header is not this format's
        is rejected as a whole (and stored as one raw input). The caller checks :func:`csv_allowed` first.
        """
        received_at = self._now()
        parsed = parse_csv(data, emitter_siret=emitter.emitter_id)
        if parsed.error is not None:
            refusal = Refusal(parsed.error)
            system = SourceSystem.BAILLEUR_SFTP
            raw = RawInput(data, system, channel, emitter.emitter_id, received_at, emitter, refusal=refusal)
            [result] = await self._process([raw], received_at)
            return CsvReport(parsed.encoding, (), result)
        results: list[CsvLineResult] = []
        for start in range(0, len(parsed.lines), CSV_CHUNK_LINES):
            chunk = parsed.lines[start : start + CSV_CHUNK_LINES]
            inputs = [_csv_input(line, emitter, channel, received_at) for line in chunk]
            for line, result in zip(chunk, await self._process(inputs, received_at), strict=True):
                results.append(CsvLineResult(line.line, line.external_ref, result))
        # docs/domain.md §9.8 (S-08): reading French amounts is a coercion the JSON API never does; say how often.
        coerced = sum(1 for line in parsed.lines if WarningCode.AMOUNT_COERCED.value in line.warnings)
        log.info("csv_processed", lines=len(results), amount_coerced=coerced, encoding=parsed.encoding)
        return CsvReport(parsed.encoding, tuple(results))

    async def resubmit(
        self, rejection_id: uuid.UUID, payload: bytes, *, emitter_id: str | None = None
    ) -> IntakeResult | None:
        """A corrected payload for a rejection, recorded as a manual input that points at it.

        The emitter is the rejection's own unless ``emitter_id`` overrides it (to correct an
        ``EMITTER_UNKNOWN``), looked up here; one that is not registered rejects the input ``EMITTER_UNKNOWN``.
        ``None`` when the rejection does not exist.
        """
        async with self._pool().acquire() as conn:
            rejection = await repo.get_rejection(conn, rejection_id)
        if rejection is None:
            return None
        received_at = self._now()
        emitter_key = emitter_id or rejection.summary.emitter_id
        raw = RawInput(
            payload,
            SourceSystem.MANUAL,
            "cli:resubmit",
            emitter_key,
            received_at,
            self._emitters.get(emitter_key),
            corrects_rejection_id=rejection_id,
        )
        [result] = await self._process([raw], received_at)
        return result


def _csv_input(line: CsvLine, emitter: Emitter, channel: str, received_at: datetime) -> RawInput:
    return RawInput(
        payload=line.raw,
        source_system=SourceSystem.BAILLEUR_SFTP,
        channel=channel,
        emitter_key=emitter.emitter_id,
        received_at=received_at,
        emitter=emitter,
        document=line.document,
        refusal=None if line.error is None else Refusal(line.error, line.external_ref),
        warnings=line.warnings,
        source_line=line.line,
    )
