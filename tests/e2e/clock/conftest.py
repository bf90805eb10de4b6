"""A stack of the three services with ``PREVEX_CLOCK`` set, per test module, on infrastructure of its own
(``own_broker`` / ``own_database`` of tests/e2e/conftest.py and an SMTP sink of the module's).

Each module says its clock in a module-level ``CLOCK_ENV`` (the environment added to the services'): the
session's stack runs on the system clock, and two clocks must not share consumer groups or rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from devtools import BrokerEndpoint, SmtpSink, create_topics
from devtools.demo import DemoInput
from devtools.stack import ServiceProcesses, StackConfig
from schemas.topics import ALL_TOPICS, RAW_CJ

PIPELINE = ("ingest", "orientation", "notifier")


@dataclass(frozen=True)
class Replay:
    """The running services, and what a test needs to start another one on the same infrastructure."""

    processes: ServiceProcesses
    config: StackConfig
    work: Path


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path_factory.mktemp("clock-mail")) as sink:
        yield sink


@pytest.fixture(scope="module")
async def replay(
    request: pytest.FixtureRequest,
    own_broker: BrokerEndpoint,
    own_database: str,
    mail: SmtpSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Replay]:
    """ingest, orientation and notifier started with the module's ``CLOCK_ENV``."""
    await create_topics(own_broker.bootstrap_servers, ALL_TOPICS)
    work = tmp_path_factory.mktemp("clock-e2e")
    config = StackConfig(own_broker.bootstrap_servers, own_database, mail.host, mail.port, work / "sms")
    processes = ServiceProcesses(config, work / "logs", extra_env=request.module.CLOCK_ENV)
    processes.start(*PIPELINE)
    try:
        yield Replay(processes, config, work)
    finally:
        processes.stop()


SendAct = Callable[[DemoInput], Awaitable[None]]


@pytest.fixture
def send_act(own_broker: BrokerEndpoint) -> SendAct:
    """``await send_act(demo)``: a commissaire de justice's act on its raw topic, keyed by its SIRET."""

    async def send(demo: DemoInput) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(RAW_CJ, demo.payload(), key=demo.emitter_id().encode())
        finally:
            await producer.stop()

    return send
