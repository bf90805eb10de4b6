"""The whole pipeline as real processes on the session's broker, PostgreSQL and an SMTP server.

``stack`` (with its ``smtp`` and ``stack_logs``) is module-scoped: the walking skeleton is its one user, and a
session-scoped stack would keep four idle services polling the broker through every later test of the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devtools import BrokerEndpoint, PostgresEndpoint, SmtpSink, kafka_broker, temporary_database
from devtools.stack import ServiceProcesses, StackConfig


@pytest.fixture(scope="module")
def own_broker() -> Iterator[BrokerEndpoint]:
    """A broker of the module's own: its services' consumer groups then see none of the session stack's
    records, nor the session stack theirs (Tansu unless ``KAFKA_BOOTSTRAP_SERVERS`` names one)."""
    with kafka_broker() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
async def own_database(pg_server: PostgresEndpoint) -> AsyncIterator[str]:
    """A database of the module's own on the session's PostgreSQL server, dropped at the end."""
    async with temporary_database(pg_server, "prevex_e2e_module") as url:
        yield url


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path_factory.mktemp("mail")) as sink:
        yield sink


@pytest.fixture(scope="module")
def stack_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def stack(
    broker: BrokerEndpoint,
    database_url: str,
    smtp: SmtpSink,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcesses]:
    config = StackConfig(broker.bootstrap_servers, database_url, smtp.host, smtp.port, tmp_path_factory.mktemp("sms"))
    services = ServiceProcesses(config, stack_logs)
    try:
        services.start()
        yield services
    finally:
        services.stop()
