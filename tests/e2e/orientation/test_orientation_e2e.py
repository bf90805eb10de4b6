"""The orientation process on a real broker and PostgreSQL: scenarios S-01…S-08, redelivery, crash, admin
changes, assignment statuses.

Notices are what ingest publishes for the example payloads (``devtools.orientation_inputs``). The tests
of this module share one process and run in file order: each reads only its own procedures' results.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from devtools.orientation_inputs import example_record, notice, notice_event
from schemas import topics
from schemas.assignment import (
    AssignmentOverride,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    StatusActor,
)
from schemas.envelope import new_envelope_fields
from schemas.orientation import (
    AssignmentKind,
    DecisionTrigger,
    OrientationDecided,
    OrientationDecidedEvent,
    OrientationUnmatchedEvent,
)
from schemas.procedure import ProcedureNotificationEvent
from schemas.referential import ReferentialChangedEvent
from services.orientation.referential_store import ReferentialHolder
from services.orientation.truce import remind_truce_end

if TYPE_CHECKING:
    from tests.e2e.orientation.conftest import Harness

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "pvx_e2e-admin-token"  # the test token of conftest.py
REPO = Path(__file__).resolve().parents[3]
PERSONAL_DATA = ("Durand", "Léa", "Mulhouse", "612345678", "Martin", "Jaurès")


def _event(example: str, procedure_id: uuid.UUID | None = None, **fields: Any) -> ProcedureNotificationEvent:
    record = example_record(example)
    assert record is not None, example
    return notice_event(notice(record, procedure_id=procedure_id or uuid.uuid4(), **fields))


async def _send(service: Harness, *events: ProcedureNotificationEvent) -> None:
    for event in events:
        await service.publish(topics.PROCEDURE_NOTIFICATION, event, str(event.payload.procedure_id))


async def _decisions(service: Harness, count: int) -> dict[uuid.UUID, list[OrientationDecided]]:
    """Decided payloads by causing notice event id (duplicates from an outbox re-publish removed)."""
    records = await service.read_topic(topics.ORIENTATION_DECIDED, count)
    events = {e.event_id: e for e in map(OrientationDecidedEvent.model_validate_json, records)}
    by_cause: dict[uuid.UUID, list[OrientationDecided]] = {}
    for event in events.values():
        assert event.causation_id is not None
        by_cause.setdefault(event.causation_id, []).append(event.payload)
    return by_cause


def _shape(decided: OrientationDecided) -> list[tuple[str, tuple[str, ...], bool, AssignmentKind]]:
    return [(a.structure_id, tuple(a.offer_ids), a.mandatory, a.kind) for a in decided.assignments]


NEW, UPDATE = AssignmentKind.NEW, AssignmentKind.STAGE_UPDATE


async def test_scenarios_s01_to_s08(orientation: Harness) -> None:
    s01 = _event("s01-cj-commandement-payer")
    s03_correction = _event("s01-cj-commandement-payer", s01.payload.procedure_id, revision=2, is_correction=True)
    s02 = _event("s02-bailleur-saisine-ccapex")
    s04 = _event("s04-cj-assignation")
    s04_late = _event("s04-cj-commandement-payer-late", s04.payload.procedure_id, revision=2, is_late=True)
    s05 = _event("s05-bailleur-impaye-constate")
    s06 = _event("s06-cj-commandement-quitter")
    # S-03's exact duplicate, S-07 and S-08 never leave ingest: there is nothing to orient.
    assert [example_record(name) for name in ("s07-cj-address-missing", "s08-bailleur-debt-negative")] == [None, None]
    assert example_record("s08-bailleur-amount-invalid") is None
    events = (s01, s03_correction, s02, s04, s04_late, s05, s06)
    await _send(orientation, *events)
    await orientation.consumed(*(e.event_id for e in events))

    decided = await _decisions(orientation, 6)
    assert set(decided) == {e.event_id for e in events} - {s04_late.event_id}  # S-04's late CP: nothing
    [d01], [d03], [d02], [d04], [d05], [d06] = (decided[e.event_id] for e in (s01, s03_correction, s02, s04, s05, s06))

    assert _shape(d01) == [
        ("CCAS-BELFORT", ("CCAS-BELFORT",), False, NEW),
        ("CDAD90", ("PJ90-INFO",), False, NEW),
        ("CD90", ("CD90-ACCOMP",), False, NEW),
    ]
    assert {o.offer_id: o.unknowns for o in d01.also_eligible} == {
        "CAF90-MAINTIEN": ["allocataire"],
        "FSL90-MAINTIEN": ["resources"],
    }
    assert d01.assignments[0].explanation.splitlines() == [
        "offer CCAS-BELFORT: zone COMMUNE 90010 ✓; stage COMMANDEMENT_PAYER ∈ {COMMANDEMENT_PAYER…DEMANDE_CFP} ✓;"
        " parc PRIVE ∈ {ALL} ✓",
        "ranked 1/5 candidate structures, cap 3: zone COMMUNE, priority 0, 0 UNKNOWN",
    ]
    assert (d01.referentiel_version, d01.fallback_used, d01.urgency.value) == (1, False, "NORMAL")

    # S-03 variant: the corrected commandement re-runs orientation on the same structures, no new assignment.
    assert d03.is_correction
    assert _shape(d03) == [(s, o, m, UPDATE) for s, o, m, _ in _shape(d01)]
    assert [a.assignment_id for a in d03.assignments] == [a.assignment_id for a in d01.assignments]

    assert _shape(d02) == [
        ("CD90", ("CD90-ACCOMP",), False, NEW),
        ("CAF90", ("CAF90-MAINTIEN",), False, NEW),
        ("FSL90", ("FSL90-MAINTIEN",), False, NEW),
    ]
    assert d02.also_eligible == []
    assert "allocataire OUI ∈ {OUI} ✓" in d02.assignments[1].explanation
    assert "resources UNKNOWN (to check)" in d02.assignments[2].explanation

    assert _shape(d04) == [
        ("CD90", ("CD90-DSF", "CD90-ACCOMP"), True, NEW),
        ("CDAD90", ("PJ90-INFO",), False, NEW),
        ("FSL90", ("FSL90-MAINTIEN",), False, NEW),
    ]
    assert d04.assignments[2].explanation.splitlines()[0] == (
        "offer FSL90-MAINTIEN: zone DEPARTEMENT 90 ✓; stage ASSIGNATION ∈ {SIGNALEMENT_CAF…DECISION} ✓;"
        " parc PRIVE ∈ {ALL} ✓; debt 3100 ≤ 6000 ✓; resources UNKNOWN (to check)"
    )
    assert "mandatory at ASSIGNATION: outside the cap" in d04.assignments[0].explanation

    assert d05.fallback_used
    assert _shape(d05) == [("CCAPEX90", (), False, NEW)]
    assert (
        d05.assignments[0].explanation
        == "no eligible offer among 10: default referent, manual orientation required (F1)"
    )
    [unmatched_raw] = await orientation.read_topic(topics.ORIENTATION_UNMATCHED, 1)
    unmatched = OrientationUnmatchedEvent.model_validate_json(unmatched_raw).payload
    reasons = {r.offer_id: r.reasons for r in unmatched.reasons}
    assert (unmatched.procedure_id, unmatched.fallback_structure_id, len(reasons)) == (
        s05.payload.procedure_id,
        "CCAPEX90",
        10,
    )
    assert reasons["CAF90-MAINTIEN"] == ["allocataire NON ∉ {OUI}"]
    assert reasons["CD90-ACCOMP"] == ["stage IMPAYE_CONSTATE ∉ {SIGNALEMENT_CAF…DECISION_CFP}"]

    assert _shape(d06) == [
        ("CCAS-BELFORT", ("CCAS-BELFORT",), False, NEW),
        ("CD90", ("CD90-ACCOMP",), False, NEW),
        ("TH90", ("TH-PROTOCOLE",), False, NEW),
    ]
    assert [(o.offer_id, o.unknowns) for o in d06.also_eligible] == [("SIAO90", [])]
    assert "landlord_siren ∈ {999900001} ✓" in d06.assignments[2].explanation
    assert d06.earliest_expulsion_date is not None
    assert d06.earliest_expulsion_date.isoformat() == "2026-04-01"

    per_procedure = await orientation.db.fetch(
        "SELECT procedure_id, count(*) AS n FROM assignment GROUP BY procedure_id"
    )
    assert sorted(r["n"] for r in per_procedure) == [1, 3, 3, 3, 3]  # S-05, then S-01 (corrected), S-02, S-04, S-06
    assert await orientation.db.fetchval("SELECT count(*) FROM decision") == 6
    log = orientation.log_text()
    assert all(personal not in log for personal in PERSONAL_DATA)


async def test_a_redelivered_notice_creates_nothing_twice(orientation: Harness) -> None:
    event = _event("s02-bailleur-saisine-ccapex")
    await _send(orientation, event, event)  # the same record twice: a consumer restarted before its commit
    marker = _event("s02-bailleur-saisine-ccapex", event.payload.procedure_id, revision=2, is_correction=True)
    await _send(orientation, marker)  # same partition, after both copies
    await orientation.consumed(event.event_id, marker.event_id)

    procedure = event.payload.procedure_id
    db = orientation.db
    assert await db.fetchval("SELECT count(*) FROM decision WHERE procedure_id = $1", procedure) == 2
    assert await db.fetchval("SELECT count(*) FROM assignment WHERE procedure_id = $1", procedure) == 3


async def test_admin_changes_and_cli_imports_become_active_in_the_running_service(
    orientation: Harness, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(
        base_url=orientation.admin_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as api:
        suspended = await api.post("/structures/CDAD90/suspend")
        assert suspended.status_code == 200, suspended.text
        version = suspended.json()["referentiel_version"]
        before = _event("s01-cj-commandement-payer")
        await _send(orientation, before)
        await orientation.consumed(before.event_id)
        await api.post("/structures/CDAD90/reactivate")

    # Another writer (the CLI, or another replica) changes the database: the process notices per batch.
    exported = tmp_path / "current.yaml"
    edited = tmp_path / "edited.yaml"
    cli = [sys.executable, "-m", "services.orientation.cli", "referential"]
    database = ["--database-url", orientation.database_url]
    await asyncio.to_thread(subprocess.run, [*cli, "export", "-o", str(exported), *database], check=True, cwd=REPO)
    edited.write_text(exported.read_text("utf-8").replace("priority: 60", "priority: 20"), "utf-8")
    await asyncio.to_thread(
        subprocess.run, [*cli, "import", str(edited), "--author", "e2e", *database], check=True, cwd=REPO
    )
    after = _event("s01-cj-commandement-payer")
    await _send(orientation, after)
    await orientation.consumed(after.event_id)

    rows = await orientation.db.fetch(
        "SELECT procedure_id, referentiel_version, result FROM decision WHERE procedure_id = ANY($1::uuid[])",
        [before.payload.procedure_id, after.payload.procedure_id],
    )
    by_procedure = {r["procedure_id"]: r for r in rows}
    first, second = by_procedure[before.payload.procedure_id], by_procedure[after.payload.procedure_id]
    assert first["referentiel_version"] == version
    assert "CDAD90" not in [a["structure_id"] for a in first["result"]["assignments"]]
    assert second["referentiel_version"] == version + 2  # reactivated, then the CLI import
    assert [a["structure_id"] for a in second["result"]["assignments"]] == ["CCAS-BELFORT", "CD90", "CDAD90"]

    records = await orientation.read_topic(topics.REFERENTIAL_CHANGED, 13)  # 10 at start, then one per change
    published = [ReferentialChangedEvent.model_validate_json(value) for value in records]
    cdad90 = [
        (r.payload.referentiel_version, r.payload.status.value) for r in published if r.payload.structure_id == "CDAD90"
    ]
    assert cdad90[:3] == [(1, "active"), (version, "suspended"), (version + 1, "active")]


async def test_assignment_statuses_and_ccapex_overrides_through_kafka(orientation: Harness) -> None:
    db = orientation.db
    first = _event("s01-cj-commandement-payer")
    await _send(orientation, first)
    await orientation.consumed(first.event_id)
    procedure = first.payload.procedure_id
    ids = {
        r["structure_id"]: r["assignment_id"]
        for r in await db.fetch("SELECT structure_id, assignment_id FROM assignment WHERE procedure_id = $1", procedure)
    }

    def status(structure_id: str, value: AssignmentStatus, by: StatusActor, **fields: Any) -> AssignmentStatusEvent:
        change = AssignmentStatusChange(
            procedure_id=procedure, structure_id=structure_id, status=value, by=by, **fields
        )
        return AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=change)

    changes = [
        status("CCAS-BELFORT", AssignmentStatus.ACCEPTEE, StatusActor.PARTNER, assignment_id=ids["CCAS-BELFORT"]),
        status("CCAS-BELFORT", AssignmentStatus.EXPIREE, StatusActor.PARTNER, assignment_id=ids["CCAS-BELFORT"]),
        status(
            "CDAD90",
            AssignmentStatus.CLOTUREE,
            StatusActor.CCAPEX,
            assignment_id=ids["CDAD90"],
            override=AssignmentOverride.REMOVE,
        ),
    ]
    for change in changes:
        await orientation.publish(topics.ASSIGNMENT_STATUS, change, str(procedure))
    await orientation.consumed(*(c.event_id for c in changes))
    rerun = _event("s01-cj-commandement-payer", procedure, revision=2, is_correction=True)
    await _send(orientation, rerun)
    await orientation.consumed(rerun.event_id)

    statuses = {
        r["structure_id"]: r["status"]
        for r in await db.fetch("SELECT structure_id, status FROM assignment WHERE procedure_id = $1", procedure)
    }
    assert statuses == {"CCAS-BELFORT": "ACCEPTEE", "CDAD90": "CLOTUREE", "CD90": "OUVERTE", "CAF90": "OUVERTE"}
    refused = await db.fetch("SELECT refusal FROM assignment_status_refused WHERE procedure_id = $1", procedure)
    assert [r["refusal"] for r in refused] == ["TRANSITION_NOT_ALLOWED"]  # ACCEPTEE cannot expire
    result = await db.fetchval(
        "SELECT result FROM decision WHERE notification_id = $1", rerun.payload.notification.notification_id
    )
    assert [(a["structure_id"], a["kind"]) for a in result["assignments"]] == [
        ("CCAS-BELFORT", "STAGE_UPDATE"),
        ("CD90", "STAGE_UPDATE"),
        ("CAF90", "NEW"),
    ]


async def test_on_1_march_the_running_service_publishes_one_truce_end_reminder_per_procedure(
    orientation: Harness,
) -> None:
    # The service's own sweep runs on today's date; the one of 1 March 2026 runs here, on the service's
    # database, and the service's outbox relay publishes what it wrote.
    s06 = _event("s06-cj-commandement-quitter")
    await _send(orientation, s06)
    await orientation.consumed(s06.event_id)
    holder = ReferentialHolder()
    handled = 0
    while True:
        async with orientation.db.acquire() as conn, conn.transaction():
            batch = await remind_truce_end(conn, holder, now=datetime(2026, 3, 1, 8, tzinfo=UTC), limit=50)
        handled += batch
        if batch < 50:
            break
    async with orientation.db.acquire() as conn, conn.transaction():
        assert await remind_truce_end(conn, holder, now=datetime(2026, 3, 20, 8, tzinfo=UTC)) == 0  # once per trêve
    await orientation.until(lambda: _outbox_empty(orientation), 1)

    decided = await orientation.db.fetchval("SELECT count(*) FROM decision")
    events = {
        e.event_id: e
        for e in map(
            OrientationDecidedEvent.model_validate_json,
            await orientation.read_topic(topics.ORIENTATION_DECIDED, decided),
        )
    }
    reminders = [e.payload for e in events.values() if e.payload.trigger is DecisionTrigger.WINTER_TRUCE_END]
    assert len(reminders) == len({r.procedure_id for r in reminders}) == handled  # S-06 of the scenarios too
    [mine] = [r for r in reminders if r.procedure_id == s06.payload.procedure_id]
    assert mine.earliest_expulsion_date == date(2026, 4, 1)
    assert [(a.structure_id, a.kind) for a in mine.assignments] == [
        ("CCAS-BELFORT", UPDATE),
        ("CD90", UPDATE),
        ("TH90", UPDATE),
        ("SIAO90", NEW),
    ]


async def _outbox_empty(service: Harness) -> int:
    return int(await service.db.fetchval("SELECT count(*) FROM outbox") == 0)


async def test_a_crash_mid_stream_orients_every_notice_exactly_once(orientation: Harness) -> None:
    db = orientation.db
    events = [_event("s04-cj-assignation") for _ in range(300)]
    procedures = [e.payload.procedure_id for e in events]
    await _send(orientation, *events)
    query = "SELECT count(*) FROM decision WHERE procedure_id = ANY($1::uuid[])"
    await orientation.until(lambda: db.fetchval(query, procedures), 1)
    orientation.processes.kill("orientation")  # SIGKILL: batches in flight are neither committed nor acknowledged
    orientation.processes.start("orientation")
    await orientation.consumed(*(e.event_id for e in events), timeout_s=90)

    decisions = await db.fetchval(query, procedures)
    assignments = await db.fetchval("SELECT count(*) FROM assignment WHERE procedure_id = ANY($1::uuid[])", procedures)
    assert (decisions, assignments) == (300, 900)  # S-04: CD90 (DSF + accompagnement), CDAD90, FSL90
    assert orientation.processes.running("orientation")
