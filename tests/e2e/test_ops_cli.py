"""``prevex-ops`` on the running services (docs/operations.md).

On a stack of its own (broker, database, SMTP server): S-01 (docs/domain.md §9.1) on the CJ raw topic, then
the same act again. ``trace`` by the case's reference prints its whole journey in time order — the act
accepted, its duplicate, the decision, the three assignments, their alerts and deliveries sent — without the
household's name or debt unless ``--with-personal-data``, which writes an audit entry. A partner's acceptance
parked as a dead letter by orientation is replayed with ``dead-letters replay`` and applied.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from devtools import BrokerEndpoint, SmtpSink
from devtools.demo import DEMO_INPUTS
from devtools.stack import ServiceProcesses
from schemas import topics
from schemas.assignment import AssignmentStatus, AssignmentStatusChange, AssignmentStatusEvent, StatusActor
from schemas.envelope import event_headers, new_envelope_fields
from services.ingest.domain.rejections import RejectionCode
from services.ops import run
from services.ops.settings import OpsSettings
from tests.e2e.test_operations_metrics import _send, running  # the same stack: broker, database, SMTP

pytestmark = pytest.mark.e2e

__all__ = ["running"]  # a fixture of this module too

S01 = DEMO_INPUTS[0]
WAIT_S = 90.0


@pytest.fixture(scope="module")
def settings(own_broker: BrokerEndpoint, own_database: str) -> OpsSettings:
    return OpsSettings(database_url=own_database, kafka_bootstrap_servers=own_broker.bootstrap_servers)


async def _ops(settings: OpsSettings, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await run(list(argv), settings=settings, out=out)
    return code, out.getvalue()


async def _journey_until(settings: OpsSettings, query: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """``trace --json`` of ``query`` once ``done(journey)`` holds (receipts are written after the send)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            code, text = await _ops(settings, "trace", query, "--json")
            if code == 0:
                journey: dict[str, Any] = json.loads(text)
                if done(journey):
                    return journey
            await asyncio.sleep(0.3)


def _kinds(journey: dict[str, Any]) -> list[str]:
    return [step["kind"] for step in journey["steps"]]


@pytest.fixture(scope="module")
async def s01_journey(
    running: tuple[ServiceProcesses, SmtpSink], settings: OpsSettings, own_broker: BrokerEndpoint
) -> dict[str, Any]:
    await _send(own_broker.bootstrap_servers, S01.payload(), S01.emitter_id().encode())
    assert len(await running[1].wait_for(3, timeout=WAIT_S)) == 3
    await _send(own_broker.bootstrap_servers, S01.payload(), S01.emitter_id().encode())
    # The same file's act again, its date not a date: rejected, found by its external reference.
    broken = json.loads(S01.payload()) | {"act_date": "2026-02-30"}
    await _send(own_broker.bootstrap_servers, json.dumps(broken).encode(), S01.emitter_id().encode())
    return await _journey_until(
        settings,
        broken["external_ref"],
        lambda j: _kinds(j).count("delivery.sent") == 3 and {"act.duplicate", "act.rejected"} <= set(_kinds(j)),
    )


