"""Events ingest emits about inputs it did not turn into a procedure notification (docs/domain.md §3).

Both events go to operations (and, for rejections, back to the emitter), so they carry references and
codes only: never a tenant's name, address, contact or amount, and never the raw payload. The raw
payload is identified by its hash; ingest keeps it for at most 90 days (docs/domain.md §8.5).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from schemas.common import Contract
from schemas.envelope import Envelope
from schemas.procedure import EmitterType, SourceSystem

__all__ = [
    "IngestDuplicate",
    "IngestDuplicateEvent",
    "IngestError",
    "IngestRejected",
    "IngestRejectedEvent",
    "RejectionCode",
]

RejectionCode = Annotated[str, Field(pattern=r"^[A-Z_]+(:[a-z_.]+)?$", max_length=128)]
"""A blocking-rejection code (docs/domain.md §3.1), optionally qualified by the canonical field it is about:
``SCHEMA_INVALID``, ``ADDRESS_MISSING``, ``REQUIRED_FOR_STAGE_MISSING:debt.amount``."""

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

# Looser than ``Source.emitter_id``: a rejection must be publishable even when the emitter identifier
# itself is what is wrong (``EMITTER_UNKNOWN``); refusing to build the rejection would lose the feedback.
EmitterRef = Annotated[str, Field(min_length=1, max_length=64)]

# The emitter's own act reference: the only identifier an emitter can use to find what was rejected.
ExternalRef = Annotated[str, Field(min_length=1, max_length=128)]


class IngestError(Contract):
    """One reason an input was rejected.

    ``field`` is the path of the offending field in the emitter's payload or in the canonical record
    (``debt.amount``, ``household.tenants.0.last_name``). ``message`` explains the rule in words; it is
    built from the rule, never from the rejected value, because the value may be personal data.
    """

    code: RejectionCode
    field: str | None = Field(default=None, min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=500)


class IngestRejected(Contract):
    """Payload of ``ingest.rejected``: an input refused as a whole, with every blocking error found.

    ``emitter_type`` and ``external_ref`` are absent when the payload could not be read far enough to
    know them (``SCHEMA_INVALID`` on unparseable input).
    """

    rejection_id: uuid.UUID
    emitter_id: EmitterRef
    emitter_type: EmitterType | None = None
    source_system: SourceSystem
    external_ref: ExternalRef | None = None
    received_at: AwareDatetime
    payload_sha256: Sha256Hex
    errors: list[IngestError] = Field(min_length=1)


class IngestDuplicate(Contract):
    """Payload of ``ingest.duplicate``: an input already received with the same idempotency key and hash.

    ``idempotency_key`` is ``sha256(emitter_id | external_ref | stage)`` (docs/domain.md §1.4);
    ``duplicate_count`` counts the copies received so far under that key, the original excluded.
    ``procedure_id`` is absent when the original was itself rejected and so never linked.
    """

    idempotency_key: Sha256Hex
    emitter_id: EmitterRef
    external_ref: ExternalRef
    procedure_id: uuid.UUID | None = None
    duplicate_count: int = Field(ge=1)


class IngestRejectedEvent(Envelope):
    """An input ingest refused; keyed by ``emitter_id`` so each emitter's feedback stays in order."""

    event_type: Literal["ingest.rejected"] = "ingest.rejected"
    payload: IngestRejected


class IngestDuplicateEvent(Envelope):
    """A duplicate input ingest ignored: counted and audited, with no downstream effect."""

    event_type: Literal["ingest.duplicate"] = "ingest.duplicate"
    payload: IngestDuplicate
