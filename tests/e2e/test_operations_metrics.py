"""Operations, end to end: every running service answers ``/health/*``, ``/metrics`` and its API pages on its
internal port (the workspace's public pages serve none of them), and its counters move the way the inputs say.

On a stack of its own (broker, database, SMTP server): S-01 (docs/domain.md §9.1) on the CJ raw topic, the same
act again, and one record that is no JSON. Predicted: ingest accepts 1 act of a commissaire de justice, sees 1
duplicate and rejects 1 input ``SCHEMA_INVALID``; orientation publishes 1 decision without fallback; the
notifier has 3 emails accepted by the SMTP server, hence 3 observations of the end-to-end latency (one per
alert), each under the hour. Every label value of every ``prevex_*`` sample is one of
the codes the contracts and the code define (:func:`_allowed`): no reference, name or address of the case.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from faststream.prometheus.types import ProcessingStatus
from prometheus_client.parser import text_string_to_metric_families

from devtools import BrokerEndpoint, SmtpSink
from devtools.broker import create_topics
from devtools.demo import DEMO_INPUTS
from devtools.net import wait_for_port
from devtools.run import API_DOCS
from devtools.stack import SERVICES, ServiceProcesses, StackConfig
from schemas import topics
from schemas.assignment import AssignmentStatus
from schemas.notification import Channel
from schemas.orientation import AssignmentKind, DecisionTrigger
from schemas.procedure import EmitterType
from services.ingest.domain.rejections import RejectionCode
from services.ingest.intake import INTERNAL_ERROR

pytestmark = pytest.mark.e2e

S01 = DEMO_INPUTS[0]
WAIT_S = 90.0
Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture(scope="module")
async def running(
    own_broker: BrokerEndpoint, own_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServiceProcesses, SmtpSink]]:
    await create_topics(own_broker.bootstrap_servers, topics.ALL_TOPICS)
    work = tmp_path_factory.mktemp("operations-e2e")
    with SmtpSink(work / "mail") as smtp:
        config = StackConfig(own_broker.bootstrap_servers, own_database, smtp.host, smtp.port, work / "sms")
        processes = ServiceProcesses(config, work / "logs")
        try:
            processes.start()
            for name, url in processes.http_urls.items():
                port = int(url.rsplit(":", 1)[1])
                wait_for_port("127.0.0.1", port, WAIT_S, alive=functools.partial(processes.running, name))
            yield processes, smtp
        finally:
            processes.stop()


async def _send(bootstrap: str, value: bytes, key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.RAW_CJ, value, key=key)
    finally:
        await producer.stop()


async def _samples(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def _total(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for found, have, value in samples if found == name and labels.items() <= have.items())


async def _until(url: str, expected: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Samples:
    """The service's samples once every expected total is reached (the relay counts after the broker's ack)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            samples = await _samples(url)
            if all(_total(samples, name, **dict(labels)) >= value for (name, labels), value in expected.items()):
                return samples
            await asyncio.sleep(0.2)


