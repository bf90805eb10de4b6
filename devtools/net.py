"""Small networking and sync/async helpers shared by the devenv modules."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["free_port", "port_open", "run_sync", "wait_for_port"]

T = TypeVar("T")

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_START = 32_768  # Linux's default; macOS starts at 49152, so this stays below it too
_LOWEST_PORT = 10_000
_PORT_SPAN = 12_000
_PORT_ATTEMPTS = 200


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago, below the kernel's ephemeral range.

    Another server may still bind it before the caller does, but no outgoing connection can: the kernel
    takes their local ports from the ephemeral range, which is also where a bind to port 0 lands. A port
    from there was seen taken by a client connection between this call and a service's start.
    """
    low = _ephemeral_range_start()
    for _ in range(_PORT_ATTEMPTS):
        port = random.randrange(max(_LOWEST_PORT, low - _PORT_SPAN), low)  # noqa: S311 - not a secret
        if _bindable(host, port):
            return port
    raise RuntimeError(f"no free port found below {low} on {host}")


def _ephemeral_range_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_START


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Return True when a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, *, alive: Callable[[], bool] | None = None) -> None:
    """Block until ``host:port`` accepts TCP connections.

    Raises ``TimeoutError`` after ``timeout`` seconds, and ``RuntimeError`` as soon as ``alive`` (when
    given, e.g. "the server process is still running") returns False.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None and not alive():
            raise RuntimeError(f"the process meant to listen on {host}:{port} exited")
        if port_open(host, port):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not accept connections within {timeout:g} s")
        time.sleep(0.02)


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
    """Run the coroutine made by ``factory`` to completion on a fresh event loop in a helper thread.

    Usable from synchronous code even when the calling thread already runs an event loop (e.g. a
    pytest-asyncio session loop), since the caller's loop is never touched. Returns the coroutine's
    result or re-raises its exception; raises ``TimeoutError`` if the thread is still busy after
    ``timeout`` seconds (the coroutine should carry its own, shorter timeout).
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(factory())
        except BaseException as exc:  # handed over to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="devenv-run-sync", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"coroutine still running after {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
