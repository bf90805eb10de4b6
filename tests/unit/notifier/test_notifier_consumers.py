"""The notifier's Kafka consumers, as ``bootstrap.build`` wires them (nothing started): one consumer reads the
five topics, so an idle notifier keeps one fetch loop and one heartbeat going, not five."""

from __future__ import annotations

from schemas import topics
from services.notifier import bootstrap
from services.notifier.settings import NotifierSettings


def test_one_consumer_reads_the_five_topics_of_the_notifier() -> None:
    runtime = bootstrap.build(NotifierSettings(link_secrets="notifier-consumers-unit-tests-link-secret"))

    [consumer] = runtime.broker.subscribers
    assert set(consumer.topic_names) == {  # type: ignore[attr-defined]
        topics.REFERENTIAL_CHANGED,
        topics.ORIENTATION_DECIDED,
        topics.ASSIGNMENT_STATUS,
        topics.ASSIGNMENT_ESCALATION,
        topics.WORKSPACE_LINK_REQUESTED,
    }
