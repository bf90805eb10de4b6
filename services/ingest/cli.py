"""Ops command line of ingest: ``python -m services.ingest.cli <command>`` (connects with ``INGEST_DATABASE_URL``).

Commands (``--help`` on each for its options):

- ``csv FILE --emitter SIRET``: ingest a bailleur CSV export, print the per-line report;
- ``rejections list|show|resubmit``: find rejections, read one, re-submit a corrected payload for it (or,
  ``--stored``, its own raw payload: after an ``INTERNAL_ERROR``, once the code is fixed);
- ``purge-raw``: blank raw payloads older than the retention now (the service also does it hourly);
- ``api-key``: a new API key for an emitter, and the hash to put in the emitters file;
- ``openapi``: print the HTTP API's OpenAPI document (``--check``: compare with the committed one).

What the CLI submits goes through the same intake and outbox as the service; the running service's
relay publishes the events (it wakes on the commit's NOTIFY). Exit codes: 0 done, 1 an input was
rejected (or the OpenAPI document drifted), 2 usage error, 3 not found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import asyncpg

from services.ingest import repository as repo
from services.ingest.bootstrap import MIGRATIONS, build_intake, purge_expired_raw
from services.ingest.emitters import EmitterRegistry, load_emitters, new_api_key
from services.ingest.http import create_app, render_openapi
from services.ingest.intake import SCHEMA, IntakeResult, Outcome
from services.ingest.reports import csv_body
from services.ingest.settings import IngestSettings
from services.ingest.submissions import Submissions, csv_allowed
from services.platform.db import open_schema
from services.platform.logging import configure_logging

__all__ = ["OPENAPI_PATH", "main", "run"]

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"
EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.ingest.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    csv = commands.add_parser("csv", help="ingest a bailleur CSV export and print the per-line report")
    csv.add_argument("file", type=Path)
    csv.add_argument("--emitter", required=True, help="SIRET of the bailleur the file comes from")
    csv.add_argument("--json", action="store_true", help="print the report as JSON (as the HTTP upload answers)")

    rejections = commands.add_parser("rejections", help="list, show and re-submit rejections")
    actions = rejections.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="rejections, newest first")
    listing.add_argument("--emitter", help="only this emitter's")
    listing.add_argument("--since", type=_timestamp, help="only since this date or ISO timestamp (UTC)")
    listing.add_argument("--code", help="only with this code (REQUIRED_FOR_STAGE_MISSING matches every field)")
    listing.add_argument("--unresolved", action="store_true", help="only those no accepted re-submission corrected")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one rejection, its errors and (with --payload) its raw payload")
    show.add_argument("rejection_id", type=uuid.UUID)
    show.add_argument("--payload", action="store_true", help="print the raw payload (personal data: screen only)")
    resubmit = actions.add_parser("resubmit", help="re-submit a corrected JSON payload for a rejection")
    resubmit.add_argument("rejection_id", type=uuid.UUID)
    resubmit.add_argument("file", nargs="?", help="the corrected payload (JSON source document), or - for stdin")
    resubmit.add_argument(
        "--stored", action="store_true", help="instead of a file: the rejection's own raw payload (INTERNAL_ERROR)"
    )
    resubmit.add_argument("--emitter", help="submit as this emitter (to correct EMITTER_UNKNOWN)")

    purge = commands.add_parser("purge-raw", help="blank raw payloads older than the retention, now")
    purge.add_argument("--older-than-days", type=int, help="default: INGEST_RAW_RETENTION_DAYS")

    commands.add_parser("api-key", help="a new API key and its hash for deploy/emitters/emitters.yaml")
    openapi = commands.add_parser("openapi", help="print the HTTP API's OpenAPI document")
    openapi.add_argument("--check", action="store_true", help=f"exit 1 if {OPENAPI_PATH.name} differs")
    openapi.add_argument("--write", action="store_true", help=f"write it to {OPENAPI_PATH.name}")
    return parser


def _complain(message: str) -> None:
    sys.stderr.write(message + "\n")


def _read_input(name: str) -> bytes:
    """A file's bytes, or stdin's for ``-``."""
    return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@asynccontextmanager
async def _pool(settings: IngestSettings, schema: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the ingest schema, migrated first, as the service opens it."""
    pool = await open_schema(settings.database_url, schema=schema, migrations=MIGRATIONS, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def _print_result(result: IntakeResult, out: TextIO, prefix: str = "") -> None:
    if result.rejection is not None:
        rejection = result.rejection
        codes = ", ".join(f"{e.code} at {e.field}" if e.field else e.code for e in rejection.errors)
        print(f"{prefix}REJECTED {codes} (ref {rejection.external_ref}) rejection {rejection.rejection_id}", file=out)
    elif result.receipt is not None:
        receipt = result.receipt
        warnings = f" [{', '.join(receipt.warnings)}]" if receipt.warnings else ""
        print(
            f"{prefix}{result.outcome.value} {receipt.procedure_short_ref} revision {receipt.revision}"
            f" (ref {receipt.external_ref}){warnings}",
            file=out,
        )


async def _csv(args: argparse.Namespace, settings: IngestSettings, schema: str, out: TextIO) -> int:
    emitters = load_emitters(settings.emitters_path)
    emitter = emitters.get(args.emitter)
    if emitter is None or not csv_allowed(emitter):
        _complain(f"emitter {args.emitter!r} is not a registered bailleur")
        return EXIT_USAGE
    data = await asyncio.to_thread(_read_input, str(args.file))
    async with _pool(settings, schema) as pool:
        report = await _submissions(settings, emitters, pool).csv(emitter, data, channel="cli:csv")
    if report.file_rejection is not None:
        _print_result(report.file_rejection, out, "file: ")
        return EXIT_REJECTED
    body = csv_body(report)
    if args.json:
        print(body.model_dump_json(indent=2), file=out)
    else:
        c = body.counts
        print(
            f"file: {body.encoding}, {len(body.lines)} lines: {c.accepted} accepted, {c.corrections} corrections,"
            f" {c.duplicates} duplicates, {c.rejected} rejected",
            file=out,
        )
        for line in report.lines:
            _print_result(line.result, out, f"line {line.line}: ")
    return EXIT_REJECTED if report.count(Outcome.REJECTED) else EXIT_OK


def _submissions(settings: IngestSettings, emitters: EmitterRegistry, pool: asyncpg.Pool) -> Submissions:
    """The submissions of this CLI process: the intake ``settings`` configure, on ``pool``."""
    return Submissions(build_intake(settings), emitters, lambda: pool, now=settings.make_clock().now)


async def _rejections(args: argparse.Namespace, settings: IngestSettings, schema: str, out: TextIO) -> int:
    async with _pool(settings, schema) as pool:
        if args.action == "list":
            return await _list(args, pool, out)
        if args.action == "show":
            async with pool.acquire() as conn:
                detail = await repo.get_rejection(conn, args.rejection_id)
            if detail is None:
                _complain(f"no rejection {args.rejection_id}")
                return EXIT_NOT_FOUND
            _show(detail, out, payload=args.payload)
            return EXIT_OK
        payload = await _resubmitted_payload(args, pool)
        if payload is None:
            return EXIT_NOT_FOUND
        submissions = _submissions(settings, load_emitters(settings.emitters_path), pool)
        result = await submissions.resubmit(args.rejection_id, payload, emitter_id=args.emitter)
    if result is None:
        _complain(f"no rejection {args.rejection_id}")
        return EXIT_NOT_FOUND
    _print_result(result, out)
    return EXIT_REJECTED if result.outcome is Outcome.REJECTED else EXIT_OK


async def _resubmitted_payload(args: argparse.Namespace, pool: asyncpg.Pool) -> bytes | None:
    """The payload ``rejections resubmit`` submits: the file's, or the rejection's stored raw payload
    (``None``, after saying why, when there is no such rejection or its payload was purged)."""
    if not args.stored:
        return await asyncio.to_thread(_read_input, args.file)
    async with pool.acquire() as conn:
        detail = await repo.get_rejection(conn, args.rejection_id)
    if detail is None or not detail.payload:
        _complain(f"no stored payload for rejection {args.rejection_id}")
        return None
    return detail.payload


async def _list(args: argparse.Namespace, pool: asyncpg.Pool, out: TextIO) -> int:
    async with pool.acquire() as conn:
        found = await repo.list_rejections(
            conn,
            emitter_id=args.emitter,
            since=args.since,
            code=args.code,
            unresolved=args.unresolved,
            limit=args.limit,
        )
    for item in found:
        if args.json:
            fields = {
                "rejection_id": str(item.rejection_id),
                "created_at": item.created_at.isoformat(),
                "emitter_id": item.emitter_id,
                "external_ref": item.external_ref,
                "codes": list(item.codes),
                "channel": item.channel,
                "source_line": item.source_line,
                "resolved_by": str(item.resolved_by) if item.resolved_by else None,
            }
            print(json.dumps(fields), file=out)
            continue
        line = f" line {item.source_line}" if item.source_line else ""
        resolved = f" resolved by {item.resolved_by}" if item.resolved_by else ""
        print(
            f"{item.rejection_id} {item.created_at:%Y-%m-%d %H:%M} {item.emitter_id} ref {item.external_ref}"
            f" {','.join(item.codes)} via {item.channel}{line}{resolved}",
            file=out,
        )
    return EXIT_OK


def _show(detail: repo.RejectionDetail, out: TextIO, *, payload: bool) -> None:
    summary = detail.summary
    print(f"rejection   {summary.rejection_id} at {summary.created_at.isoformat()}", file=out)
    print(f"emitter     {summary.emitter_id}, ref {summary.external_ref}, via {summary.channel}", file=out)
    if summary.source_line:
        print(f"line        {summary.source_line}", file=out)
    print(f"raw input   {detail.raw_id} ({detail.source_system}), sha256 {detail.payload_sha256}", file=out)
    if summary.resolved_by:
        print(f"resolved by {summary.resolved_by}", file=out)
    for error in detail.errors:
        print(f"  {error['code']}  {error.get('field') or '-'}  {error['message']}", file=out)
    if payload:
        text = detail.payload.decode("utf-8", "replace") if detail.payload else "(purged after the retention period)"
        print(text, file=out)


def _openapi(args: argparse.Namespace, settings: IngestSettings, out: TextIO) -> int:
    emitters = load_emitters(settings.emitters_path)
    app = create_app(intake=build_intake(settings), emitters=emitters, pool=_no_pool, settings=settings)
    document = render_openapi(app)
    if args.write:
        OPENAPI_PATH.write_text(document, "utf-8")
        return EXIT_OK
    if args.check:
        current = OPENAPI_PATH.read_text("utf-8") if OPENAPI_PATH.exists() else ""
        if current != document:
            _complain(f"{OPENAPI_PATH} is stale: run python -m services.ingest.cli openapi --write")
            return EXIT_REJECTED
        return EXIT_OK
    out.write(document)
    return EXIT_OK


def _no_pool() -> asyncpg.Pool:
    raise RuntimeError("the OpenAPI document needs no database")


async def run(
    argv: Sequence[str], *, settings: IngestSettings | None = None, schema: str = SCHEMA, out: TextIO = sys.stdout
) -> int:
    """Run one command; ``settings`` and ``schema`` default to the service's (tests pass their own)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "rejections" and args.action == "resubmit" and args.stored == (args.file is not None):
        parser.error("rejections resubmit takes either a file or --stored")
    settings = settings or IngestSettings()
    if args.command == "csv":
        return await _csv(args, settings, schema, out)
    if args.command == "rejections":
        return await _rejections(args, settings, schema, out)
    if args.command == "purge-raw":
        days = args.older_than_days or settings.raw_retention_days
        async with _pool(settings, schema) as pool:
            purged = await purge_expired_raw(pool, days, now=settings.make_clock().now())
        print(f"{purged} raw payloads purged (older than {days} days)", file=out)
        return EXIT_OK
    if args.command == "api-key":
        key, digest = new_api_key()
        print(f"key (give it to the emitter, once): {key}", file=out)
        print(f"api_keys_sha256 entry:              {digest}", file=out)
        return EXIT_OK
    return _openapi(args, settings, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m services.ingest.cli``: logs (warnings and errors) go to stderr as JSON."""
    configure_logging("ingest-cli", "WARNING")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)  # stdout carries the command's own output (reports, JSON)
    return asyncio.run(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
