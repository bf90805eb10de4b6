"""Resolution rules and helpers of ``devtools`` that need no server."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from devtools import (
    PostgresEndpoint,
    create_database,
    docker_available,
    drop_database,
    free_port,
    kafka_broker,
    postgres_server,
    wait_for_port,
)
from devtools.net import run_sync


@pytest.mark.parametrize(
    ("server_url", "expected"),
    [
        (
            "postgresql://u:p@db.example:5433/admin?sslmode=disable",
            "postgresql://u:p@db.example:5433/app_db?sslmode=disable",
        ),
        ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://postgres@127.0.0.1:5432/app_db"),
        ("postgresql://postgres@127.0.0.1:5432", "postgresql://postgres@127.0.0.1:5432/app_db"),
        ("postgresql://postgres@/postgres?host=/tmp/sock", "postgresql://postgres@/app_db?host=/tmp/sock"),
        ("postgresql:///postgres?host=/tmp/sock", "postgresql:///app_db?host=/tmp/sock"),
    ],
)
def test_database_url_replaces_only_the_database(server_url: str, expected: str) -> None:
    assert PostgresEndpoint(server_url=server_url, kind="external").database_url("app_db") == expected


@pytest.mark.parametrize("name", ["", "App", "1db", "db-name", 'x"; DROP DATABASE postgres; --', "a" * 64])
async def test_invalid_database_names_are_rejected_before_connecting(name: str) -> None:
    endpoint = PostgresEndpoint(server_url="postgresql://nobody@127.0.0.1:1/postgres", kind="external")
    with pytest.raises(ValueError, match="invalid database name"):
        await create_database(endpoint, name)
    with pytest.raises(ValueError, match="invalid database name"):
        await drop_database(endpoint, name)


def test_env_bootstrap_servers_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    with kafka_broker() as broker:
        assert broker.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
        assert broker.kind == "external"


def test_env_database_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example:5432/admin")
    with postgres_server() as server:
        assert server.server_url == "postgresql://app@db.example:5432/admin"
        assert server.kind == "external"


def test_no_docker_env_disables_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVEX_NO_DOCKER", "1")
    assert docker_available() is False


def test_free_port_is_bindable_and_wait_for_port_sees_a_listener() -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        wait_for_port("127.0.0.1", port, timeout=5)


def test_free_ports_are_below_the_range_outgoing_connections_take_their_ports_from() -> None:
    ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(1024 < port < ephemeral_start for port in ports)
    assert len(ports) > 1  # drawn at random: two test runs rarely pick the same ports


def test_wait_for_port_gives_up() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        wait_for_port("127.0.0.1", port, timeout=0.1)
    with pytest.raises(RuntimeError, match="exited"):
        wait_for_port("127.0.0.1", port, timeout=5, alive=lambda: False)


async def test_run_sync_works_inside_a_running_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        raise LookupError("boom")

    assert run_sync(answer, timeout=5) == 42
    with pytest.raises(LookupError, match="boom"):
        run_sync(fail, timeout=5)
