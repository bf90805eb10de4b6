"""Kafka topic names, defined once. The version suffix belongs to the name (docs/architecture.md §2)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALL_TOPICS",
    "ASSIGNMENT_ESCALATION",
    "ASSIGNMENT_STATUS",
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
    "REFERENTIAL_CHANGED",
    "WORKSPACE_LINK_REQUESTED",
]

RAW_CJ: Final = "exp.raw.cj.v1"
RAW_BAILLEUR: Final = "exp.raw.bailleur.v1"
# The préfecture's acts (CFP request and decision) in the act format: a topic of its own, so that its
# producer is granted this topic alone and its records are told apart from the études'.
RAW_PREFECTURE: Final = "exp.raw.prefecture.v1"
PROCEDURE_NOTIFICATION: Final = "exp.procedure.notification.v1"
INGEST_REJECTED: Final = "exp.ingest.rejected.v1"
INGEST_DUPLICATE: Final = "exp.ingest.duplicate.v1"
REFERENTIAL_CHANGED: Final = "exp.referentiel.changed.v1"
ORIENTATION_DECIDED: Final = "exp.orientation.decided.v1"
ORIENTATION_UNMATCHED: Final = "exp.orientation.unmatched.v1"
NOTIFICATION_SENT: Final = "exp.notification.sent.v1"
NOTIFICATION_FAILED: Final = "exp.notification.failed.v1"
NOTIFICATION_UNDELIVERABLE: Final = "exp.notification.undeliverable.v1"
ASSIGNMENT_STATUS: Final = "exp.assignment.status.v1"
# Orientation's escalation of assignments left unanswered (a reminder, then the secretariat), for the
# notifier: a topic of its own, since assignment.status carries the partners' decisions, not timers' nudges.
ASSIGNMENT_ESCALATION: Final = "exp.assignment.escalation.v1"
# A partner asked the workspace for a new link in place of an expired one; the notifier sends it.
WORKSPACE_LINK_REQUESTED: Final = "exp.workspace.link_requested.v1"

ALL_TOPICS: Final[tuple[str, ...]] = (
    RAW_CJ,
    RAW_BAILLEUR,
    RAW_PREFECTURE,
    PROCEDURE_NOTIFICATION,
    INGEST_REJECTED,
    INGEST_DUPLICATE,
    REFERENTIAL_CHANGED,
    ORIENTATION_DECIDED,
    ORIENTATION_UNMATCHED,
    NOTIFICATION_SENT,
    NOTIFICATION_FAILED,
    NOTIFICATION_UNDELIVERABLE,
    ASSIGNMENT_STATUS,
    ASSIGNMENT_ESCALATION,
    WORKSPACE_LINK_REQUESTED,
)
