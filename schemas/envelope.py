"""The envelope every event shares, and the Kafka headers derived from it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import AwareDatetime, Field

from schemas.common import Contract

__all__ = ["Envelope", "event_headers", "new_envelope_fields"]

# Kafka header names: set by every producer, read by every consumer to bind log context.
HEADER_EVENT_ID = "event_id"
HEADER_CORRELATION_ID = "correlation_id"
HEADER_EVENT_TYPE = "event_type"
# W3C trace context of the span that produced the record, set only when tracing is on
# (services/platform/tracing.py): never made up from the ids, a trace is one act's journey, not a case's.
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"


class Envelope(Contract):
    """Fields shared by every event. Subclasses pin ``event_type`` with a ``Literal`` and add ``payload``.

    ``correlation_id`` is set once at intake and kept by every later event of the same case;
    ``causation_id`` is the ``event_id`` of the event that caused this one (``None`` at intake).
    """

    SCHEMA_VERSION: ClassVar[str] = "1.0"
    """The ``schema_version`` this code writes for the event type; an additive change bumps the minor."""

    event_id: uuid.UUID
    event_type: str
    schema_version: str = Field(pattern=r"^\d+\.\d+$")
    occurred_at: AwareDatetime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    producer: str = Field(min_length=1, max_length=64)

    @classmethod
    def caused_by(cls, cause: Envelope, *, producer: str, **fields: Any) -> Self:
        """Build an event caused by ``cause``: same correlation, ``causation_id`` = its ``event_id``."""
        return cls(
            **new_envelope_fields(
                producer,
                correlation_id=cause.correlation_id,
                causation_id=cause.event_id,
                schema_version=cls.SCHEMA_VERSION,
            ),
            **fields,
        )


def new_envelope_fields(
    producer: str,
    *,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    now: datetime | None = None,
    schema_version: str = Envelope.SCHEMA_VERSION,
) -> dict[str, Any]:
    """Envelope fields for a new event; a fresh correlation starts when none is given. Pass the event
    class's ``SCHEMA_VERSION`` when it is not 1.0."""
    return {
        "event_id": uuid.uuid4(),
        "schema_version": schema_version,
        "occurred_at": now or datetime.now(UTC),
        "correlation_id": correlation_id or uuid.uuid4(),
        "causation_id": causation_id,
        "producer": producer,
    }


def event_headers(envelope: Envelope) -> dict[str, str]:
    """Kafka headers for ``envelope``: its ids and type, for log correlation and routing.

    The W3C ``traceparent``/``tracestate`` are not derived from the envelope: the outbox adds those of
    the span that wrote the event, when tracing is on (``services.platform.outbox``).
    """
    return {
        HEADER_EVENT_ID: str(envelope.event_id),
        HEADER_CORRELATION_ID: str(envelope.correlation_id),
        HEADER_EVENT_TYPE: envelope.event_type,
    }
