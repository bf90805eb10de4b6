"""The read model's folds on PostgreSQL: order between topics, revisions, closure and reopening, statuses that
orientation's rules refuse, and records that are not events."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

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
from schemas.procedure import Act, ClotureReason, ProcedureNotification
from schemas.stages import Stage

if TYPE_CHECKING:
    from tests.integration.workspace.conftest import World

pytestmark = pytest.mark.integration

REF = "90-2026-000001"


def _status(
    assignment_id: uuid.UUID | None,
    procedure_id: uuid.UUID,
    structure_id: str,
    status: AssignmentStatus,
    by: StatusActor = StatusActor.PARTNER,
    **fields: object,
) -> AssignmentStatusEvent:
    change = AssignmentStatusChange(
        assignment_id=assignment_id,
        procedure_id=procedure_id,
        structure_id=structure_id,
        status=status,
        by=by,
        **fields,  # type: ignore[arg-type]
    )
    return AssignmentStatusEvent(**new_envelope_fields("test"), payload=change)


def _act(stage: Stage, **fields: object) -> ProcedureNotification:
    """S-01's record as another act of the same procedure (its own notification id)."""
    s01 = example_record("s01-cj-commandement-payer")
    assert s01 is not None
    act = Act(stage=stage, date=s01.act.date, **fields)  # type: ignore[arg-type]
    return s01.model_copy(update={"act": act, "notification_id": uuid.uuid4()})


async def _row(world: World, query: str, *args: object) -> object:
    async with world.workspace_pool.acquire() as conn:
        return await conn.fetchval(query, *args)


async def test_a_decision_read_before_its_notice_still_builds_the_case(world: World) -> None:
    procedure_id = uuid.uuid4()
    notice_event_ = await world.orient("s01-cj-commandement-payer", procedure_id=procedure_id, short_ref=REF)
    await world.relay_orientation()  # the decision first
    assert await _row(world, "SELECT case_file IS NULL FROM procedure WHERE procedure_id = $1", procedure_id)
    assert (
        await _row(world, "SELECT stage FROM procedure WHERE procedure_id = $1", procedure_id) == "COMMANDEMENT_PAYER"
    )
    await world.fold_event(topics.PROCEDURE_NOTIFICATION, notice_event_)
    assert (
        await _row(
            world,
            "SELECT case_file->'household'->'tenants'->0->>'last_name' FROM procedure",
        )
        == "Durand"
    )
    assert await _row(world, "SELECT count(*) FROM assignment WHERE procedure_id = $1", procedure_id) == 3


async def test_an_older_revision_never_replaces_a_newer_one_and_a_late_act_moves_nothing(world: World) -> None:
    procedure_id = uuid.uuid4()
    newer = notice_event(notice(_act(Stage.ASSIGNATION), procedure_id=procedure_id, short_ref=REF, revision=2))
    older = notice_event(notice(_act(Stage.COMMANDEMENT_PAYER), procedure_id=procedure_id, short_ref=REF, revision=1))
    await world.fold_event(topics.PROCEDURE_NOTIFICATION, newer)
    await world.fold_event(topics.PROCEDURE_NOTIFICATION, older)
    assert (
        await _row(world, "SELECT revision || ' ' || stage FROM procedure WHERE procedure_id = $1", procedure_id)
        == "2 ASSIGNATION"
    )
    assert await _row(world, "SELECT count(*) FROM stage_received WHERE procedure_id = $1", procedure_id) == 2
    # The same notice again (a redelivery under the same event id): nothing more.
    await world.fold_event(topics.PROCEDURE_NOTIFICATION, newer)
    assert await _row(world, "SELECT count(*) FROM stage_received WHERE procedure_id = $1", procedure_id) == 2

    late = notice_event(
        notice(_act(Stage.COMMANDEMENT_PAYER), procedure_id=procedure_id, short_ref=REF, revision=3, is_late=True)
    )
    await world.fold_event(topics.PROCEDURE_NOTIFICATION, late)
    assert (
        await _row(world, "SELECT revision || ' ' || stage FROM procedure WHERE procedure_id = $1", procedure_id)
        == "3 ASSIGNATION"
    )


