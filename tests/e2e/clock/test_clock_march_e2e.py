"""A March case replayed through the three running services with ``PREVEX_CLOCK`` set.

S-06 (a commandement de quitter served in December, earliest expulsion 1 April 2026 at the end of the
trêve) sent while the services' clock reads 1 March 2026, 09:00 Paris: ingest receives it on that day and
computes its urgency against it (NORMAL: 31 days left; on the real date, past 1 April, it would be HIGH),
orientation's own sortie-de-trêve sweep — which only runs in March — reminds its partners and adds the
SIAO, and the notifier mails all of it. Nothing here calls a function with a date: only the environment
variable an operator would set reaches the processes. A bad setting stops a service at start instead.

A stack of its own (conftest.py): the session's services run on the system clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devtools import SmtpSink
from devtools.demo import DEMO_INPUTS
from devtools.stack import ServiceProcesses
from schemas.procedure import ProcedureNotification, Urgency
from services.platform.db import connect_pool

if TYPE_CHECKING:
    from tests.e2e.clock.conftest import Replay, SendAct

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
# Read by conftest.py's ``replay``: the clock of this module's stack, and a trêve sweep every half second.
CLOCK_ENV = {"PREVEX_CLOCK": "2026-03-01T09:00:00+01:00", "ORIENTATION_TRUCE_REMINDER_INTERVAL_S": "0.5"}
[S06] = [demo for demo in DEMO_INPUTS if demo.scenario.startswith("S-06")]
# S-06's partners in deploy/referential/seed-90.yaml (CCAS-BELFORT, CD90, TH90), then the SIAO added in March.
HOLDERS = {"accueil@ccas-belfort.test", "prevention.expulsions@cd90.test", "protocole@territoire-habitat.test"}
SIAO = "coordination@siao90.test"
PIPELINE = ("ingest", "orientation", "notifier")  # the services conftest.py starts


async def test_a_march_case_replayed_with_the_clock_set_gets_its_march_urgency_truce_reminder_and_april_expiry(
    replay: Replay, send_act: SendAct, own_database: str, mail: SmtpSink
) -> None:
    replayed = replay.processes
    await send_act(S06)

    # 3 alerts of the decision, then the reminder: the 3 holders again and the SIAO.
    mails = await mail.wait_for(7, timeout=120)
    first = [m for m in mails if "Fin de trêve" not in _subject(m.message)]
    reminders = [m for m in mails if "Fin de trêve" in _subject(m.message)]
    assert {m.rcpt_tos[0] for m in first} == HOLDERS
    assert {m.rcpt_tos[0] for m in reminders} == HOLDERS | {SIAO}
    assert len(first) == 3
    assert len(reminders) == 4
    for m in first:
        assert _subject(m.message).endswith("(Urgence normale)"), _subject(m.message)
        # The date is a month ahead of the replayed day (the day itself: test_clock_past_dates_e2e.py).
        assert "Expulsion impossible avant le 01/04/2026" in _text(m.message)
    for m in reminders:
        assert "01/04/2026" in _text(m.message)

    # The canonical record, the stored reception and assignment times and the reminder's trêve are the
    # replayed ones.
    pool = await connect_pool(own_database, schema="orientation", max_size=1)
    try:
        record = await pool.fetchval("SELECT record FROM ingest.procedure_stage_event")
        notification = ProcedureNotification.model_validate_json(json.dumps(record))
        assert notification.source.received_at.date() == date(2026, 3, 1)
        assert notification.derived.earliest_expulsion_date == date(2026, 4, 1)
        assert notification.derived.urgency is Urgency.NORMAL
        received = await pool.fetchval("SELECT received_at FROM ingest.raw_inbound")
        assert await pool.fetchval("SELECT truce_end FROM truce_reminder") == date(2026, 4, 1)
        opened = await pool.fetch("SELECT created_at, status FROM assignment")
        assert _in_replayed_day(received)
        assert len(opened) == 4
        assert all(_in_replayed_day(row["created_at"]) and row["status"] == "OUVERTE" for row in opened)

        # A month on: orientation restarted with its clock frozen on 2 April expires the four assignments
        # nobody answered (30 days), counted from the replayed 1 March.
        replayed.kill("orientation")
        april = {
            "PREVEX_CLOCK": "2026-04-02T09:00:00+02:00",
            "PREVEX_CLOCK_FROZEN": "true",
            "ORIENTATION_ASSIGNMENT_EXPIRY_INTERVAL_S": "0.5",
        }
        later = ServiceProcesses(replay.config, replay.work / "logs-april", extra_env=april)
        later.start("orientation")
        try:
            expired = "SELECT count(*) FROM assignment WHERE status = 'EXPIREE'"
            async with asyncio.timeout(120):
                while await pool.fetchval(expired) < len(opened):
                    assert later.running("orientation"), f"orientation died; see {later.log_path('orientation')}"
                    await asyncio.sleep(0.1)  # polling PostgreSQL: no event to wait on from here
            [announce] = _log_lines(later.log_path("orientation"), "clock_set")
            assert (announce["clock_start"], announce["frozen"]) == ("2026-04-02T07:00:00+00:00", True)
            history = "SELECT count(*) FROM assignment_status_history WHERE to_status = 'EXPIREE' AND actor = 'SYSTEM'"
            assert await pool.fetchval(history) == len(opened)
        finally:
            later.stop()
    finally:
        await pool.close()

    for name in PIPELINE:
        assert name == "orientation" or replayed.running(name), f"{name} died; see {replayed.log_path(name)}"
        [announce] = _log_lines(replayed.log_path(name), "clock_set")
        assert announce["level"] == "warning"
        assert announce["clock_start"] == "2026-03-01T08:00:00+00:00"
        assert announce["frozen"] is False


@pytest.mark.parametrize(
    ("service", "env", "message"),
    [
        ("ingest", {"PREVEX_CLOCK": "2026-03-01"}, "PREVEX_CLOCK needs a UTC offset"),
        ("orientation", {"PREVEX_CLOCK": "1er mars 2026"}, "PREVEX_CLOCK must be an ISO 8601 date-time"),
        ("notifier", {"PREVEX_CLOCK_FROZEN": "true"}, "PREVEX_CLOCK_FROZEN=true needs PREVEX_CLOCK"),
    ],
)
def test_a_bad_clock_setting_stops_the_service_at_start_saying_why(
    service: str, env: dict[str, str], message: str
) -> None:
    # Nothing to connect to: the settings are read, and refused, before any connection is tried.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREVEX_CLOCK")} | env
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert message in done.stderr
    assert "ValidationError" in done.stderr


def _subject(message: object) -> str:
    assert isinstance(message, EmailMessage)
    return str(message["Subject"])


def _text(message: object) -> str:
    assert isinstance(message, EmailMessage)
    return "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")


def _in_replayed_day(instant: datetime) -> bool:
    return datetime(2026, 3, 1, 8, 0, tzinfo=UTC) <= instant < datetime(2026, 3, 2, tzinfo=UTC)


def _log_lines(path: Path, event: str) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in path.read_text("utf-8").splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]
