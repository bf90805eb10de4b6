"""Quiet hours judged at the replayed time, through the three running services.

The Delle commandement de payer (deploy/demo) is sent while the services' clock reads Wednesday 20 May 2026,
22:30 Paris: its two emails go at once, and its SMS partner, whose contact keeps quiet from 20:00 to 08:00
(deploy/referential/seed-90.yaml), gets its SMS held until 08:00 on the replayed next morning — not the
real one. Only the environment variable reaches the processes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from devtools import SmtpSink
from devtools.demo import DEMO_INPUTS
from services.platform.db import connect_pool

if TYPE_CHECKING:
    from tests.e2e.clock.conftest import Replay, SendAct

pytestmark = pytest.mark.e2e

# Read by conftest.py's ``replay``.
CLOCK_ENV = {"PREVEX_CLOCK": "2026-05-20T22:30:00+02:00"}
[DELLE] = [demo for demo in DEMO_INPUTS if demo.scenario.startswith("D-09")]
# The replayed next morning, 08:00 Paris (summer time).
MORNING = datetime(2026, 5, 21, 6, 0, tzinfo=UTC)


async def test_an_sms_sent_in_the_replayed_evening_waits_for_the_replayed_morning(
    replay: Replay, send_act: SendAct, own_database: str, mail: SmtpSink
) -> None:
    await send_act(DELLE)

    mails = await mail.wait_for(DELLE.emails, timeout=120)
    assert len(mails) == DELLE.emails
    pool = await connect_pool(own_database, schema="notifier", max_size=1)
    try:
        held = "SELECT next_attempt_at FROM delivery WHERE channel = 'SMS' AND state = 'pending' AND attempts = 0"
        async with asyncio.timeout(120):
            while not (due := await pool.fetchval(held)):
                assert replay.processes.running("notifier"), "notifier died"
                await asyncio.sleep(0.1)  # polling PostgreSQL: no event to wait on from here
    finally:
        await pool.close()
    assert due == MORNING
    assert not list(replay.config.sms_dir.glob("*.txt")), "the SMS went out during the replayed night"
