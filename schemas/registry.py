"""Which contract goes with which event type, topic and source format; decoding an event from bytes.

The tables here are the single place a new event or topic is declared to the rest of the code base:
the JSON Schema export, the AsyncAPI document and the tests all iterate over them.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict

from schemas import topics
from schemas.assignment import AssignmentEscalationEvent, AssignmentStatusEvent
from schemas.envelope import Envelope
from schemas.ingest import IngestDuplicateEvent, IngestRejectedEvent
from schemas.notification import (
    NotificationFailedEvent,
    NotificationSentEvent,
    NotificationUndeliverableEvent,
)
from schemas.orientation import OrientationDecidedEvent, OrientationUnmatchedEvent
from schemas.procedure import ProcedureNotificationEvent
from schemas.referential import ReferentialChangedEvent
from schemas.sources import BAILLEUR_NOTICE_FORMAT, CJ_ACT_FORMAT
from schemas.sources import SOURCE_FORMATS as _SOURCE_FORMATS
from schemas.workspace import LinkRequestedEvent

__all__ = [
    "EVENT_TYPES",
    "RAW_TOPIC_FORMATS",
    "SOURCE_FORMATS",
    "TOPIC_EVENTS",
    "UnknownEventType",
    "event_type_of",
    "parse_event",
]


def event_type_of(event_class: type[Envelope]) -> str:
    """The ``event_type`` an event class pins with its ``Literal`` default."""
    default = event_class.model_fields["event_type"].default
    if not isinstance(default, str):
        raise TypeError(f"{event_class.__name__} does not pin event_type with a default")
    return default


def _by_event_type(*classes: type[Envelope]) -> dict[str, type[Envelope]]:
    # Keyed by the class's own default so an event type is written once, in its class.
    table: dict[str, type[Envelope]] = {}
    for event_class in classes:
        event_type = event_type_of(event_class)
        if event_type in table:
            raise ValueError(f"event_type {event_type!r} is pinned by two classes")
        table[event_type] = event_class
    return table


EVENT_TYPES: Final[dict[str, type[Envelope]]] = _by_event_type(
    ProcedureNotificationEvent,
    IngestRejectedEvent,
    IngestDuplicateEvent,
    ReferentialChangedEvent,
    OrientationDecidedEvent,
    OrientationUnmatchedEvent,
    NotificationSentEvent,
    NotificationFailedEvent,
    NotificationUndeliverableEvent,
    AssignmentStatusEvent,
    AssignmentEscalationEvent,
    LinkRequestedEvent,
)
"""Every event contract, by ``event_type``."""

TOPIC_EVENTS: Final[dict[str, type[Envelope]]] = {
    topics.PROCEDURE_NOTIFICATION: ProcedureNotificationEvent,
    topics.INGEST_REJECTED: IngestRejectedEvent,
    topics.INGEST_DUPLICATE: IngestDuplicateEvent,
    topics.REFERENTIAL_CHANGED: ReferentialChangedEvent,
    topics.ORIENTATION_DECIDED: OrientationDecidedEvent,
    topics.ORIENTATION_UNMATCHED: OrientationUnmatchedEvent,
    topics.NOTIFICATION_SENT: NotificationSentEvent,
    topics.NOTIFICATION_FAILED: NotificationFailedEvent,
    topics.NOTIFICATION_UNDELIVERABLE: NotificationUndeliverableEvent,
    topics.ASSIGNMENT_STATUS: AssignmentStatusEvent,
    topics.ASSIGNMENT_ESCALATION: AssignmentEscalationEvent,
    topics.WORKSPACE_LINK_REQUESTED: LinkRequestedEvent,
}
"""The one event contract each event topic carries. Raw topics carry source formats, not events."""

SOURCE_FORMATS: Final[dict[str, type[BaseModel]]] = dict(_SOURCE_FORMATS)
"""Inbound formats accepted from emitters, by format id (``<name>/<major version>``): ``prevex.cj-act/1`` →
``CjAct``, ``prevex.bailleur-notice/1`` → ``BailleurNotice``. Declared in ``schemas.sources``."""

RAW_TOPIC_FORMATS: Final[dict[str, str]] = {
    topics.RAW_CJ: CJ_ACT_FORMAT,
    topics.RAW_BAILLEUR: BAILLEUR_NOTICE_FORMAT,
    topics.RAW_PREFECTURE: CJ_ACT_FORMAT,
}
"""The source format each raw topic carries, as a key of ``SOURCE_FORMATS``."""


class UnknownEventType(ValueError):  # noqa: N818 -- name agreed with the services using it
    """The bytes name an ``event_type`` no contract is registered for."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event_type {event_type!r}; known: {', '.join(sorted(EVENT_TYPES))}")
        self.event_type = event_type


class _EventTypeProbe(BaseModel):
    """Reads only ``event_type`` from an event, ignoring the rest, to choose the contract."""

    model_config = ConfigDict(extra="ignore", strict=True, title="Event")

    event_type: str


def parse_event(data: bytes) -> Envelope:
    """Decode a JSON event into the contract its ``event_type`` names.

    Raises ``pydantic.ValidationError`` when ``data`` is not JSON, has no string ``event_type``, or does not
    satisfy the contract; ``UnknownEventType`` when no contract is registered for its ``event_type``.
    JSON is decoded with pydantic's JSON mode, which is what lets strict contracts accept ISO dates and
    UUID strings.
    """
    event_type = _EventTypeProbe.model_validate_json(data).event_type
    event_class = EVENT_TYPES.get(event_type)
    if event_class is None:
        raise UnknownEventType(event_type)
    return event_class.model_validate_json(data)
