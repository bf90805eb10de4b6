"""prevex event contracts: pydantic models, topic names and the registry tying them together.

Importing the package imports every contract module (plain imports, no lazy loading), so a broken
contract fails at import time rather than on the first message that uses it.
"""

from __future__ import annotations

from schemas.assignment import (
    AssignmentEscalation,
    AssignmentEscalationEvent,
    AssignmentOverride,
    AssignmentStatus,
    AssignmentStatusChange,
    AssignmentStatusEvent,
    StatusActor,
)
from schemas.common import Contract
from schemas.envelope import Envelope, event_headers, new_envelope_fields
from schemas.ingest import (
    IngestDuplicate,
    IngestDuplicateEvent,
    IngestError,
    IngestRejected,
    IngestRejectedEvent,
)
from schemas.notification import (
    Channel,
    DeliveryError,
    Fallback,
    FallbackKind,
    NotificationFailed,
    NotificationFailedEvent,
    NotificationSent,
    NotificationSentEvent,
    NotificationUndeliverable,
    NotificationUndeliverableEvent,
)
from schemas.orientation import OrientationDecidedEvent, OrientationUnmatchedEvent
from schemas.procedure import ProcedureNotice, ProcedureNotification, ProcedureNotificationEvent
from schemas.referential import ReferentialChangedEvent
from schemas.registry import (
    EVENT_TYPES,
    RAW_TOPIC_FORMATS,
    SOURCE_FORMATS,
    TOPIC_EVENTS,
    UnknownEventType,
    parse_event,
)
from schemas.sources.bailleur import BailleurNotice
from schemas.sources.cj import CjAct
from schemas.stages import Stage
from schemas.topics import (
    ALL_TOPICS,
    ASSIGNMENT_ESCALATION,
    ASSIGNMENT_STATUS,
    INGEST_DUPLICATE,
    INGEST_REJECTED,
    NOTIFICATION_FAILED,
    NOTIFICATION_SENT,
    NOTIFICATION_UNDELIVERABLE,
    ORIENTATION_DECIDED,
    ORIENTATION_UNMATCHED,
    PROCEDURE_NOTIFICATION,
    RAW_BAILLEUR,
    RAW_CJ,
    RAW_PREFECTURE,
    REFERENTIAL_CHANGED,
    WORKSPACE_LINK_REQUESTED,
)
from schemas.workspace import LinkRequested, LinkRequestedEvent

__all__ = [
    "ALL_TOPICS",
    "ASSIGNMENT_ESCALATION",
    "ASSIGNMENT_STATUS",
    "EVENT_TYPES",
    "INGEST_DUPLICATE",
    "INGEST_REJECTED",
    "NOTIFICATION_FAILED",
    "NOTIFICATION_SENT",
    "NOTIFICATION_UNDELIVERABLE",
    "ORIENTATION_DECIDED",
    "ORIENTATION_UNMATCHED",
    "PROCEDURE_NOTIFICATION",
    "RAW_BAILLEUR",
    "RAW_CJ",
    "RAW_PREFECTURE",
    "RAW_TOPIC_FORMATS",
    "REFERENTIAL_CHANGED",
    "SOURCE_FORMATS",
    "TOPIC_EVENTS",
    "WORKSPACE_LINK_REQUESTED",
    "AssignmentEscalation",
    "AssignmentEscalationEvent",
    "AssignmentOverride",
    "AssignmentStatus",
    "AssignmentStatusChange",
    "AssignmentStatusEvent",
    "BailleurNotice",
    "Channel",
    "CjAct",
    "Contract",
    "DeliveryError",
    "Envelope",
    "Fallback",
    "FallbackKind",
    "IngestDuplicate",
    "IngestDuplicateEvent",
    "IngestError",
    "IngestRejected",
    "IngestRejectedEvent",
    "LinkRequested",
    "LinkRequestedEvent",
    "NotificationFailed",
    "NotificationFailedEvent",
    "NotificationSent",
    "NotificationSentEvent",
    "NotificationUndeliverable",
    "NotificationUndeliverableEvent",
    "OrientationDecidedEvent",
    "OrientationUnmatchedEvent",
    "ProcedureNotice",
    "ProcedureNotification",
    "ProcedureNotificationEvent",
    "ReferentialChangedEvent",
    "Stage",
    "StatusActor",
    "UnknownEventType",
    "event_headers",
    "new_envelope_fields",
    "parse_event",
]
