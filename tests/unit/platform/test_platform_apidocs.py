"""The API documents as pages (``services/platform/apidocs.py``), served by each service as its runtime wires it.

Each service is built by its own ``bootstrap.build`` (nothing started): its HTTP apps are asked for
``/docs/events`` (and ``/docs/api`` where the app has an OpenAPI document) through ASGI. A page must list this
service's AsyncAPI operations and every channel, or every OpenAPI operation and schema, link only inside
itself, and load nothing from anywhere (no script, no stylesheet, no external URL), with a
``Content-Security-Policy`` that forbids any other origin.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import topics
from schemas.export import asyncapi_document, operation_id
from schemas.flows import operations_of
from services.ingest import bootstrap as ingest
from services.ingest.settings import IngestSettings
from services.notifier import bootstrap as notifier
from services.notifier.settings import NotifierSettings
from services.orientation import bootstrap as orientation
from services.orientation.settings import OrientationSettings
from services.platform import tracing
from services.platform.apidocs import EVENTS_PATH, OPENAPI_PATH, asyncapi_page
from services.platform.runtime import Runtime
from services.workspace import bootstrap as workspace
from services.workspace.settings import WorkspaceSettings

EMITTERS_FILE = Path(__file__).resolve().parents[3] / "deploy" / "emitters" / "emitters.yaml"
SECRET = "apidocs-unit-tests-link-secret-0123456789"


@pytest.fixture(scope="module")
def runtimes() -> dict[str, Runtime]:
    tracing.install(None)
    return {
        "ingest": ingest.build(IngestSettings(emitters_path=EMITTERS_FILE)),
        "orientation": orientation.build(OrientationSettings()),
        "notifier": notifier.build(NotifierSettings(link_secrets=SECRET)),
        "workspace": workspace.build(WorkspaceSettings(link_secrets=SECRET)),
    }


async def _get(app: Any, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        return await client.get(path)


async def _served(runtime: Runtime, path: str) -> list[httpx.Response]:
    """The answers of every app of ``runtime`` that serves ``path``."""
    answers = [await _get(app, path) for app, _, _ in runtime.http_apps]
    return [answer for answer in answers if answer.status_code != 404]


def _assert_offline(answer: httpx.Response) -> None:
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    page = answer.text
    assert re.search(r"<script|<link|<img|<iframe|@import|url\(", page, re.IGNORECASE) is None
    assert re.findall(r"(?:href|src|action)=\"(?!#)[^\"]*\"", page) == [], "only links inside the page"
    anchors = set(re.findall(r'id="([^"]+)"', page))
    assert set(re.findall(r'href="#([^"]+)"', page)) <= anchors, "a link to a section the page lacks"


@pytest.mark.parametrize("service", ["ingest", "orientation", "notifier", "workspace"])
async def test_each_service_serves_the_events_page_with_its_operations(
    runtimes: dict[str, Runtime], service: str
) -> None:
    (answer,) = await _served(runtimes[service], EVENTS_PATH)
    _assert_offline(answer)
    own = operations_of(service)
    assert own, f"{service} sends or receives nothing?"
    for action, topic in own:
        assert f"<code>{operation_id(service, action, topic)}</code>" in answer.text
    for topic in topics.ALL_TOPICS:
        assert f'id="channel-{topic}"' in answer.text


@pytest.mark.parametrize("service", ["ingest", "orientation"])
async def test_a_service_with_an_api_serves_its_openapi_as_a_page(runtimes: dict[str, Runtime], service: str) -> None:
    (app, _, _), *_ = runtimes[service].http_apps
    document = app.openapi()
    (answer,) = await _served(runtimes[service], OPENAPI_PATH)
    _assert_offline(answer)
    for path, item in document["paths"].items():
        for method in item:
            assert f'<span class="method">{method.upper()}</span> <code>{path}</code>' in answer.text
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in answer.text
    # The CDN-backed pages FastAPI would serve by default are off.
    assert (await _get(app, "/docs")).status_code == 404
    assert (await _get(app, "/redoc")).status_code == 404


@pytest.mark.parametrize("service", ["notifier", "workspace"])
async def test_a_service_without_a_published_api_serves_no_api_page(runtimes: dict[str, Runtime], service: str) -> None:
    assert await _served(runtimes[service], OPENAPI_PATH) == []


def test_a_message_payload_is_a_table_of_its_fields_and_definitions() -> None:
    document = asyncapi_document()
    payload = {
        "type": "object",
        "properties": {
            "kind": {"$ref": "#/$defs/Kind", "description": "what it is"},
            "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["kind"],
        "$defs": {"Kind": {"type": "string", "enum": ["A", "B"], "title": "Kind"}},
    }
    page = asyncapi_page("ingest", document, lambda _ref: payload)
    message = f"message-{next(iter(document['components']['messages']))}"
    assert f'<a href="#{message}-Kind">Kind</a>' in page
    assert f'id="{message}-Kind"' in page
    assert "array of string (uuid)" in page
    assert "string | null" in page
    assert "one of &#34;A&#34;, &#34;B&#34;" in page  # autoescaped quotes
