"""``postgres_server()``: the embedded path (forced) and the local path (when 127.0.0.1:5432 answers)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import asyncpg
import pytest

from devtools import LOCAL_SERVER_URL, create_database, drop_database, postgres_server

pytestmark = pytest.mark.integration


def processes_matching(fragment: str) -> set[int]:
    """PIDs of live processes whose command line contains ``fragment``."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            pids.add(int(entry.name))
    return pids


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def path_exists(path: str) -> bool:
    return Path(path).exists()


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def database_exists(server_url: str, name: str) -> bool:
    conn = await asyncpg.connect(server_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_embedded_server_lifecycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PREVEX_NO_DOCKER", "1")
    monkeypatch.setenv("PREVEX_NO_LOCAL_PG", "1")

    with postgres_server() as server:
        assert server.kind == "embedded"
        assert server.server_url.startswith("postgresql://postgres@127.0.0.1:")

        dsn = await create_database(server, "devenv_probe")
        assert dsn == server.database_url("devenv_probe")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SELECT current_database()") == "devenv_probe"
            assert await conn.fetchval("SHOW fsync") == "off"
            data_dir = await conn.fetchval("SHOW data_directory")
            postmaster = parent_pid(await conn.fetchval("SELECT pg_backend_pid()"))
            assert postmaster in processes_matching(data_dir)

            # dropping terminates the sessions still connected to the database
            await drop_database(server, "devenv_probe")
            assert not await database_exists(server.server_url, "devenv_probe")
            await drop_database(server, "devenv_probe")  # IF EXISTS: no error
        finally:
            conn.terminate()

    assert not pid_exists(postmaster)
    assert processes_matching(data_dir) == set()
    assert not path_exists(data_dir)


async def test_local_server_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        probe = await asyncpg.connect(LOCAL_SERVER_URL, timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        pytest.skip("no PostgreSQL accepting postgres@127.0.0.1:5432")
    await probe.close()
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PREVEX_NO_LOCAL_PG", raising=False)
    monkeypatch.setenv("PREVEX_NO_DOCKER", "1")

    name = f"devenv_probe_{secrets.token_hex(4)}"  # the server is shared: never reuse a fixed name
    with postgres_server() as server:
        assert server.kind == "local"
        dsn = await create_database(server, name)
        try:
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("SELECT 1") == 1
                assert await conn.fetchval("SELECT current_database()") == name
            finally:
                await conn.close()
        finally:
            await drop_database(server, name)
        assert not await database_exists(server.server_url, name)
