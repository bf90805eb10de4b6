"""``python -m services.orientation.cli``: the référentiel file, simulation, admin tokens, OpenAPI document.

    referential validate FILE...             check files; every problem with its path (exit 1 if any)
    referential import FILE [--dry-run]      a new version in the database when the file differs
    referential export [--version N] [-o F]  the database's référentiel (current or version N) as YAML
    referential diff OLD NEW                 OLD and NEW: a file, ``db:`` (current) or ``db:N`` (exit 1 if they differ)
    simulate NOTICE.json [--referential F]   the decision and every offer's explanation; writes nothing
    token new --name NAME [--role ROLE]      a new admin API token and the line for the tokens file
    openapi [--check]                        write services/orientation/openapi.json, or check it is current

The database is ``--database-url`` or ``ORIENTATION_DATABASE_URL``. An import enqueues the changed
structures on the référentiel topic in the same transaction; the running service's outbox relay
publishes them and its consumers switch to the new version at their next batch. Exit codes: 0 done,
1 invalid or different, 2 usage or environment error (file missing, database unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import TextIO

import asyncpg
import yaml
from pydantic import ValidationError

from services.orientation import referential_repository as ref_repo
from services.orientation.auth import Role, hash_token, new_token
from services.orientation.bootstrap import MIGRATIONS
from services.orientation.domain.diff import diff_referentials
from services.orientation.domain.matching import Matcher
from services.orientation.domain.referential import Referential
from services.orientation.domain.referential_yaml import ReferentialError, dump_referential, load_referential
from services.orientation.referential_store import SCHEMA, commit_referential, load_active
from services.orientation.settings import OrientationSettings
from services.orientation.simulate import parse_canonical, read_state, run_simulation
from services.platform.db import Conn, connect_pool, open_schema

__all__ = ["main", "run"]

DB_PREFIX = "db:"
OK, DIFFERENT, FAILED = 0, 1, 2


class CliError(Exception):
    """A usage or environment problem: printed, exit code 2."""


class InvalidFileError(Exception):
    """A référentiel file that does not validate: its problems are printed, exit code 1."""

    def __init__(self, path: Path, error: ReferentialError) -> None:
        super().__init__(f"{path}: {error}")


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(asyncio.run(run(list(sys.argv[1:] if argv is None else argv))))


async def run(argv: list[str], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one command; return its exit code (what ``main`` exits with)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        code: int = await args.command(args, out)
    except CliError as error:
        print(f"error: {error}", file=err)
        return FAILED
    except InvalidFileError as error:
        print(str(error), file=err)
        return DIFFERENT
    return code


# ------------------------------------------------------------------------------------ référentiel


async def _validate(args: argparse.Namespace, out: TextIO) -> int:
    code = OK
    for path in args.files:
        try:
            referential = _read_file(path)
        except InvalidFileError as error:
            print(str(error), file=out)
            code = DIFFERENT
            continue
        print(f"{path}: ok, {len(referential.structures)} structures, {len(referential.offers)} offers", file=out)
    return code


async def _import(args: argparse.Namespace, out: TextIO) -> int:
    referential = _read_file(args.file)
    async with _database(args, migrate=not args.dry_run) as conn:
        if args.dry_run:
            latest = await ref_repo.latest_version(conn)
            current = (await load_active(conn, latest)).referential if latest is not None else None
            print(diff_referentials(current, referential).text(), file=out)
            return OK
        async with conn.transaction():
            commit = await commit_referential(
                conn, lambda _: referential, source=f"cli import {args.file.name}", author=args.author
            )
    if commit.created:
        print(f"version {commit.active.version} created:\n{commit.diff.text()}", file=out)
    else:
        print(f"no change: version {commit.active.version} is current", file=out)
    return OK


async def _export(args: argparse.Namespace, out: TextIO) -> int:
    async with _database(args) as conn:
        referential = await _from_database(conn, args.version)
    text = dump_referential(referential)
    if args.output is None:
        out.write(text)
    else:
        args.output.write_text(text, "utf-8")
        print(f"wrote {args.output}", file=out)
    return OK


async def _diff(args: argparse.Namespace, out: TextIO) -> int:
    sides = []
    for source in (args.old, args.new):
        if source.startswith(DB_PREFIX):
            async with _database(args) as conn:
                sides.append(await _from_database(conn, _db_version(source)))
        else:
            sides.append(_read_file(Path(source)))
    changes = diff_referentials(sides[0], sides[1])
    print(changes.text(), file=out)
    return DIFFERENT if changes else OK


# --------------------------------------------------------------------------------------- simulate


async def _simulate(args: argparse.Namespace, out: TextIO) -> int:
    try:
        canonical = parse_canonical(args.notice.read_bytes())
    except OSError as error:
        raise CliError(f"{args.notice}: {error.strerror}") from None
    except ValidationError as error:
        problems = "\n".join(f"  - {'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in error.errors())
        print(f"{args.notice}: not a ProcedureNotice nor a ProcedureNotification:\n{problems}", file=out)
        return DIFFERENT
    k = args.k or OrientationSettings().max_structures
    on: date | None = args.on
    if args.referential is not None:
        referential = _read_file(args.referential)
        result = run_simulation(Matcher(referential), canonical, referentiel_version=None, k=k, on=on)
    else:
        async with _database(args) as conn:
            latest = await ref_repo.latest_version(conn)
            if latest is None:
                raise CliError("the database holds no référentiel; import one or pass --referential FILE")
            try:
                active = await load_active(conn, args.version or latest)
            except LookupError:
                raise CliError(f"no référentiel version {args.version}") from None
            now = OrientationSettings().make_clock().now()
            state = None if args.no_state else await read_state(conn, canonical, active.referential, now=now)
        result = run_simulation(active.matcher, canonical, referentiel_version=active.version, k=k, on=on, state=state)
    print(result.model_dump_json(indent=2) if args.json else result.text, file=out)
    return OK


# ------------------------------------------------------------------------------------ token, openapi


async def _token(args: argparse.Namespace, out: TextIO) -> int:
    token = new_token()
    roles = args.roles or [Role.ADMIN]
    entry = {"name": args.name, "sha256": hash_token(token), "roles": [role.value for role in roles]}
    print(f"token (shown once, give it to {args.name}): {token}", file=out)
    print("add to the tokens file (ORIENTATION_ADMIN_TOKENS_PATH), under `tokens:`:", file=out)
    print(yaml.safe_dump([entry], sort_keys=False).rstrip(), file=out)
    return OK


async def _openapi(args: argparse.Namespace, out: TextIO) -> int:
    from services.orientation.http import OPENAPI_PATH, openapi_document  # noqa: PLC0415 - only this command needs FastAPI

    text = openapi_document()
    if args.check:
        current = OPENAPI_PATH.read_text("utf-8") if OPENAPI_PATH.exists() else ""
        if current != text:
            print(f"{OPENAPI_PATH} is stale: run python -m services.orientation.cli openapi", file=out)
            return DIFFERENT
        print(f"{OPENAPI_PATH} is current", file=out)
        return OK
    OPENAPI_PATH.write_text(text, "utf-8")
    print(f"wrote {OPENAPI_PATH}", file=out)
    return OK


# ----------------------------------------------------------------------------------------- helpers


def _read_file(path: Path) -> Referential:
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise CliError(f"{path}: {error.strerror}") from None
    try:
        return load_referential(text)
    except ReferentialError as error:
        raise InvalidFileError(path, error) from None


def _db_version(source: str) -> int | None:
    suffix = source.removeprefix(DB_PREFIX)
    if suffix in ("", "latest"):
        return None
    if not suffix.isdigit():
        raise CliError(f"{source!r}: expected db:, db:latest or db:<version number>")
    return int(suffix)


async def _from_database(conn: Conn, version: int | None) -> Referential:
    wanted = version or await ref_repo.latest_version(conn)
    if wanted is None:
        raise CliError("the database holds no référentiel")
    try:
        return (await load_active(conn, wanted)).referential
    except LookupError:
        raise CliError(f"no référentiel version {wanted}") from None


@asynccontextmanager
async def _database(args: argparse.Namespace, *, migrate: bool = False) -> AsyncIterator[Conn]:
    """A connection on the orientation schema: migrated first as the service opens it when ``migrate``,
    else one that must already hold the référentiel tables."""
    url = args.database_url or OrientationSettings().database_url
    try:
        if migrate:
            pool = await open_schema(url, schema=args.schema, migrations=MIGRATIONS, max_size=2)
        else:
            pool = await connect_pool(url, schema=args.schema, min_size=1, max_size=2)
    except (OSError, asyncpg.PostgresError) as error:
        raise CliError(f"cannot reach the database: {error}") from None
    try:
        async with pool.acquire() as conn:
            if not migrate and not await conn.fetchval("SELECT to_regclass('referential_version') IS NOT NULL"):
                raise CliError(f"schema {args.schema!r} has no référentiel tables (never migrated)")
            yield conn
    finally:
        await pool.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.orientation.cli", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--database-url", help="PostgreSQL DSN (default: ORIENTATION_DATABASE_URL)")
    database.add_argument("--schema", default=SCHEMA, help=argparse.SUPPRESS)  # tests use a schema of their own

    referential = commands.add_parser("referential", help="validate, import, export, diff référentiel files")
    actions = referential.add_subparsers(required=True, metavar="ACTION")
    validate = actions.add_parser("validate", help="check files, listing every problem with its path")
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.set_defaults(command=_validate)
    do_import = actions.add_parser("import", parents=[database], help="store a file as a new version if it differs")
    do_import.add_argument("file", type=Path, metavar="FILE")
    do_import.add_argument("--author", default=getpass.getuser(), help="recorded with the version (default: login)")
    do_import.add_argument("--dry-run", action="store_true", help="only show what would change")
    do_import.set_defaults(command=_import)
    export = actions.add_parser("export", parents=[database], help="the database's référentiel as YAML")
    export.add_argument("--version", type=int, help="a past version (default: the current one)")
    export.add_argument("-o", "--output", type=Path, help="write to this file (default: stdout)")
    export.set_defaults(command=_export)
    diff = actions.add_parser("diff", parents=[database], help="changes from OLD to NEW (files, db: or db:N)")
    diff.add_argument("old", metavar="OLD")
    diff.add_argument("new", metavar="NEW")
    diff.set_defaults(command=_diff)

    simulate = commands.add_parser("simulate", parents=[database], help="decision and explanation, nothing written")
    simulate.add_argument("notice", type=Path, metavar="NOTICE.json", help="a ProcedureNotice or ProcedureNotification")
    simulate.add_argument("--referential", type=Path, metavar="FILE", help="a file instead of the database")
    simulate.add_argument("--version", type=int, help="a past version of the database's référentiel")
    simulate.add_argument("--k", type=int, help="cap K (default: ORIENTATION_MAX_STRUCTURES)")
    simulate.add_argument("--on", type=date.fromisoformat, help="judge offers on this day (default: act date)")
    simulate.add_argument("--no-state", action="store_true", help="ignore the procedure's assignments and capacity")
    simulate.add_argument("--json", action="store_true", help="the full result as JSON")
    simulate.set_defaults(command=_simulate)

    token = commands.add_parser("token", help="admin API tokens")
    token_actions = token.add_subparsers(required=True, metavar="ACTION")
    token_new = token_actions.add_parser("new", help="a new token and its tokens-file entry (hash only)")
    token_new.add_argument("--name", required=True, help="who holds it; recorded as the author of changes")
    token_new.add_argument(
        "--role",
        dest="roles",
        type=Role,
        action="append",
        choices=list(Role),
        help="repeatable (default: ccapex-admin)",
    )
    token_new.set_defaults(command=_token)

    openapi = commands.add_parser("openapi", help="write or check services/orientation/openapi.json")
    openapi.add_argument("--check", action="store_true", help="exit 1 if the committed document is stale")
    openapi.set_defaults(command=_openapi)
    return parser


if __name__ == "__main__":
    main()
