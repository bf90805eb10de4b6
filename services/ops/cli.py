"""``prevex-ops``: follow a case across the services and act on what failed (docs/operations.md).

Commands (``--help`` on each):

- ``trace QUERY``: a case's whole journey in time order (``--json``; ``--with-personal-data``, audited);
- ``rejections list|show|resubmit …``: ingest's rejections (the same command as ``python -m services.ingest.cli``);
- ``status-refusals list|show``: partners' and the CCAPEX's status changes orientation did not apply;
- ``dead-letters list|show|replay``: records parked by any service, and their replay after a fix;
- ``queues``: each outbox and the notifier's retry queue;
- ``lag``: each consumer group's lag per partition.

Exit codes: 0 done, 1 an input was rejected (``rejections resubmit``), 2 usage or settings error, 3 not found,
4 a database or the broker cannot be reached (nothing was changed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.ingest import cli as ingest_cli
from services.ingest.settings import IngestSettings
from services.ops.audit import operator_name, record_read
from services.ops.dead_letters import DeadLetterRef, list_dead_letters, replay, show_dead_letter
from services.ops.journey import NotFoundError, trace
from services.ops.queues import consumer_lag, queue_status
from services.ops.readers import Schemas, connect, open_schemas
from services.ops.refusals import list_refusals, show_refusal
from services.ops.settings import SCHEMAS, OpsSettings, SettingsMissingError
from services.ops.timeline import render_json, render_text
from services.platform import tracing
from services.platform.logging import configure_logging
from services.platform.settings import ServiceSettings

__all__ = ["main", "run"]

EXIT_OK, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNREACHABLE = 0, 2, 3, 4
# What a database or the broker answers when it cannot be reached or used as configured: a message, not a
# traceback. Errors of our own SQL are not among them (PostgresError is not caught).
_UNREACHABLE = (
    OSError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidPasswordError,
    KafkaError,
)


def _complain(message: str) -> None:
    sys.stderr.write(message + "\n")


def _dead_letter_ref(text: str) -> DeadLetterRef:
    try:
        ref = DeadLetterRef.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if ref.service not in SCHEMAS:
        raise argparse.ArgumentTypeError(f"unknown service {ref.service!r}: one of {', '.join(SCHEMAS)}")
    return ref


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prevex-ops", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    tracing = commands.add_parser("trace", help="a case's whole journey across the services, in time order")
    tracing.add_argument("query", help="procedure reference, external or procedure ref of an emitter, or an id")
    tracing.add_argument("--json", action="store_true", help="one JSON document")
    tracing.add_argument(
        "--with-personal-data", action="store_true", help="show household, amounts, recipients (audit-logged)"
    )

    rejections = commands.add_parser(
        "rejections", help="ingest's rejections: list, show, resubmit (see python -m services.ingest.cli rejections -h)"
    )
    rejections.add_argument("arguments", nargs=argparse.REMAINDER)

    refusals = commands.add_parser("status-refusals", help="status changes orientation refused: list, show")
    refused = refusals.add_subparsers(dest="action", required=True)
    listing = refused.add_parser("list", help="refused status changes, newest first")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    show = refused.add_parser("show", help="one refused status change")
    show.add_argument("event_id", type=uuid.UUID, help="the assignment.status event's id")
    show.add_argument("--json", action="store_true")

    dead = commands.add_parser("dead-letters", help="records parked by any service: list, show, replay")
    actions = dead.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every service's dead letters, oldest first")
    listing.add_argument("--topic")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one dead letter: position, error, key, headers, correlation id")
    show.add_argument("ref", type=_dead_letter_ref, help="SERVICE:ID as listed")
    show.add_argument("--json", action="store_true")
    again = actions.add_parser("replay", help="publish it again to its topic as received, then delete it")
    again.add_argument("ref", type=_dead_letter_ref, help="SERVICE:ID as listed")

    queues = commands.add_parser("queues", help="outboxes and the notifier's retry queue")
    queues.add_argument("--json", action="store_true")
    lag = commands.add_parser("lag", help="consumer lag per group, topic and partition (not on Tansu: see docs)")
    lag.add_argument("--json", action="store_true")
    return parser


def _print_rows(rows: Sequence[dict[str, Any]], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        json.dump(rows, out, default=str, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items() if v is not None), file=out)


async def _trace(args: argparse.Namespace, settings: OpsSettings, out: TextIO) -> int:
    personal = bool(args.with_personal_data)
    if personal:
        settings.audit_url()  # fail before reading anything when the read could not be audited
    async with open_schemas(settings) as schemas:
        try:
            journey = await trace(schemas, args.query)
        except NotFoundError:
            _complain(f"prevex-ops: no service knows {args.query!r}")
            return EXIT_NOT_FOUND
    if personal:
        ids = [p["procedure_id"] for p in journey.procedures]
        operator = operator_name(settings.operator)
        await record_read(settings.audit_url(), operator=operator, command="trace", query=args.query, procedure_ids=ids)
    (render_json if args.json else render_text)(journey, out, personal=personal)
    return EXIT_OK


async def _dead_letters(args: argparse.Namespace, settings: OpsSettings, out: TextIO) -> int:
    if args.action == "replay":
        ref: DeadLetterRef = args.ref
        conn = await connect(settings.url_of(ref.service), SCHEMAS[ref.service], read_only=False)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            replayed = await replay(conn, ref, producer)
        finally:
            await producer.stop()
            await conn.close()
        if replayed is None:
            _complain(f"prevex-ops: no dead letter {ref}")
            return EXIT_NOT_FOUND
        _print_rows([replayed], out, as_json=False)
        return EXIT_OK
    return await _list_or_show(
        args,
        settings,
        out,
        listing=lambda schemas: list_dead_letters(schemas, topic=args.topic, limit=args.limit),
        showing=lambda schemas: show_dead_letter(schemas, args.ref),
        missing=lambda: f"no dead letter {args.ref}",
    )


async def _status_refusals(args: argparse.Namespace, settings: OpsSettings, out: TextIO) -> int:
    return await _list_or_show(
        args,
        settings,
        out,
        listing=lambda schemas: list_refusals(schemas, limit=args.limit),
        showing=lambda schemas: show_refusal(schemas, args.event_id),
        missing=lambda: f"no refused status change {args.event_id}",
    )


async def _list_or_show(
    args: argparse.Namespace,
    settings: OpsSettings,
    out: TextIO,
    *,
    listing: Callable[[Schemas], Awaitable[list[dict[str, Any]]]],
    showing: Callable[[Schemas], Awaitable[dict[str, Any] | None]],
    missing: Callable[[], str],
) -> int:
    """``list`` prints what ``listing`` finds; ``show`` what ``showing`` finds, or says ``missing()`` (exit 3). The
    callables read the arguments only for the action that has them."""
    async with open_schemas(settings) as schemas:
        if args.action == "list":
            _print_rows(await listing(schemas), out, as_json=args.json)
            return EXIT_OK
        shown = await showing(schemas)
    if shown is None:
        _complain(f"prevex-ops: {missing()}")
        return EXIT_NOT_FOUND
    _print_rows([shown], out, as_json=args.json)
    return EXIT_OK


async def _rejections(args: argparse.Namespace, settings: OpsSettings, out: TextIO) -> int:
    ingest = IngestSettings(database_url=settings.url_of("ingest"))
    return await ingest_cli.run(["rejections", *args.arguments], settings=ingest, out=out)


async def _queues(args: argparse.Namespace, settings: OpsSettings, out: TextIO) -> int:
    async with open_schemas(settings) as schemas:
        _print_rows(await queue_status(schemas), out, as_json=args.json)
    return EXIT_OK


async def _lag(args: argparse.Namespace, settings: OpsSettings, out: TextIO) -> int:
    _print_rows(await consumer_lag(settings.kafka_bootstrap_servers), out, as_json=args.json)
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace, OpsSettings, TextIO], Awaitable[int]]] = {
    "trace": _trace,
    "rejections": _rejections,
    "status-refusals": _status_refusals,
    "dead-letters": _dead_letters,
    "queues": _queues,
    "lag": _lag,
}


async def run(argv: Sequence[str], *, settings: OpsSettings | None = None, out: TextIO = sys.stdout) -> int:
    """Run one command (``settings`` default to the environment's ``PREVEX_OPS_*``); its exit code. A usage
    error exits 2 through argparse; a missing setting returns 2 with a message naming it; a database or
    broker that cannot be reached returns 4 with a message naming the error."""
    args = _parser().parse_args(argv)
    try:
        return await _COMMANDS[args.command](args, settings or OpsSettings(), out)
    except SettingsMissingError as error:
        _complain(f"prevex-ops: {error}")
        return EXIT_USAGE
    except _UNREACHABLE as error:
        _complain(f"prevex-ops: {args.command}: cannot reach a database or the broker: {type(error).__name__}: {error}")
        return EXIT_UNREACHABLE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``prevex-ops``: logs (warnings, errors, replays) go to stderr as JSON, stdout carries
    the command's output; tracing as the services' settings say (off by default)."""
    configure_logging("ops", "INFO")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    # PREVEX_TRACING / OTEL_EXPORTER_OTLP_ENDPOINT as for the services: a replay is then a span.
    provider = tracing.configure("ops", ServiceSettings().tracing_mode)
    try:
        return asyncio.run(run(sys.argv[1:] if argv is None else argv))
    finally:
        if provider is not None:
            provider.shutdown()  # exports the spans still batched


if __name__ == "__main__":
    sys.exit(main())
