"""The workspace faces the internet: its health, metrics and API pages are served on an internal port of their
own (``WORKSPACE_OPS_HTTP_*``), never on the partners' one, whatever the reverse proxy forwards."""

from __future__ import annotations

from typing import Any

import httpx

from services.platform import tracing
from services.workspace import bootstrap
from services.workspace.settings import WorkspaceSettings

SECRET = "workspace-ops-port-unit-tests-secret-0123456789"
INTERNAL = ("/metrics", "/health/live", "/health/ready", "/docs/events")


async def _status(app: Any, path: str) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://workspace") as client:
        return (await client.get(path)).status_code


async def test_the_public_port_serves_no_internal_route_and_the_ops_port_serves_them() -> None:
    tracing.install(None)
    settings = WorkspaceSettings(link_secrets=SECRET, http_port=18083, ops_http_host="127.0.0.9", ops_http_port=18085)
    (public, public_host, public_port), (internal, ops_host, ops_port) = bootstrap.build(settings).http_apps
    assert (public_host, public_port, ops_host, ops_port) == ("127.0.0.1", 18083, "127.0.0.9", 18085)

    for path in (*INTERNAL, "/docs/api", "/openapi.json"):
        assert await _status(public, path) == 404, path
    assert await _status(public, "/health") == 200  # the reverse proxy's bare liveness check stays public

    assert await _status(internal, "/health/live") == 200
    assert await _status(internal, "/docs/events") == 200
    # Nothing started: not ready, and the scrape still answers (its gauges left at their last values).
    assert await _status(internal, "/health/ready") == 503
    assert await _status(internal, "/metrics") == 200


def test_the_ops_port_defaults_apart_from_the_public_one() -> None:
    settings = WorkspaceSettings(link_secrets=SECRET)
    assert (settings.http_port, settings.ops_http_host, settings.ops_http_port) == (8083, "127.0.0.1", 8085)