async def test_trace_prints_the_whole_journey_in_time_order(s01_journey: dict[str, Any], settings: OpsSettings) -> None:
    (procedure,) = s01_journey["procedures"]
    reference = procedure["short_ref"]
    code, text = await _ops(settings, "trace", reference, "--json")
    assert code == 0
    by_reference = json.loads(text)
    assert _kinds(by_reference) == _kinds(s01_journey)  # the reference and the external ref name one case

    kinds = _kinds(by_reference)
    assert kinds[0] == "act.accepted"
    for kind, count in {
        "act.accepted": 1,
        "act.duplicate": 1,
        "decision": 1,
        "assignment.opened": 3,
        "alert": 3,
        "delivery.queued": 3,
        "delivery.sent": 3,
        "act.rejected": 1,
    }.items():
        assert kinds.count(kind) == count, kind
    times = [step["at"] for step in by_reference["steps"]]
    assert times == sorted(times)
    assert kinds.index("decision") < kinds.index("assignment.opened") < kinds.index("alert")
    assert kinds.index("alert") < kinds.index("delivery.sent")
    accepted = by_reference["steps"][0]["facts"]
    assert accepted["stage"] == "COMMANDEMENT_PAYER"
    assert accepted["derived"]["commandement_deadline"]  # the derived dates of the stage
    (rejected,) = [s["facts"] for s in by_reference["steps"] if s["kind"] == "act.rejected"]
    assert rejected["codes"]
    assert all(code.split(":")[0] in set(RejectionCode) for code in rejected["codes"]), rejected["codes"]
    assert kinds.index("act.rejected") > kinds.index("delivery.queued")  # sent last, comes last
    opened = next(s for s in by_reference["steps"] if s["kind"] == "assignment.opened")
    assert opened["facts"]["explanation"]
    sent = [s["facts"] for s in by_reference["steps"] if s["kind"] == "delivery.sent"]
    assert {f["channel"] for f in sent} == {"EMAIL"}
    assert all(f["receipt"] and f["attempts"] >= 1 for f in sent)

    code, text = await _ops(settings, "trace", reference)
    assert code == 0
    assert reference in text
    assert "delivery.sent" in text


async def test_trace_shows_personal_data_only_when_asked_and_audits_it(
    s01_journey: dict[str, Any], settings: OpsSettings, own_database: str
) -> None:
    reference = s01_journey["procedures"][0]["short_ref"]
    source = json.loads(S01.payload())
    name = source["tenants"][0]["last_name"]
    amount = str(int(source["debt"]["amount"]))
    conn = await asyncpg.connect(own_database)
    try:
        recipients = [r["recipient"] for r in await conn.fetch("SELECT recipient FROM notifier.delivery")]
    finally:
        await conn.close()
    assert len(recipients) == 3
    for argv in (("trace", reference), ("trace", reference, "--json")):
        code, text = await _ops(settings, *argv)
        assert code == 0
        assert name not in text
        assert amount not in text
        assert not [recipient for recipient in recipients if recipient in text]

    conn = await asyncpg.connect(own_database)
    try:
        before = await conn.fetchval("SELECT count(*) FROM ops.audit_log") if await _audit_exists(conn) else 0
        code, text = await _ops(settings, "trace", reference, "--with-personal-data")
        assert code == 0
        assert name in text
        assert amount in text
        assert all(recipient in text for recipient in recipients)
        code, document = await _ops(settings, "trace", reference, "--json", "--with-personal-data")
        assert code == 0
        assert json.loads(document)["personal_data"] is True
        entries = await conn.fetch("SELECT * FROM ops.audit_log ORDER BY id")
    finally:
        await conn.close()
    assert len(entries) == before + 2
    assert entries[-1]["command"] == "trace"
    assert entries[-1]["query"] == reference
    assert entries[-1]["procedure_ids"] == [uuid.UUID(s01_journey["procedures"][0]["procedure_id"])]


async def _audit_exists(conn: asyncpg.Connection[asyncpg.Record]) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('ops.audit_log') IS NOT NULL"))


async def _park_acceptance(
    conn: asyncpg.Connection[asyncpg.Record], procedure: dict[str, Any], assignment_id: str, structure: str, offset: int
) -> tuple[int, AssignmentStatusEvent]:
    """A partner's acceptance of ``assignment_id`` parked in orientation's dead letters, as
    services.platform.consume.park stores a record it cannot decode; here one it can decode now: the state
    after the fix that a replay is for."""
    event = AssignmentStatusEvent(
        **new_envelope_fields("workspace", correlation_id=uuid.UUID(procedure["correlation_id"])),
        payload=AssignmentStatusChange(
            assignment_id=uuid.UUID(assignment_id),
            procedure_id=uuid.UUID(procedure["procedure_id"]),
            structure_id=structure,
            status=AssignmentStatus.ACCEPTEE,
            by=StatusActor.PARTNER,
        ),
    )
    headers = [{"name": name, "value": value} for name, value in event_headers(event).items()]
    row_id: int = await conn.fetchval(
        'INSERT INTO orientation.dead_letter (topic, partition, "offset", error, value, key, headers)'
        " VALUES ($1, 0, $2, 'parked before the fix', $3, $4, $5::jsonb) RETURNING id",
        topics.ASSIGNMENT_STATUS,
        offset,
        event.model_dump_json().encode(),
        procedure["procedure_id"].encode(),
        json.dumps(headers),
    )
    return row_id, event


