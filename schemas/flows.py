"""Who sends and who receives each topic: the operations of the AsyncAPI document (``schemas/export.py``).

A party is one of our services (``ingest``, ``orientation``, ``notifier``, ``workspace``) or someone outside
them: the emitters that produce the raw inputs, the partners' and the CCAPEX's own tools, and ``ops`` (the
dashboards, ``prevex-ops`` and whoever reads the outcomes no service consumes). The receivers that are our
services are exactly the topics each one subscribes to (``tests/unit/schemas`` builds the services and
compares), the senders are the services whose code writes the topic to its outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas import topics

__all__ = ["EXTERNAL_PARTIES", "FLOWS", "SERVICES", "Flow", "operations_of"]

SERVICES: Final = ("ingest", "orientation", "notifier", "workspace")
"""Our services, the parties of the flows that run code of this repository."""

EXTERNAL_PARTIES: Final = {
    "commissaires-de-justice": "the commissaires de justice's software, producing their acts",
    "bailleurs": "the bailleurs' and administrateurs de biens' software, producing their notices",
    "prefecture": "the préfecture's software, producing its concours de la force publique acts",
    "emitters": "every emitter, reading the answers to what it sent",
    "ops": "the operations team's tools: dashboards, alerting, prevex-ops",
}
"""The parties outside our services, with what they stand for."""


@dataclass(frozen=True)
class Flow:
    """The parties that send a topic's records and those that receive them, in the order they are named."""

    senders: tuple[str, ...]
    receivers: tuple[str, ...]


FLOWS: Final[dict[str, Flow]] = {
    topics.RAW_CJ: Flow(("commissaires-de-justice",), ("ingest",)),
    topics.RAW_BAILLEUR: Flow(("bailleurs",), ("ingest",)),
    topics.RAW_PREFECTURE: Flow(("prefecture",), ("ingest",)),
    topics.PROCEDURE_NOTIFICATION: Flow(("ingest",), ("orientation", "workspace")),
    topics.INGEST_REJECTED: Flow(("ingest",), ("emitters", "ops")),
    topics.INGEST_DUPLICATE: Flow(("ingest",), ("emitters", "ops")),
    topics.REFERENTIAL_CHANGED: Flow(("orientation",), ("notifier", "workspace")),
    topics.ORIENTATION_DECIDED: Flow(("orientation",), ("notifier", "workspace")),
    topics.ORIENTATION_UNMATCHED: Flow(("orientation",), ("ops",)),
    topics.NOTIFICATION_SENT: Flow(("notifier",), ("ops",)),
    topics.NOTIFICATION_FAILED: Flow(("notifier",), ("ops",)),
    topics.NOTIFICATION_UNDELIVERABLE: Flow(("notifier",), ("ops",)),
    # The workspace publishes the partners' and the CCAPEX desk's answers, orientation its own expiries.
    topics.ASSIGNMENT_STATUS: Flow(("workspace", "orientation"), ("orientation", "notifier", "workspace")),
    topics.ASSIGNMENT_ESCALATION: Flow(("orientation",), ("notifier",)),
    topics.WORKSPACE_LINK_REQUESTED: Flow(("workspace",), ("notifier",)),
}
"""Every topic of ``schemas.topics``, with its senders and receivers."""


def operations_of(party: str) -> list[tuple[str, str]]:
    """The ``(action, topic)`` pairs of ``party``, ``action`` being ``send`` or ``receive``, in topic order."""
    found: list[tuple[str, str]] = []
    for topic in topics.ALL_TOPICS:
        flow = FLOWS[topic]
        found += [("send", topic)] if party in flow.senders else []
        found += [("receive", topic)] if party in flow.receivers else []
    return found
