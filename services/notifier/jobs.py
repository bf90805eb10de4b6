"""Claimed deliveries, as the sender sees them: an ``AlertJob`` (one alert) or a ``DigestJob`` (a day's digest).

``DeliveryJob`` is their union: what differs (the alert, or the digest's day and lines) is a field of one
type only, so code that needs an alert narrows with ``isinstance`` and mypy checks it; what both carry (the
row, its lease, the names of the structures involved) is the common base.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from schemas.notification import Channel, FallbackKind
from schemas.procedure import Urgency

if TYPE_CHECKING:  # the repository builds jobs: importing it here at run time would be circular
    from services.notifier.repository import AlertRow

__all__ = ["AlertJob", "DeliveryJob", "Digest", "DigestJob", "DigestLine", "correlation", "urgent"]


@dataclass(frozen=True)
class DigestLine:
    """One alert of a digest, with the fallback kind it reached this recipient through, if any."""

    alert: AlertRow
    fallback_kind: FallbackKind | None


@dataclass(frozen=True)
class Digest:
    """A planned digest: its day, the structure it is for, its alerts in recording order."""

    digest_id: uuid.UUID
    day: date
    structure_id: str
    lines: tuple[DigestLine, ...]


@dataclass(frozen=True)
class _Claimed:
    """A delivery row under a lease: ``lease_token`` guards every write, ``lease_until`` bounds a send.

    ``names`` maps the structure ids involved to their référentiel names, for the fallback notice of a
    default referent and the alert's other assigned structures.
    """

    delivery_id: uuid.UUID
    structure_id: str
    contact_id: str
    channel: Channel
    recipient: str
    attempts: int
    lease_token: uuid.UUID
    lease_until: datetime
    procedure_id: uuid.UUID | None
    seq: int
    fallback_kind: FallbackKind | None
    quiet_hours: tuple[time, time] | None
    names: Mapping[str, str]


@dataclass(frozen=True)
class AlertJob(_Claimed):
    """A claimed delivery of one immediate alert."""

    alert: AlertRow

    @property
    def subject_structure_id(self) -> str:
        """The structure the alert is for (a fallback delivery goes to another one)."""
        return self.alert.structure_id

    @property
    def alerts(self) -> tuple[AlertRow, ...]:
        """The alerts this delivery carries: receipts are published per alert."""
        return (self.alert,)

    @property
    def fallback_key(self) -> str:
        """What a fallback delivery's idempotency key starts with: one fallback per alert and address."""
        return self.alert.alert_key


@dataclass(frozen=True)
class DigestJob(_Claimed):
    """A claimed delivery of a daily digest (no procedure: digests are never ordered against alerts)."""

    digest: Digest

    @property
    def subject_structure_id(self) -> str:
        """The structure the digest is for (a fallback delivery goes to another one)."""
        return self.digest.structure_id

    @property
    def alerts(self) -> tuple[AlertRow, ...]:
        """The alerts this delivery carries: receipts are published per alert."""
        return tuple(line.alert for line in self.digest.lines)

    @property
    def fallback_key(self) -> str:
        """What a fallback delivery's idempotency key starts with: one fallback per digest and address."""
        return f"digest:{self.digest.digest_id}"


DeliveryJob = AlertJob | DigestJob


def urgent(job: DeliveryJob) -> bool:
    """Quiet hours give way only to CRITICAL alerts (an expulsion within days); digests are never urgent."""
    return isinstance(job, AlertJob) and job.alert.urgency is Urgency.CRITICAL


def correlation(job: DeliveryJob) -> dict[str, str]:
    """Log context of a job: the correlation id of its alert's decision (a digest has several: none)."""
    return {"correlation_id": str(job.alert.correlation_id)} if isinstance(job, AlertJob) else {}