async def test_a_cloture_closes_the_procedure_and_a_later_act_reopens_it(world: World) -> None:
    procedure_id = uuid.uuid4()

    async def receive(stage: Stage, revision: int, *, is_late: bool = False, **act: object) -> object:
        event = notice_event(
            notice(_act(stage, **act), procedure_id=procedure_id, short_ref=REF, revision=revision, is_late=is_late)
        )
        await world.fold_event(topics.PROCEDURE_NOTIFICATION, event)
        return await _row(world, "SELECT closed_at FROM procedure WHERE procedure_id = $1", procedure_id)

    assert await receive(Stage.COMMANDEMENT_PAYER, 1) is None
    closed_at = await receive(Stage.CLOTURE, 2, cloture_reason=ClotureReason.DETTE_SOLDEE)
    assert closed_at is not None
    # A late act after the closure leaves it closed; a new act reopens it.
    assert await receive(Stage.COMMANDEMENT_PAYER, 3, is_late=True) == closed_at
    assert await receive(Stage.ASSIGNATION, 4) is None


async def test_statuses_are_folded_with_orientations_rules(world: World) -> None:
    procedure_id = uuid.uuid4()
    await world.notify("s01-cj-commandement-payer", procedure_id=procedure_id, short_ref=REF)
    ccas = (await world.assignment(procedure_id, "CCAS-BELFORT"))["assignment_id"]
    cd90 = (await world.assignment(procedure_id, "CD90"))["assignment_id"]
    status_of = "SELECT status FROM assignment WHERE assignment_id = $1"

    await world.fold_event(
        topics.ASSIGNMENT_STATUS,
        _status(ccas, procedure_id, "CCAS-BELFORT", AssignmentStatus.REFUSEE, reason="DEJA_SUIVI"),
    )
    assert await _row(world, status_of, ccas) == "REFUSEE"
    # Final: an acceptance after the refusal is refused by the rules, the status stays.
    await world.fold_event(
        topics.ASSIGNMENT_STATUS, _status(ccas, procedure_id, "CCAS-BELFORT", AssignmentStatus.ACCEPTEE)
    )
    assert await _row(world, status_of, ccas) == "REFUSEE"
    # Only the timer expires an assignment; another structure's name on an assignment changes nothing.
    await world.fold_event(topics.ASSIGNMENT_STATUS, _status(cd90, procedure_id, "CD90", AssignmentStatus.EXPIREE))
    await world.fold_event(
        topics.ASSIGNMENT_STATUS, _status(cd90, procedure_id, "CCAS-BELFORT", AssignmentStatus.ACCEPTEE)
    )
    await world.fold_event(
        topics.ASSIGNMENT_STATUS, _status(uuid.uuid4(), procedure_id, "CD90", AssignmentStatus.ACCEPTEE)
    )
    assert await _row(world, status_of, cd90) == "OUVERTE"
    # The CCAPEX's removal closes it; its ADD (no assignment id yet) waits for orientation's decision.
    await world.fold_event(
        topics.ASSIGNMENT_STATUS,
        _status(
            cd90,
            procedure_id,
            "CD90",
            AssignmentStatus.CLOTUREE,
            StatusActor.CCAPEX,
            override=AssignmentOverride.REMOVE,
        ),
    )
    assert await _row(world, status_of, cd90) == "CLOTUREE"
    await world.fold_event(
        topics.ASSIGNMENT_STATUS,
        _status(
            None, procedure_id, "SIAO90", AssignmentStatus.OUVERTE, StatusActor.CCAPEX, override=AssignmentOverride.ADD
        ),
    )
    assert await _row(world, "SELECT count(*) FROM assignment WHERE structure_id = 'SIAO90'") == 0


async def test_records_that_are_not_events_are_parked_and_the_rest_of_the_batch_applied(world: World) -> None:
    procedure_id = uuid.uuid4()
    s01 = example_record("s01-cj-commandement-payer")
    assert s01 is not None
    good = notice_event(notice(s01, procedure_id=procedure_id, short_ref=REF))
    await world.fold_raw(
        (topics.PROCEDURE_NOTIFICATION, b"\xff\xfe not json"),
        (topics.ORIENTATION_DECIDED, b'{"event_type": "orientation.decided"}'),
        (topics.REFERENTIAL_CHANGED, b"[]"),
        (topics.ASSIGNMENT_STATUS, b""),
        (topics.PROCEDURE_NOTIFICATION, good.model_dump_json().encode()),
    )
    assert await _row(world, "SELECT count(*) FROM dead_letter") == 4
    assert await _row(world, "SELECT short_ref FROM procedure WHERE procedure_id = $1", procedure_id) == REF
