"""The sender loop's rounds at a trickle (issue 16): no claim where nothing can have become claimable.

A claim that takes fewer than it asked for took everything claimable at that instant. The round then claims
again only for a procedure's next delivery held back by one it was sending, once that one is recorded; the
loop runs the next round when woken — by a new delivery, or by one given back due at once — or at its idle
poll. These tests run the real loop with an hour-long poll: whatever they wait for must not need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest

from schemas.stages import Stage, stage_label
from services.notifier import repository as repo
from services.notifier.bootstrap import dispatch_config
from services.notifier.channels import Channel, OutgoingMessage, SendOutcome
from services.notifier.dispatch import Dispatcher
from services.notifier.loops import forever
from services.notifier.sending import SendReport
from services.platform.db import Conn
from services.platform.runtime import Runtime
from tests.integration.notifier.test_notifier_dispatch import SlowClaimClock

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import World

pytestmark = pytest.mark.integration

NO_POLL_S = 3600.0  # the loop's idle poll: never reached within a test's timeout


@dataclass
class ClaimSpy:
    """Stands for ``repo.claim_deliveries``: notes each claim (asked, taken); ``held_back`` is set once a claim
    reports a group held back."""

    real: Any
    claims: list[tuple[int, int]] = field(default_factory=list)
    held_back: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, conn: Conn, *, limit: int, **options: Any) -> repo.Claim:
        claim: repo.Claim = await self.real(conn, limit=limit, **options)
        self.claims.append((limit, len(claim.jobs)))
        if claim.blocked:
            self.held_back.set()
        return claim


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> ClaimSpy:
    spy = ClaimSpy(repo.claim_deliveries)
    monkeypatch.setattr(repo, "claim_deliveries", spy)
    return spy


@contextlib.asynccontextmanager
async def sender_loop(world: World, dispatcher: Dispatcher | None = None) -> AsyncIterator[asyncio.Queue[SendReport]]:
    """The real sender loop (the bootstrap's step) around ``dispatcher``; yields each round's report."""
    reports: asyncio.Queue[SendReport] = asyncio.Queue()
    sender = dispatcher or world.dispatcher

    async def step(rt: Runtime) -> bool:
        report = await sender.send_due(rt.pool)
        reports.put_nowait(report)
        return report.more

    runtime = cast("Runtime", SimpleNamespace(pool=world.pool))
    loop = asyncio.create_task(forever("sender", step, NO_POLL_S, wake_on=repo.DELIVERIES_CHANNEL)(runtime))
    try:
        yield reports
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def expand(world: World) -> None:
    async with world.pool.acquire() as conn:
        await world.dispatcher.expand_alerts(conn)


async def test_a_short_claim_is_the_rounds_only_claim_and_the_next_round_waits_for_a_new_delivery(
    world: World, claims: ClaimSpy
) -> None:
    window = dispatch_config(world.settings).claim_size
    await world.decide("CCAPEX90", ref="90-2026-000001")
    await expand(world)
    async with sender_loop(world) as reports, asyncio.timeout(60):
        first = await reports.get()
        assert (first.claimed, first.sent, first.more) == (1, 1, False)
        assert claims.claims == [(window, 1)]  # short: it took all there was, the round claimed no more
        await world.decide("CCAPEX90", ref="90-2026-000002")
        await expand(world)  # its NOTIFY wakes the loop, an hour before its poll
        second = await reports.get()
    assert (second.claimed, second.sent) == (1, 1)
    assert claims.claims == [(window, 1), (window, 1)]
    assert len(world.smtp.messages) == 2


@dataclass
class HeldFirst:
    """Wraps a channel: the send of ``delivery_id`` waits until ``release`` is set (at most ``patience_s``)."""

    inner: Channel
    delivery_id: uuid.UUID
    release: asyncio.Event
    patience_s: float = 30.0
    provider: str = field(init=False)

    def __post_init__(self) -> None:
        self.provider = self.inner.provider

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        if message.delivery_id == self.delivery_id:
            async with asyncio.timeout(self.patience_s):
                await self.release.wait()
        return await self.inner.send(message)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_procedures_next_delivery_held_back_by_the_round_is_claimed_once_its_predecessor_is_recorded(
    world: World, claims: ClaimSpy
) -> None:
    world.configure(send_concurrency=2)  # a window of 8
    procedure = uuid.uuid4()
    await world.decide("CCAPEX90", ref="90-2026-000001", stage=Stage.ASSIGNATION, procedure_id=procedure)
    for n in range(7):  # other procedures: with the first, a full claim of 8
        await world.decide("CCAPEX90", ref=f"90-2026-00010{n}", stage=Stage.ASSIGNATION, procedure_id=uuid.uuid4())
    await world.decide("CCAPEX90", ref="90-2026-000001", stage=Stage.AUDIENCE, procedure_id=procedure)
    await expand(world)
    first, *_, last = await world.deliveries()
    assert first["procedure_id"] == last["procedure_id"] == procedure
    # The procedure's first alert is sent only once a claim found its second held back behind it.
    dispatcher = world.another_dispatcher(
        wrap_email=lambda email: HeldFirst(email, first["delivery_id"], claims.held_back)
    )
    async with sender_loop(world, dispatcher) as reports, asyncio.timeout(60):
        report = await reports.get()
    # One round: the second alert claimed as soon as the first was recorded, not at the next poll.
    assert (report.claimed, report.sent, report.more) == (9, 9, False)
    assert claims.held_back.is_set()
    subjects = [str(m.message["Subject"]) for m in world.smtp.messages if "90-2026-000001" in str(m.message["Subject"])]
    stages = (Stage.ASSIGNATION, Stage.AUDIENCE)
    assert [s for subject in subjects for s in stages if f"– {stage_label(s)} –" in subject] == list(stages)


async def test_a_delivery_given_back_too_late_to_start_is_claimed_again_without_waiting_for_the_poll(
    world: World,
) -> None:
    world.configure(send_lease_s=6, send_timeout_s=5)
    await world.decide("CCAPEX90")
    await expand(world)
    claimed_at = world.clock.now
    # At +2 s, a 5 s send would outlive the first claim's 6 s lease; the next claim leases from +2 s.
    world.clock = SlowClaimClock(claimed_at, later=claimed_at + timedelta(seconds=2))
    async with sender_loop(world) as reports, asyncio.timeout(60):
        given_back = await reports.get()
        again = await reports.get()
    assert (given_back.claimed, given_back.sent, given_back.released, given_back.more) == (1, 0, 1, False)
    assert (again.claimed, again.sent) == (1, 1)
    [row] = await world.deliveries()
    assert (row["state"], row["attempts"]) == ("sent", 1)
    assert len(world.smtp.messages) == 1
