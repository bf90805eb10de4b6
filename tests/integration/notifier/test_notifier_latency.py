"""The end-to-end latency's observation point on a real PostgreSQL and SMTP server: an alert's first delivery
accepted by the provider, once per alert whatever its recipients, retries and redeliveries; an alert no act
caused (no ``act_received_at``: a decision without it, a refusal's notice to the secretariat) is stamped and
observes nothing."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from devtools.sms_emulator import decided_event
from schemas import topics
from schemas.assignment import AssignmentStatus, AssignmentStatusChange, AssignmentStatusEvent, StatusActor
from schemas.envelope import new_envelope_fields
from schemas.orientation import OrientationDecidedEvent
from services.notifier.dispatch import Dispatcher
from services.notifier.intake import record_refusals

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import ContactBuilders, World

Observed = list[tuple[datetime, datetime]]


def _observing(world: World, observed: Observed) -> Dispatcher:
    """The world's dispatcher, telling ``observed`` each (act received at, accepted at) as the metrics would."""
    return world.another_dispatcher(on_accepted=lambda received, accepted: observed.append((received, accepted)))


def _received(event: OrientationDecidedEvent, at: datetime | None) -> OrientationDecidedEvent:
    return event.model_copy(update={"payload": event.payload.model_copy(update={"act_received_at": at})})


async def test_an_alert_is_observed_once_at_its_first_accepted_delivery(
    world: World, contacts: type[ContactBuilders]
) -> None:
    observed: Observed = []
    world.dispatcher = _observing(world, observed)
    # Two mailboxes: two deliveries of one alert, the first refused once and accepted a minute later.
    await world.structure(
        "FSL90", contacts.email("FSL90-A", "flaky@fsl90.test"), contacts.email("FSL90-B", "desk@fsl90.test")
    )
    world.smtp_replies.script("flaky@fsl90.test", "451 4.3.0 Try again later")
    received = world.clock.now - timedelta(seconds=90)
    decided = _received(decided_event("90-2026-000001", ["FSL90"]), received)
    await world.record(decided)

    await world.run()

    assert len(world.mails_to("flaky@fsl90.test")) == len(world.mails_to("desk@fsl90.test")) == 1
    assert len(observed) == 1, "two deliveries accepted, one alert: one observation"
    assert observed[0][0] == received
    first = await world.pool.fetchval("SELECT first_accepted_at FROM alert")
    assert observed[0][1] == first
    assert observed[0][1] - received >= timedelta(seconds=90)

    # The same decision again (a redelivery under a new event id): no new alert, nothing observed.
    await world.record(_received(decided.model_copy(update={"event_id": uuid.uuid4()}), received))
    await world.run()
    assert len(observed) == 1

    # FSL90 refuses: the secretariat's notice copies the alert it announces, not the act's reception time.
    [assignment] = decided.payload.assignments
    refusal = AssignmentStatusChange(
        assignment_id=assignment.assignment_id,
        procedure_id=decided.payload.procedure_id,
        structure_id="FSL90",
        status=AssignmentStatus.REFUSEE,
        reason="HORS_TERRITOIRE",
        by=StatusActor.PARTNER,
    )
    async with world.pool.acquire() as conn, conn.transaction():
        event = AssignmentStatusEvent(**new_envelope_fields("workspace"), payload=refusal)
        assert await record_refusals(conn, [event], topics.ASSIGNMENT_STATUS) == 1
    await world.run()
    assert len(world.mails_to("ccapex90@pref.test")) == 1
    assert len(observed) == 1
    notice = await world.pool.fetchrow(
        "SELECT act_received_at, first_accepted_at FROM alert WHERE alert_key LIKE 'refused:%'"
    )
    assert notice is not None
    assert notice["act_received_at"] is None
    assert notice["first_accepted_at"] is not None


async def test_an_alert_no_act_caused_is_stamped_and_not_observed(
    world: World, contacts: type[ContactBuilders]
) -> None:
    observed: Observed = []
    world.dispatcher = _observing(world, observed)
    await world.structure("CD90", contacts.email("CD90-A", "cd90@cd90.test"))
    await world.record(_received(decided_event("90-2026-000002", ["CD90"]), None))

    await world.run()

    assert len(world.mails_to("cd90@cd90.test")) == 1
    assert observed == []
    assert await world.pool.fetchval("SELECT first_accepted_at FROM alert") == world.clock.now
