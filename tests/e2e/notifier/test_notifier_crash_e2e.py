"""A notifier killed (SIGKILL) while sending: the restarted one takes its deliveries back at once.

The lease is set to 600 s, so a delivery sent again after the restart was taken back because its owner's
database session was gone, not because its lease expired. Email and SMS (``log`` provider: one file per
attempt, so an SMS sent twice shows) both; nothing lost, duplicates only among what was in flight.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from devtools.sms_emulator import decided_event
from schemas import topics

if TYPE_CHECKING:
    from tests.e2e.notifier.conftest import NotifierWorld

pytestmark = pytest.mark.e2e

EMAIL = "kill@e2e.test"


def _sms_attempts(world: NotifierWorld) -> Counter[uuid.UUID]:
    """SMS files of the ``log`` provider per delivery id (``<delivery_id>-<attempt>.txt``)."""
    return Counter(uuid.UUID(path.stem.rsplit("-", 1)[0]) for path in world.sms_dir.glob("*.txt"))


async def test_a_killed_notifiers_deliveries_are_taken_back_before_their_lease_expires(
    crash_world: NotifierWorld,
) -> None:
    world = crash_world
    total = 300  # decisions, each alerting one email and one SMS structure
    world.replies.slow_address, world.replies.slow_s = EMAIL, 0.02  # so that the kill falls mid-send
    events = [decided_event(f"90-2026-{8000 + n:06d}", ["E2E-KILL", "E2E-SMS-OK"]) for n in range(total)]
    await world.publish(topics.ORIENTATION_DECIDED, [(str(e.payload.procedure_id), e) for e in events])
    while len(world.mails_to(EMAIL)) < 50:
        await world.smtp.wait_for(len(world.smtp.messages) + 1, timeout=60)
    world.services.kill("notifier")
    world.replies.slow_address = None  # the kill has fallen: the rest may go at the sink's pace
    in_flight = {
        r["delivery_id"]: r["lease_until"]
        for r in await world.db.fetch("SELECT delivery_id, lease_until FROM delivery WHERE state = 'sending'")
    }
    assert in_flight, "the kill must fall while deliveries are being sent"
    assert len(world.mails_to(EMAIL)) < total, "the kill must fall before every alert went"

    world.services.start("notifier")
    # A bound against hanging, half the 600 s lease: only a take-back on the dead session can settle this.
    await world.settled(timeout_s=300)

    rows = await world.db.fetch("SELECT delivery_id, channel, state, sent_at FROM delivery")
    assert len(rows) == 2 * total
    assert {r["state"] for r in rows} == {"sent"}, "no delivery lost"
    sent_at = {r["delivery_id"]: r["sent_at"] for r in rows}
    for delivery_id, lease_until in in_flight.items():
        assert sent_at[delivery_id] < lease_until, "taken back before its lease could have expired"

    email_ids = {r["delivery_id"] for r in rows if r["channel"] == "EMAIL"}
    per_message_id = Counter(m.message["Message-ID"] for m in world.mails_to(EMAIL))
    assert {uuid.UUID(mid.strip("<>").split("@")[0]) for mid in per_message_id} == email_ids, "every email arrived"
    sms = _sms_attempts(world)
    assert set(sms) == {r["delivery_id"] for r in rows if r["channel"] == "SMS"}, "every SMS was sent"
    twice = {uuid.UUID(mid.strip("<>").split("@")[0]) for mid, n in per_message_id.items() if n > 1}
    twice |= {delivery_id for delivery_id, n in sms.items() if n > 1}
    assert twice <= set(in_flight), "duplicates only of deliveries in flight at the kill (the documented window)"
    assert max([*per_message_id.values(), *sms.values()]) <= 2
    print(f"\nkill -9: {len(in_flight)} deliveries in flight, {len(twice)} sent twice")  # noqa: T201 (the measure)
