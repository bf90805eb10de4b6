"""The four services as real processes, configured for a given broker, database and SMTP server.

Used by ``make run`` and by the end-to-end tests, so both exercise the same entry points
(``python -m services.<name>``) with the same environment variables an operator would set.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from devtools.net import free_port

__all__ = ["FETCH_MAX_WAIT_MS", "SERVICES", "ServiceProcesses", "StackConfig", "service_environment"]

SERVICES: Final = ("ingest", "orientation", "notifier", "workspace")
_REPO_ROOT = Path(__file__).resolve().parents[1]

FETCH_MAX_WAIT_MS: Final = 100
"""Each consumer's fetch wait on the local broker. Tansu answers a fetch when its wait ends, not when a record
arrives: a hop costs about half the wait, and each service handles about one batch per wait whatever the
traffic, each batch costing its round trips. Measured at 50 acts/s (docs/benchmarks.md): 50 ms → p99 act → last
email 133 ms, the stack 1.27 cores; 100 ms → 164 ms, 0.91 cores. Apache Kafka answers as soon as a record
arrives, so there the wait only paces idle polling."""


@dataclass(frozen=True)
class StackConfig:
    """Where the services find their infrastructure, and where local outputs go."""

    bootstrap_servers: str
    database_url: str
    smtp_host: str
    smtp_port: int
    sms_dir: Path
    referential_path: Path = _REPO_ROOT / "deploy" / "referential" / "seed-90.yaml"
    emitters_path: Path = _REPO_ROOT / "deploy" / "emitters" / "emitters.yaml"
    kafka_fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS
    # Free ports by default, so that several stacks (tests, a developer's `make run`) never collide.
    ingest_http_port: int = field(default_factory=free_port)
    orientation_http_port: int = field(default_factory=free_port)
    workspace_http_port: int = field(default_factory=free_port)
    # The workspace's health, metrics and docs: an internal port apart from its public pages.
    workspace_ops_port: int = field(default_factory=free_port)
    notifier_http_port: int = field(default_factory=free_port)
    # A fresh secret per stack: links minted by one run never open another's workspace.
    link_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))


def service_environment(config: StackConfig) -> dict[str, str]:
    """Environment variables for the four services, with local-broker friendly Kafka timings.

    Tansu joins a group in about half the session timeout (docs/architecture.md §7.1): a short session keeps
    start-up to a second or two; the fetch wait (:data:`FETCH_MAX_WAIT_MS`) trades a hop's latency for the
    batches a service handles at a trickle. Heartbeats at a third of the
    session, Kafka's own rule of thumb: each is a request the broker serves, for every consumer, all the time.
    """
    env: dict[str, str] = {}
    for name in SERVICES:
        prefix = name.upper() + "_"
        env |= {
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers,
            f"{prefix}DATABASE_URL": config.database_url,
            f"{prefix}KAFKA_FETCH_MAX_WAIT_MS": str(config.kafka_fetch_max_wait_ms),
            f"{prefix}KAFKA_SESSION_TIMEOUT_MS": "1000",
            f"{prefix}KAFKA_HEARTBEAT_INTERVAL_MS": "300",
            f"{prefix}OUTBOX_POLL_INTERVAL_S": "0.5",
        }
    return env | {
        "INGEST_EMITTERS_PATH": str(config.emitters_path),
        "INGEST_HTTP_PORT": str(config.ingest_http_port),
        "ORIENTATION_HTTP_PORT": str(config.orientation_http_port),
        "ORIENTATION_REFERENTIAL_PATH": str(config.referential_path),
        "NOTIFIER_HTTP_PORT": str(config.notifier_http_port),
        "NOTIFIER_SMTP_HOST": config.smtp_host,
        "NOTIFIER_SMTP_PORT": str(config.smtp_port),
        "NOTIFIER_SMTP_TLS": "none",
        "NOTIFIER_SMS_LOG_DIR": str(config.sms_dir),
        # Local runs deliver SMS at once, whatever the hour or the day: the demo must not wait for morning.
        "NOTIFIER_SMS_QUIET_HOURS": "",
        "NOTIFIER_SMS_QUIET_SUNDAYS": "false",
        # The notifier signs the alerts' links with the first secret, the workspace verifies with the list.
        "NOTIFIER_LINK_SECRETS": config.link_secret,
        "NOTIFIER_LINK_BASE_URL": f"http://127.0.0.1:{config.workspace_http_port}/d",
        "WORKSPACE_LINK_SECRETS": config.link_secret,
        "WORKSPACE_HTTP_PORT": str(config.workspace_http_port),
        "WORKSPACE_OPS_HTTP_PORT": str(config.workspace_ops_port),
        # Plain http on the loopback: a Secure cookie would never come back.
        "WORKSPACE_COOKIE_SECURE": "false",
    }


class ServiceProcesses:
    """Starts, kills and stops the service processes; each logs JSON lines to ``<log_dir>/<name>.log``."""

    def __init__(self, config: StackConfig, log_dir: Path, *, extra_env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self._env = os.environ | service_environment(config) | dict(extra_env or {})
        self._log_dir = log_dir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def workspace_url(self) -> str:
        """Where the workspace's pages answer (plain http on the loopback)."""
        return f"http://127.0.0.1:{self.config.workspace_http_port}"

    @property
    def http_urls(self) -> dict[str, str]:
        """Each service's internal HTTP base URL, where ``/health/live``, ``/health/ready``, ``/metrics`` and
        ``/docs/events`` answer (the workspace's is not its public one: :attr:`workspace_url`)."""
        ports = {
            "ingest": self.config.ingest_http_port,
            "orientation": self.config.orientation_http_port,
            "notifier": self.config.notifier_http_port,
            "workspace": self.config.workspace_ops_port,
        }
        return {name: f"http://127.0.0.1:{ports[name]}" for name in SERVICES}

    def log_path(self, name: str) -> Path:
        return self._log_dir / f"{name}.log"

    def start(self, *names: str) -> None:
        """Start the named services (all four by default)."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for name in names or SERVICES:
            with self.log_path(name).open("ab") as log_file:
                # Own session: a Ctrl-C in the terminal reaches the runner, which stops services in order.
                self._procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    env=self._env,
                    cwd=_REPO_ROOT,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def running(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def kill(self, name: str) -> None:
        """SIGKILL one service, as a crash would: no shutdown hook runs."""
        proc = self._procs.pop(name)
        proc.kill()
        proc.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM every service, wait for a clean shutdown, SIGKILL what is left."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
