"""Is a Docker engine reachable? Decides whether testcontainers can be used."""

from __future__ import annotations

import functools
import os

__all__ = ["docker_available"]


def docker_available() -> bool:
    """Return True when a Docker engine answers a ping within 2 s.

    Env ``PREVEX_NO_DOCKER=1`` forces False (checked on every call). Otherwise the engine is pinged
    once per process and the answer cached; any failure (no SDK, no socket, timeout) means False.
    """
    if os.environ.get("PREVEX_NO_DOCKER") == "1":
        return False
    return _ping_docker()


@functools.cache
def _ping_docker() -> bool:
    try:
        import docker  # noqa: PLC0415 - optional, slow import only needed here

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "no usable engine"
        return False
