"""A structure the CCAPEX adds is announced exactly once, whatever came first (issue 14).

The override travels on ``assignment.status``, the notice on ``procedure.notification``: orientation may get
either first. Each test counts, over every ``orientation.decided`` orientation published, how often the added
structure's assignment was announced as NEW — the notifier alerts a structure once per such announcement
(key ``new:<assignment>``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from schemas import topics
from schemas.assignment import (
    AssignmentOverride,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    StatusActor,
)
from schemas.envelope import new_envelope_fields
from schemas.orientation import AssignmentKind, DecisionTrigger, OrientationDecided, OrientationDecidedEvent
from schemas.procedure import ProcedureNotificationEvent
from services.orientation import repository as repo
from services.orientation.domain.events import OVERRIDE_EXPLANATION
from services.orientation.lifecycle import StatusHandler

pytestmark = pytest.mark.integration

MakeEvent = Callable[..., ProcedureNotificationEvent]
Orient = Callable[..., Any]
S01 = "s01-cj-commandement-payer"
MATCHED = "CD90"  # S-01's matching chooses it
UNMATCHED = "SIAO90"  # S-01's matching does not (a commandement de payer is before its stages)


@pytest.fixture
def add(pool: asyncpg.Pool, statuses: StatusHandler) -> Callable[..., Any]:
    async def run(procedure_id: uuid.UUID, *structure_ids: str) -> None:
        events = [
            AssignmentStatusEvent(
                **new_envelope_fields("workspace"),
                payload=AssignmentStatusChange(
                    procedure_id=procedure_id,
                    structure_id=structure_id,
                    status=AssignmentStatus.OUVERTE,
                    by=StatusActor.CCAPEX,
                    override=AssignmentOverride.ADD,
                ),
            )
            for structure_id in structure_ids
        ]
        async with pool.acquire() as conn, conn.transaction():
            await statuses.handle_batch(conn, events)

    return run


async def _decided(pool: asyncpg.Pool) -> list[OrientationDecided]:
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topics.ORIENTATION_DECIDED)
    return [OrientationDecidedEvent.model_validate_json(row["value"]).payload for row in rows]


async def _override_assignment(pool: asyncpg.Pool, procedure_id: uuid.UUID, structure_id: str) -> uuid.UUID:
    async with pool.acquire() as conn:
        assignments = await repo.procedure_assignments(conn, procedure_id)
    rows = [r for r in assignments if r.structure_id == structure_id and r.origin == "OVERRIDE"]
    assert [r.status for r in rows] == ["OUVERTE"]
    return rows[0].assignment_id


def _announcements(decisions: list[OrientationDecided], assignment_id: uuid.UUID) -> int:
    shown = [a for d in decisions for a in d.assignments if a.assignment_id == assignment_id]
    return sum(a.kind is AssignmentKind.NEW for a in shown)


async def test_an_override_before_the_notice_is_announced_by_the_notice_s_decision(
    pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent, add: Callable[..., Any]
) -> None:
    procedure = uuid.uuid4()
    await add(procedure, MATCHED, UNMATCHED)
    assert await _decided(pool) == []  # nothing to show yet: no reference, stage or commune
    matched = await _override_assignment(pool, procedure, MATCHED)
    unmatched = await _override_assignment(pool, procedure, UNMATCHED)

    await orient(make_event(S01, procedure_id=procedure))
    [decision] = await _decided(pool)
    assert decision.trigger is DecisionTrigger.NOTIFICATION
    by_structure = {a.structure_id: a for a in decision.assignments}
    # Matching chose CD90, which holds the procedure (a stage update): never told, it is NEW here.
    assert (by_structure[MATCHED].assignment_id, by_structure[MATCHED].kind) == (matched, AssignmentKind.NEW)
    assert by_structure[MATCHED].offer_ids  # what matching found is shown
    added = by_structure[UNMATCHED]
    assert (added.assignment_id, added.kind, added.offer_ids) == (unmatched, AssignmentKind.NEW, [])
    assert added.explanation == OVERRIDE_EXPLANATION
    assert list(by_structure)[-1] == UNMATCHED  # after matching's own
    # No second assignment for the structures that already held one.
    async with pool.acquire() as conn:
        structures = [r.structure_id for r in await repo.procedure_assignments(conn, procedure)]
    assert sorted(structures) == sorted(set(structures))

    await orient(make_event(S01, procedure_id=procedure, revision=2, is_correction=True))
    decisions = await _decided(pool)
    assert len(decisions) == 2
    assert (_announcements(decisions, matched), _announcements(decisions, unmatched)) == (1, 1)


async def test_an_override_after_the_notice_is_announced_at_once_and_only_then(
    pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent, add: Callable[..., Any]
) -> None:
    procedure = uuid.uuid4()
    await orient(make_event(S01, procedure_id=procedure))
    await add(procedure, UNMATCHED)
    first, override = await _decided(pool)
    assigned = await _override_assignment(pool, procedure, UNMATCHED)
    assert override.trigger is DecisionTrigger.CCAPEX_OVERRIDE
    assert [(a.structure_id, a.assignment_id, a.kind) for a in override.assignments] == [
        (UNMATCHED, assigned, AssignmentKind.NEW)
    ]
    assert (override.procedure_short_ref, override.stage, override.commune_insee) == (
        first.procedure_short_ref,
        first.stage,
        first.commune_insee,
    )

    await orient(make_event(S01, procedure_id=procedure, revision=2, is_correction=True))
    assert _announcements(await _decided(pool), assigned) == 1


async def test_a_notice_that_is_not_oriented_still_announces_the_added_structure_in_either_order(
    pool: asyncpg.Pool, orient: Orient, make_event: MakeEvent, add: Callable[..., Any]
) -> None:
    # A late notice (an earlier stage after a later one) is never matched: no decision of its own.
    override_first, notice_first = uuid.uuid4(), uuid.uuid4()
    await add(override_first, UNMATCHED)
    await orient(make_event(S01, procedure_id=override_first, short_ref="90-2026-000007", is_late=True))
    await orient(make_event(S01, procedure_id=notice_first, short_ref="90-2026-000008", is_late=True))
    await add(notice_first, UNMATCHED)

    decisions = await _decided(pool)
    assert [(d.procedure_short_ref, d.trigger) for d in decisions] == [
        ("90-2026-000007", DecisionTrigger.CCAPEX_OVERRIDE),
        ("90-2026-000008", DecisionTrigger.CCAPEX_OVERRIDE),
    ]
    for procedure, decision in zip((override_first, notice_first), decisions, strict=True):
        assigned = await _override_assignment(pool, procedure, UNMATCHED)
        assert [(a.assignment_id, a.kind) for a in decision.assignments] == [(assigned, AssignmentKind.NEW)]
        assert decision.commune_name  # the notice's header: what an alert shows

    # The procedure's next notice is oriented; the structure, already told, is not announced again.
    await orient(make_event(S01, procedure_id=override_first, short_ref="90-2026-000007", revision=2))
    assigned = await _override_assignment(pool, override_first, UNMATCHED)
    assert _announcements(await _decided(pool), assigned) == 1
