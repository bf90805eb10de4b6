"""``make run``'s promise: the demo's emails land in ``var/mail/``, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devtools.demo import expected_alerts
from devtools.stack import SERVICES

pytestmark = pytest.mark.e2e


def _children(pid: int) -> set[int]:
    """Live direct children of ``pid`` (the broker, the database server, the services)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_runner_delivers_the_demo_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS"}}
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.run",
            "--var-dir",
            str(tmp_path),
            "--database",
            f"prevex_run_{uuid.uuid4().hex[:8]}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert runner.stdout is not None
    output = []
    try:
        for line in runner.stdout:
            output.append(line)
            if line.startswith("running"):
                break
        started = _children(runner.pid)
        mails = sorted((tmp_path / "mail").glob("*.eml"))
        emails, sms = expected_alerts()
        assert len(mails) == emails, "".join(output)
        # At night the SMS partner's quiet hours (20:00–08:00) hold its SMS: the runner says until when.
        held = [line for line in output if line.startswith("sms held")]
        assert len(list((tmp_path / "sms").glob("*.txt"))) + len(held) == sms, "".join(output)
        assert len(started) >= 4, f"expected broker + 3 services at least, got {started}"
        # Where each service's metrics, health and API pages are (docs/operations.md): one line each.
        ops = [line.split()[1] for line in output if line.startswith("ops ")]
        docs = {line.split()[1]: line.split()[2:] for line in output if line.startswith("docs ")}
        assert ops == list(SERVICES), "".join(output)
        assert list(docs) == list(SERVICES), "".join(output)
        assert all(urls[0].endswith("/docs/events") for urls in docs.values()), "".join(output)

        runner.send_signal(signal.SIGINT)
        output.append(runner.stdout.read())
        assert runner.wait(timeout=60) == 0, "".join(output)
    finally:
        if runner.poll() is None:
            # A failed assertion above: Ctrl-C still lets the runner stop the broker, the database server
            # and the services it started (each in its own session, beyond the reach of killpg).
            runner.send_signal(signal.SIGINT)
            try:
                runner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(runner.pid, signal.SIGKILL)
    assert [pid for pid in started if _alive(pid)] == [], "".join(output)
