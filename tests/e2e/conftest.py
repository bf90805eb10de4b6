"""The whole pipeline as real processes on the session's broker, PostgreSQL and an SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devenv import BrokerEndpoint, SmtpSink
from services.devenv.stack import ServiceProcesses, StackConfig


@pytest.fixture(scope="session")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path_factory.mktemp("mail")) as sink:
        yield sink


@pytest.fixture(scope="session")
def stack_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
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
