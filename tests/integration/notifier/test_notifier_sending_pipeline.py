"""The sender as a continuous pipeline, and the decision consumer's batches (issue 16).

A round keeps claiming while it sends, never leasing more than its window (``claim_size``: what a crash may
send twice), each procedure's deliveries still one at a time in order; a batch of decisions is claimed in the
inbox in one statement, a redelivered decision or the same one twice in a batch alerting nobody twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from devtools.sms_emulator import decided_event
from schemas import topics
from schemas.notification import Channel as ChannelCode
from schemas.stages import Stage, stage_label
from services.notifier.bootstrap import build_channels, dispatch_config
from services.notifier.channels import Channel, OutgoingMessage, SendOutcome
from services.notifier.dispatch import Dispatcher
from services.notifier.intake import record_decisions
from services.notifier.templates import load_templates

STAGES = (Stage.COMMANDEMENT_PAYER, Stage.ASSIGNATION, Stage.AUDIENCE, Stage.DECISION)


@dataclass
class LeaseWatch:
    """Wraps a channel: before each send, counts the deliveries leased (``sending``) and the claims seen."""

    inner: Channel
    pool: Any
    leased: list[int] = field(default_factory=list)
    tokens: set[uuid.UUID] = field(default_factory=set)

    provider: str = field(init=False)

    def __post_init__(self) -> None:
        self.provider = self.inner.provider

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        self.leased.append(await self.pool.fetchval("SELECT count(*) FROM delivery WHERE state = 'sending'"))
        self.tokens.add(
            await self.pool.fetchval("SELECT lease_token FROM delivery WHERE delivery_id = $1", message.delivery_id)
        )
        return await self.inner.send(message)

    async def close(self) -> None:
        await self.inner.close()


async def test_one_round_claims_while_it_sends_within_its_window_and_in_each_procedures_order(world: Any) -> None:
    world.configure(send_concurrency=2)  # a window of 8 leased deliveries
    procedures = {f"90-2026-{p:06d}": uuid.uuid4() for p in range(6)}
    for stage in STAGES:  # 6 procedures × 4 successive stages, recorded stage after stage
        for ref, procedure_id in procedures.items():
            await world.decide("CCAPEX90", ref=ref, stage=stage, procedure_id=procedure_id)
    async with world.pool.acquire() as conn:
        await world.dispatcher.expand_alerts(conn)
    channels = build_channels(world.settings)
    watch = LeaseWatch(channels[ChannelCode.EMAIL], world.pool)
    dispatcher = Dispatcher(
        channels={**channels, ChannelCode.EMAIL: watch},
        templates=load_templates(prefix=world.settings.alert_prefix, sms_prefix=world.settings.sms_prefix),
        config=dispatch_config(world.settings),
        clock=world.clock,
    )
    try:
        report = await dispatcher.send_due(world.pool)
    finally:
        for channel in channels.values():
            await channel.close()

    # One round took all 24: it claimed again while sending (one claim is at most 8), never holding more than 8.
    assert (report.claimed, report.sent) == (24, 24)
    assert len(watch.tokens) > 24 // 8
    assert max(watch.leased) <= 8
    for ref in procedures:
        subjects = [str(m.message["Subject"]) for m in world.smtp.messages if ref in str(m.message["Subject"])]
        assert [next(s for s in STAGES if f"– {stage_label(s)} –" in subject) for subject in subjects] == list(STAGES)
    assert [d["state"] for d in await world.deliveries()] == ["sent"] * 24


async def test_a_batch_of_decisions_claims_the_inbox_once_and_alerts_each_decision_once(world: Any) -> None:
    first, second, third = (decided_event(f"90-2026-00010{n}", ["CCAPEX90"]) for n in range(3))
    await world.record(first)
    async with world.pool.acquire() as conn, conn.transaction():
        # ``first`` redelivered, ``second`` twice in the same batch (a producer's retry), ``third`` new.
        created = await record_decisions(conn, [first, second, second, third], topics.ORIENTATION_DECIDED)
    assert created == 2
    keys = await world.pool.fetch("SELECT alert_key FROM alert ORDER BY seq")
    assert [k["alert_key"] for k in keys] == [
        f"new:{event.payload.assignments[0].assignment_id}" for event in (first, second, third)
    ]
    await world.run()
    assert len(world.smtp.messages) == 3
