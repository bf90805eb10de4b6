"""Ctrl-C on a process holding ``kafka_broker()`` and ``postgres_server()`` leaves no server behind."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import asyncio, signal, time
    import asyncpg
    from devtools import kafka_broker, postgres_server

    # Ctrl-C as in a terminal: a command a non-interactive shell started in the background inherits SIGINT
    # ignored (POSIX), and so would this child of a test run launched that way.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    async def data_directory(url: str) -> str:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SHOW data_directory")
        finally:
            await conn.close()

    with kafka_broker() as broker, postgres_server() as server:
        print(broker.bootstrap_servers, asyncio.run(data_directory(server.server_url)), flush=True)
        time.sleep(120)
    """
)


def processes_matching(*fragments: str) -> set[int]:
    """PIDs of live processes whose command line contains every fragment."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(fragment in cmdline for fragment in fragments):
            pids.add(int(entry.name))
    return pids


def test_sigint_stops_tansu_and_embedded_postgres() -> None:
    env = {**os.environ, "PREVEX_NO_DOCKER": "1", "PREVEX_NO_LOCAL_PG": "1"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("DATABASE_URL", None)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        assert child.stdout is not None
        readable, _, _ = select.select([child.stdout], [], [], 60)
        assert readable, "child did not report its servers"
        line = child.stdout.readline().split()
        assert len(line) == 2, child.stderr.read() if child.stderr else ""
        bootstrap, data_dir = line
        port = bootstrap.rsplit(":", 1)[1]
        tansu = processes_matching("tansu", f"tcp://127.0.0.1:{port}")
        postmaster = processes_matching(data_dir)
        assert len(tansu) == 1
        assert len(postmaster) == 1

        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert "KeyboardInterrupt" in stderr
    assert processes_matching("tansu", f"tcp://127.0.0.1:{port}") == set()
    assert processes_matching(data_dir) == set()
    assert not Path(data_dir).exists()