async def _ready(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client, asyncio.timeout(WAIT_S):
        while True:  # a service has no feed to wait on: its consumers join their groups in their own time
            response = await client.get(f"{url}/health/ready")
            if response.status_code == 200:
                return response
            await asyncio.sleep(0.2)


async def test_every_service_is_ready_and_counts_what_the_inputs_predict(
    running: tuple[ServiceProcesses, SmtpSink], own_broker: BrokerEndpoint
) -> None:
    processes, smtp = running
    urls = processes.http_urls
    assert set(urls) == set(SERVICES)
    for url in urls.values():
        assert (await _ready(url)).json() == {"status": "ready"}
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(f"{url}/health/live")).status_code == 200

    bootstrap = own_broker.bootstrap_servers
    await _send(bootstrap, S01.payload(), S01.emitter_id().encode())
    assert len(await smtp.wait_for(3, timeout=WAIT_S)) == 3
    await _send(bootstrap, S01.payload(), S01.emitter_id().encode())
    await _send(bootstrap, b"{not json", S01.emitter_id().encode())

    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(labels.items())

    ingest = await _until(
        urls["ingest"],
        {
            key("prevex_ingest_duplicates_total"): 1,
            key("prevex_ingest_acts_rejected_total"): 1,
            key("prevex_ingest_received_messages_total"): 3,
        },
    )
    accepted = "prevex_ingest_acts_accepted_total"
    assert _total(ingest, accepted, emitter_type="COMMISSAIRE_JUSTICE", correction="false") == 1
    assert _total(ingest, accepted) == 1
    assert _total(ingest, "prevex_ingest_duplicates_total") == 1
    assert _total(ingest, "prevex_ingest_acts_rejected_total", code="SCHEMA_INVALID") == 1
    assert _total(ingest, "prevex_ingest_acts_rejected_total") == 1
    # FastStream's counter: every record of the raw topic, once each (no batch came again).
    assert _total(ingest, "prevex_ingest_received_messages_total", handler=topics.RAW_CJ) == 3
    # A scrape reads the outbox gauge from the database, then serialises the counters: a relay's commit in
    # between shows an event counted and still pending in that one scrape. Drained, the outbox reads empty.
    async with asyncio.timeout(WAIT_S):
        while _total(ingest, "prevex_ingest_outbox_pending_events") != 0:
            await asyncio.sleep(0.2)
            ingest = await _samples(urls["ingest"])
    assert _total(ingest, "prevex_ingest_outbox_pending_events") == 0

    orientation = await _until(urls["orientation"], {key("prevex_orientation_decisions_total"): 1})
    assert _total(orientation, "prevex_orientation_decisions_total", trigger="NOTIFICATION", fallback="false") == 1
    assert _total(orientation, "prevex_orientation_decided_assignments_total") == 3
    assert _total(orientation, "prevex_orientation_assignments", status="OUVERTE") == 3

    sent = key("prevex_notifier_deliveries_total", channel="EMAIL", provider="smtp", outcome="sent")
    latency = "prevex_notifier_end_to_end_latency_seconds"
    notifier = await _until(urls["notifier"], {sent: 3, key(f"{latency}_count"): 3})
    assert _total(notifier, f"{latency}_count") == 3  # the re-sent act alerted nobody
    assert _total(notifier, f"{latency}_bucket", le="3600.0") == 3
    assert _total(notifier, f"{latency}_sum") > 0
    assert _total(notifier, "prevex_notifier_deliveries_total") == 3
    assert _total(notifier, "prevex_notifier_deliveries_in_progress") == 0
    assert _total(notifier, "prevex_notifier_retry_queue_deliveries") == 0
    assert _total(notifier, "prevex_notifier_dead_letters") == 0

    workspace = await _until(urls["workspace"], {key("prevex_workspace_received_messages_total"): 1})
    allowed = _allowed()
    for samples in (ingest, orientation, notifier, workspace):
        labelled = [(name, label, value) for name, labels, _ in samples for label, value in labels.items()]
        assert labelled, "no labelled sample at all: the check below would prove nothing"
        outside = [item for item in labelled if not _allowed_value(allowed, item[1], item[2])]
        assert outside == []


def _allowed() -> set[str]:
    """Every label value a service may export: codes of the contracts and of the code, never data."""
    enums = (EmitterType, RejectionCode, Channel, AssignmentKind, AssignmentStatus, DecisionTrigger, ProcessingStatus)
    return (
        {member.value for enum in enums for member in enum}
        | {INTERNAL_ERROR, "KAFKA_HEADER_NOT_TEXT", "KAFKA_KEY_NOT_TEXT"}
        | set(topics.ALL_TOPICS)
        | set(SERVICES)
        | {"kafka", "smtp", "log", "ovh", "brevo", "http"}  # the broker, the providers of services/notifier
        | {"sent", "failed", "undeliverable", "pending", "sending", "retrying"}  # outcomes, delivery states
        | {"true", "false", "NONE", "OTHER"}
    )


def _allowed_value(allowed: set[str], label: str, value: str) -> bool:
    if label in {"le", "partition"}:  # histogram buckets, partition numbers
        return re.fullmatch(r"[0-9.e+]+|\+Inf", value) is not None
    if label == "exception_type":  # FastStream's: the class name of what a handler raised
        return re.fullmatch(r"[A-Z][A-Za-z]*(Error|Exception|Timeout)", value) is not None
    return value in allowed


async def test_the_api_pages_are_internal_and_the_workspace_serves_no_ops_route_publicly(
    running: tuple[ServiceProcesses, SmtpSink],
) -> None:
    processes, _ = running
    async with httpx.AsyncClient(timeout=10) as client:
        for name, url in processes.http_urls.items():
            pages = ["/docs/events", *(["/docs/api"] if name in API_DOCS else [])]
            for page in pages:
                response = await client.get(f"{url}{page}")
                assert response.status_code == 200, (name, page)
                assert "default-src 'none'" in response.headers["content-security-policy"]
                assert "<script" not in response.text
        # The partners' app faces the internet: none of the internal routes answer there.
        for route in ("/metrics", "/health/ready", "/health/live", "/docs/events", "/docs/api", "/openapi.json"):
            assert (await client.get(f"{processes.workspace_url}{route}")).status_code == 404, route