async def test_a_dead_letter_replayed_is_consumed(
    s01_journey: dict[str, Any], settings: OpsSettings, own_database: str
) -> None:
    (procedure,) = s01_journey["procedures"]
    opened = next(s["facts"] for s in s01_journey["steps"] if s["kind"] == "assignment.opened")
    conn = await asyncpg.connect(own_database)
    try:
        row_id, _ = await _park_acceptance(conn, procedure, opened["assignment_id"], opened["structure_id"], 999_998)
        code, listed = await _ops(settings, "dead-letters", "list", "--json")
        assert code == 0
        assert f"orientation:{row_id}" in {item["ref"] for item in json.loads(listed)}
        code, shown = await _ops(settings, "dead-letters", "show", f"orientation:{row_id}", "--json")
        assert code == 0
        assert json.loads(shown)[0]["correlation_id"] == procedure["correlation_id"]

        code, _ = await _ops(settings, "dead-letters", "replay", f"orientation:{row_id}")
        assert code == 0
        assert await conn.fetchval("SELECT count(*) FROM orientation.dead_letter WHERE id = $1", row_id) == 0
        code, _ = await _ops(settings, "dead-letters", "replay", f"orientation:{row_id}")
        assert code == 3  # gone: replayed once
    finally:
        await conn.close()

    journey = await _journey_until(settings, procedure["short_ref"], lambda j: "assignment.status" in _kinds(j))
    (change,) = [s["facts"] for s in journey["steps"] if s["kind"] == "assignment.status"]
    assert change["status"] == "OUVERTE → ACCEPTEE"
    assert change["assignment_id"] == opened["assignment_id"]
    assert change["actor"] == "PARTNER"


async def test_a_refused_status_change_is_listed_and_traced(
    s01_journey: dict[str, Any], settings: OpsSettings, own_database: str
) -> None:
    (procedure,) = s01_journey["procedures"]
    unknown = str(uuid.uuid4())
    conn = await asyncpg.connect(own_database)
    try:
        row_id, event = await _park_acceptance(conn, procedure, unknown, "CCAS-BELFORT", 999_999)
    finally:
        await conn.close()
    assert (await _ops(settings, "dead-letters", "replay", f"orientation:{row_id}"))[0] == 0

    journey = await _journey_until(settings, procedure["short_ref"], lambda j: "assignment.status_refused" in _kinds(j))
    (refused,) = [s["facts"] for s in journey["steps"] if s["kind"] == "assignment.status_refused"]
    assert refused["event_id"] == str(event.event_id)
    assert refused["requested"] == "ACCEPTEE"
    code, listed = await _ops(settings, "status-refusals", "list", "--json")
    assert code == 0
    assert str(event.event_id) in {row["event_id"] for row in json.loads(listed)}
    code, shown = await _ops(settings, "status-refusals", "show", str(event.event_id), "--json")
    assert code == 0
    (row,) = json.loads(shown)
    assert row["assignment_id"] == unknown
    assert row["refusal"]
    assert (await _ops(settings, "status-refusals", "show", str(uuid.uuid4())))[0] == 3


async def test_queues_and_lag_answer(s01_journey: dict[str, Any], settings: OpsSettings) -> None:
    code, text = await _ops(settings, "queues", "--json")
    assert code == 0
    queues = {(q["service"], q["queue"]) for q in json.loads(text)}
    assert {("ingest", "outbox"), ("orientation", "outbox"), ("notifier", "retry")} <= queues
    code, text = await _ops(settings, "lag", "--json")
    assert code == 0
    groups = {line["group"] for line in json.loads(text)}
    assert {"prevex-ingest", "prevex-orientation", "prevex-notifier"} <= groups


async def test_an_unknown_case_is_not_found(running: tuple[ServiceProcesses, SmtpSink], settings: OpsSettings) -> None:
    assert (await _ops(settings, "trace", "90-2099-999999"))[0] == 3
