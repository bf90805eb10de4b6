"""Who sends and receives each topic (``schemas/flows.py``), checked against the services' code, and the
AsyncAPI document's operations built from it.

Receivers that are our services must be exactly the topics each service subscribes to, as its own
``bootstrap.build`` wires it (nothing started); a service named as a sender must write the topic (its code
names ``topics.<NAME>``); every topic has at least one sender and one receiver.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas import topics
from schemas.export import asyncapi_document, operation_id
from schemas.flows import EXTERNAL_PARTIES, FLOWS, SERVICES, operations_of
from services.ingest import bootstrap as ingest
from services.ingest.settings import IngestSettings
from services.notifier import bootstrap as notifier
from services.notifier.settings import NotifierSettings
from services.orientation import bootstrap as orientation
from services.orientation.settings import OrientationSettings
from services.platform import tracing
from services.platform.runtime import Runtime
from services.workspace import bootstrap as workspace
from services.workspace.settings import WorkspaceSettings

REPO = Path(__file__).resolve().parents[3]
SECRET = "flows-unit-tests-link-secret-0123456789"


@pytest.fixture(scope="module")
def runtimes() -> dict[str, Runtime]:
    tracing.install(None)
    return {
        "ingest": ingest.build(IngestSettings(emitters_path=REPO / "deploy" / "emitters" / "emitters.yaml")),
        "orientation": orientation.build(OrientationSettings()),
        "notifier": notifier.build(NotifierSettings(link_secrets=SECRET)),
        "workspace": workspace.build(WorkspaceSettings(link_secrets=SECRET)),
    }


def test_every_topic_has_senders_and_receivers_among_the_known_parties() -> None:
    assert set(FLOWS) == set(topics.ALL_TOPICS)
    parties = {*SERVICES, *EXTERNAL_PARTIES}
    for topic, flow in FLOWS.items():
        assert flow.senders, topic
        assert flow.receivers, topic
        assert {*flow.senders, *flow.receivers} <= parties, topic


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_receives_exactly_what_it_subscribes_to(runtimes: dict[str, Runtime], service: str) -> None:
    subscribers = runtimes[service].broker.subscribers
    subscribed = {name for sub in subscribers for name in sub.topic_names}  # type: ignore[attr-defined]
    assert subscribed == {topic for action, topic in operations_of(service) if action == "receive"}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_named_as_sender_writes_the_topic(service: str) -> None:
    code = "\n".join(path.read_text("utf-8") for path in (REPO / "services" / service).rglob("*.py"))
    named = {topics.__dict__[name] for name in re.findall(r"\btopics\.([A-Z_]+)\b", code)}
    sent = {topic for action, topic in operations_of(service) if action == "send"}
    assert sent <= named


def test_the_asyncapi_document_has_one_operation_per_party_and_action() -> None:
    document = asyncapi_document()
    operations = document["operations"]
    expected = {
        operation_id(party, action, topic)
        for party in (*SERVICES, *EXTERNAL_PARTIES)
        for action, topic in operations_of(party)
    }
    assert set(operations) == expected
    for key, operation in operations.items():
        party, action, topic = key.split(".", 2)
        assert operation["action"] == action
        assert operation["tags"] == [{"name": party}]
        assert operation["channel"] == {"$ref": f"#/channels/{topic}"}
        channel_messages = document["channels"][topic]["messages"]
        assert operation["messages"] == [{"$ref": f"#/channels/{topic}/messages/{m}"} for m in channel_messages]
    assert {tag["name"] for tag in document["info"]["tags"]} == {*SERVICES, *EXTERNAL_PARTIES}
