"""The notifier's one consumer of its five topics (the real ``bootstrap.build`` wiring) on a broker and a
database of its own: every topic still reaches its handler, and a batch mixing topics is handled in the order
their events depend on — référentiel, then decisions, then what is told about their assignments — whatever
order the batch brought them in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from unittest import mock

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from devtools import free_port
from devtools.sms_emulator import decided_event, structure_event
from schemas import topics
from schemas.assignment import (
    AssignmentEscalation,
    AssignmentEscalationEvent,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    EscalationStep,
    StatusActor,
)
from schemas.envelope import Envelope, new_envelope_fields
from schemas.orientation import OrientationDecidedEvent
from schemas.workspace import LinkRequested, LinkRequestedEvent
from services.notifier import bootstrap
from services.notifier.dispatch import SCHEMA
from services.notifier.settings import NotifierSettings
from services.platform.kafka import BatchHandler, subscribe_batch
from tests.integration.notifier.conftest import email_contact

pytestmark = pytest.mark.integration

REF = "90-2026-000777"


@pytest.fixture
async def running(serve_in_process: Callable[..., Any]) -> AsyncIterator[tuple[Any, list[BatchHandler]]]:
    """The notifier's runtime started in-process (no SMTP server: nothing here is sent), with the batch
    handlers its subscriptions were given."""
    handlers: list[BatchHandler] = []

    def subscribing(*args: Any, handler: BatchHandler, **kwargs: Any) -> None:
        handlers.append(handler)
        subscribe_batch(*args, handler=handler, **kwargs)

    settings = {
        "smtp_port": free_port(),
        "http_port": free_port(),
        "link_secrets": "notifier-consumers-integration-tests-link-secret",
    }
    with mock.patch.object(bootstrap, "subscribe_batch", subscribing):
        async with serve_in_process(bootstrap.build, NotifierSettings, SCHEMA, **settings) as service:
            yield service, handlers


def _about(decided: OrientationDecidedEvent) -> dict[str, Any]:
    [assignment] = decided.payload.assignments
    return {
        "assignment_id": assignment.assignment_id,
        "procedure_id": decided.payload.procedure_id,
        "structure_id": assignment.structure_id,
    }


def _refusal(decided: OrientationDecidedEvent) -> AssignmentStatusEvent:
    change = AssignmentStatusChange(
        **_about(decided), status=AssignmentStatus.REFUSEE, reason="HORS_TERRITOIRE", by=StatusActor.PARTNER
    )
    return AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=change)


def _secretariat() -> Envelope:
    return structure_event("CCAPEX90", [email_contact("CCAPEX90-SEC", "ccapex90@pref.test")], default_referent=True)


async def _alerts(pool: asyncpg.Pool, *keys: str) -> list[asyncpg.Record] | None:
    rows = await pool.fetch(
        "SELECT alert_key, structure_id FROM alert WHERE alert_key = ANY($1::text[]) ORDER BY seq", list(keys)
    )
    return rows if len(rows) == len(keys) else None


async def test_one_consumer_receives_each_of_the_five_topics(
    running: tuple[Any, list[BatchHandler]], until: Callable[..., Any]
) -> None:
    service, handlers = running
    assert len(handlers) == 1
    decided = decided_event(REF, ["CD90"])
    assignment = decided.payload.assignments[0].assignment_id
    escalation = AssignmentEscalationEvent(
        **new_envelope_fields("orientation"),
        payload=AssignmentEscalation(**_about(decided), step=EscalationStep.STRUCTURE_REMINDER, working_days=5),
    )
    request = LinkRequested(**_about(decided), request_id=uuid.uuid4(), procedure_short_ref=REF)
    producer = AIOKafkaProducer(bootstrap_servers=service.bootstrap_servers, acks="all")
    await producer.start()
    try:
        # Step by step: across batches the topics keep no order between them.
        await producer.send_and_wait(topics.REFERENTIAL_CHANGED, _secretariat().model_dump_json().encode())
        await until(lambda: service.pool.fetchval("SELECT count(*) FROM structure_directory"))
        await producer.send_and_wait(topics.ORIENTATION_DECIDED, decided.model_dump_json().encode())
        await until(lambda: _alerts(service.pool, f"new:{assignment}"))
        for topic, event in (
            (topics.ASSIGNMENT_STATUS, _refusal(decided)),
            (topics.ASSIGNMENT_ESCALATION, escalation),
            (topics.WORKSPACE_LINK_REQUESTED, LinkRequestedEvent(**new_envelope_fields("workspace"), payload=request)),
        ):
            await producer.send_and_wait(topic, event.model_dump_json().encode())
        keys = (f"refused:{assignment}", f"reminder:{assignment}", f"link:{request.request_id}")
        told = await until(lambda: _alerts(service.pool, *keys))
    finally:
        await producer.stop()

    assert {(row["alert_key"].split(":")[0], row["structure_id"]) for row in told} == {
        ("refused", "CCAPEX90"),
        ("reminder", "CD90"),
        ("link", "CD90"),
    }


def _record(topic: str, event: Envelope, offset: int) -> ConsumerRecord[bytes, bytes]:
    value = event.model_dump_json().encode()
    return ConsumerRecord(topic, 0, offset, 0, 0, None, value, None, 0, len(value), ())


async def test_a_mixed_batch_is_handled_referential_first_then_decisions_then_statuses(
    running: tuple[Any, list[BatchHandler]],
) -> None:
    service, [handle] = running
    decided = decided_event(REF, ["CD90"])
    assignment = decided.payload.assignments[0].assignment_id

    # The refusal comes first and the secretariat's record last: read in that order, the refusal would find
    # neither the alert it is about nor the secretariat to tell.
    await handle(
        [
            _record(topics.ASSIGNMENT_STATUS, _refusal(decided), 0),
            _record(topics.ORIENTATION_DECIDED, decided, 0),
            _record(topics.REFERENTIAL_CHANGED, _secretariat(), 0),
        ]
    )

    alerts = await _alerts(service.pool, f"new:{assignment}", f"refused:{assignment}")
    assert alerts is not None
    assert [(row["alert_key"], row["structure_id"]) for row in alerts] == [
        (f"new:{assignment}", "CD90"),
        (f"refused:{assignment}", "CCAPEX90"),
    ]
    assert await service.pool.fetchval("SELECT count(*) FROM dead_letter") == 0
