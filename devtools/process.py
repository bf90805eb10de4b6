"""Stopping a self-started server process and everything it spawned."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

__all__ = ["stop_process_group"]


def stop_process_group(proc: subprocess.Popen[bytes], first_signal: signal.Signals, grace_s: float) -> None:
    """Send ``first_signal`` to ``proc``'s process group; SIGKILL the group if ``proc`` outlives ``grace_s``.

    Does nothing for a process already reaped: its PID, and so its group number, may have been reused.
    """
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, first_signal)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
