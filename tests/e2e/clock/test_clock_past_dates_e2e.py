"""An earliest expulsion date already past at sending time reads « possible depuis », through the running services.

S-06's earliest expulsion is 1 April 2026 (end of the trêve). The stack of this module runs with its clock on
that very day, 10:00 Paris: the day itself counts as passed, so its partners read that the expulsion is possible
since that date, never « impossible avant » a date behind them. The other side of the day is
test_clock_march_e2e.py (1 March: « impossible avant le 01/04/2026 »). A stack of its own (conftest.py).
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

from devtools import SmtpSink
from devtools.demo import DEMO_INPUTS

if TYPE_CHECKING:
    from tests.e2e.clock.conftest import Replay, SendAct

pytestmark = pytest.mark.e2e

# Read by conftest.py's ``replay``: the clock of this module's stack.
CLOCK_ENV = {"PREVEX_CLOCK": "2026-04-01T10:00:00+02:00"}
[S06] = [demo for demo in DEMO_INPUTS if demo.scenario.startswith("S-06")]


async def test_on_the_earliest_expulsion_day_every_alert_says_it_is_possible_since_that_day(
    replay: Replay, send_act: SendAct, mail: SmtpSink
) -> None:
    await send_act(S06)

    mails = await mail.wait_for(S06.emails, timeout=120)
    assert len(mails) == S06.emails
    for received in mails:
        assert isinstance(received.message, EmailMessage)
        for part in ("plain", "html"):
            body = received.message.get_body((part,))
            assert body is not None
            text = " ".join(body.get_content().split())
            assert "possible depuis le 01/04/2026" in text, (received.rcpt_tos, part)
            assert "impossible avant" not in text, (received.rcpt_tos, part)
    assert replay.processes.running("notifier")
