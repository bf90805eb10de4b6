"""Delivery receipts the notifier emits for each alert sent to a partner contact (docs/domain.md §5.5).

An alert says "a file needs you" plus a reference (docs/domain.md §8.3); its receipts carry even less: ids,
channel, provider and outcome. They never carry the recipient's e-mail address or phone number (the
``contact_id`` points to the référentiel), the message body, or anything about the household.

Three outcomes, one topic each:

- ``notification.sent``: the provider accepted the message;
- ``notification.failed``: one attempt failed; ``will_retry`` says whether another attempt is scheduled;
- ``notification.undeliverable``: the notifier gave up (retries exhausted or permanent error) and says
  which fallback recipient, if any, it alerted instead; or the assigned structure had no deliverable
  contact at all (``cause`` ``NO_DELIVERABLE_CONTACT``: there was no delivery, hence no delivery id,
  contact, channel, provider or attempt).
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BeforeValidator, Field, model_validator

from schemas.common import Contract
from schemas.envelope import Envelope
from schemas.referential import RefId

__all__ = [
    "Channel",
    "DeliveryError",
    "DeliveryFailure",
    "DeliveryPayload",
    "Fallback",
    "FallbackKind",
    "NotificationFailed",
    "NotificationFailedEvent",
    "NotificationSent",
    "NotificationSentEvent",
    "NotificationUndeliverable",
    "NotificationUndeliverableEvent",
    "UndeliverableCause",
    "redact_contact_details",
]

MAX_DIAGNOSTIC_LENGTH = 500

# Provider errors often echo the recipient ("550 5.1.1 <jean@example.fr>: Recipient address rejected"),
# so contact details are masked before such text enters a receipt.
# The local part may hold any RFC 5322 atext character (apostrophes included); the domain may not.
_EMAIL = re.compile(r"[^\s@<>()\[\]\",;:]+@[^\s@<>()\[\]\"',;:]+")
_PHONE = re.compile(r"\+\d(?:[ .-]?\d){7,14}\b|\b0\d(?:[ .-]?\d{2}){4}\b")


def redact_contact_details(text: str) -> str:
    """Mask e-mail addresses and phone numbers (E.164 or French national format) in ``text``."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


def _diagnostic(value: object) -> object:
    # Runs before the length check: masking can lengthen the text, and a receipt that fails validation
    # on the consumer side (or is refused at construction for a long provider reply) would be lost.
    # Non-strings are passed through for the strict type check to refuse.
    if not isinstance(value, str):
        return value
    text = redact_contact_details(value)
    if len(text) > MAX_DIAGNOSTIC_LENGTH:
        text = text[: MAX_DIAGNOSTIC_LENGTH - 1] + "…"
    return text


class Channel(StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"


class FallbackKind(StrEnum):
    """Who was alerted instead of an undeliverable contact (docs/domain.md §5.5, F3), in order of preference."""

    GENERIC_CONTACT = "GENERIC_CONTACT"
    DEFAULT_REFERENT = "DEFAULT_REFERENT"
    NONE = "NONE"


class UndeliverableCause(StrEnum):
    """Why the notifier gave up on reaching a structure through its own contacts."""

    DELIVERY_FAILED = "DELIVERY_FAILED"
    """A delivery to a contact failed for good: a permanent error, or transient ones until the budget ran out."""
    NO_DELIVERABLE_CONTACT = "NO_DELIVERABLE_CONTACT"
    """The structure has no contact with an enabled channel, or the référentiel never named it."""


class DeliveryError(Contract):
    """Why an attempt failed.

    ``code`` is a machine code without spaces (``SMTP_PERMANENT:550``, ``TIMEOUT``, ``INVALID_NUMBER``).
    ``message`` is the provider's diagnostic. When the receipt is built, e-mail addresses and phone numbers
    in it are replaced by ``[email]`` / ``[phone]`` and it is cut to 500 characters, so a receipt does not
    leak the recipient and a long provider reply does not make the receipt invalid.
    """

    code: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=64)
    message: Annotated[str, BeforeValidator(_diagnostic), Field(min_length=1, max_length=MAX_DIAGNOSTIC_LENGTH)]


class Fallback(Contract):
    """The fallback recipient alerted for an undeliverable delivery.

    ``structure_id`` is the structure whose contact was alerted (the assignee itself for
    ``GENERIC_CONTACT``, the default referent for ``DEFAULT_REFERENT``); it is absent exactly when
    ``kind`` is ``NONE``.
    """

    kind: FallbackKind
    structure_id: RefId | None = None

    @model_validator(mode="after")
    def _structure_iff_fallback(self) -> Self:
        if (self.kind is FallbackKind.NONE) != (self.structure_id is None):
            raise ValueError("structure_id is required for a fallback recipient and forbidden for kind NONE")
        return self


class DeliveryPayload(Contract):
    """Fields every delivery receipt shares.

    ``delivery_id`` is the notifier's idempotency key for one message to one contact; every attempt and
    every receipt of that message repeats it. ``assignment_id`` is absent for messages that are not about
    one assignment (a daily "stage update" digest). ``provider`` names the adapter (``smtp``, ``ovh``,
    ``brevo``, ``log``); ``provider_message_id`` is the provider's id, once it gave one.
    """

    delivery_id: uuid.UUID
    assignment_id: uuid.UUID | None = None
    procedure_id: uuid.UUID
    procedure_short_ref: str = Field(min_length=1, max_length=32)
    structure_id: RefId
    contact_id: RefId
    channel: Channel
    provider: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    attempt_count: int = Field(ge=1)
    provider_message_id: str | None = Field(default=None, min_length=1, max_length=256)


class DeliveryFailure(DeliveryPayload):
    """A receipt about a failure: the error of the latest attempt is required."""

    error: DeliveryError


class NotificationSent(DeliveryPayload):
    """Payload of ``notification.sent``: the provider accepted the message after ``attempt_count`` tries.

    Accepted by the provider, not read by the recipient: no read receipts are tracked.
    """


class NotificationFailed(DeliveryFailure):
    """Payload of ``notification.failed``: one attempt failed.

    ``next_attempt_at`` is given exactly when ``will_retry`` is true. A failure without retry is followed
    by a ``notification.undeliverable`` receipt for the same ``delivery_id``.
    """

    will_retry: bool
    next_attempt_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _next_attempt_iff_retry(self) -> Self:
        if self.will_retry != (self.next_attempt_at is not None):
            raise ValueError("next_attempt_at must be given when will_retry is true, and only then")
        return self


class NotificationUndeliverable(DeliveryFailure):
    """Payload of ``notification.undeliverable``: the notifier gave up on this contact, or on this structure.

    ``error`` is the last attempt's error; ``fallback`` says who was alerted instead (docs/domain.md §5.5, F3).
    With ``cause`` ``DELIVERY_FAILED`` (the default) every delivery field is given as in the other receipts.
    With ``NO_DELIVERABLE_CONTACT`` no message was attempted: ``delivery_id``, ``contact_id``, ``channel``
    and ``provider`` are null and ``attempt_count`` is 0; ``structure_id`` is the unreachable structure.
    """

    cause: UndeliverableCause = UndeliverableCause.DELIVERY_FAILED
    delivery_id: uuid.UUID | None  # type: ignore[assignment]
    contact_id: RefId | None  # type: ignore[assignment]
    channel: Channel | None  # type: ignore[assignment]
    provider: str | None = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")  # type: ignore[assignment]
    attempt_count: int = Field(ge=0)
    fallback: Fallback

    @model_validator(mode="after")
    def _delivery_fields_match_cause(self) -> Self:
        delivery = (self.delivery_id, self.contact_id, self.channel, self.provider)
        if self.cause is UndeliverableCause.DELIVERY_FAILED:
            if any(value is None for value in delivery) or self.attempt_count < 1:
                raise ValueError("a failed delivery names its delivery, contact, channel, provider and attempts")
        elif any(value is not None for value in delivery) or self.attempt_count != 0:
            raise ValueError(
                "without a deliverable contact there is no delivery, contact, channel, provider or attempt"
            )
        return self


class NotificationSentEvent(Envelope):
    """A message the provider accepted."""

    event_type: Literal["notification.sent"] = "notification.sent"
    payload: NotificationSent


class NotificationFailedEvent(Envelope):
    """One failed delivery attempt, retried or not."""

    event_type: Literal["notification.failed"] = "notification.failed"
    payload: NotificationFailed


class NotificationUndeliverableEvent(Envelope):
    """A delivery abandoned after retries or a permanent error, with the fallback used."""

    event_type: Literal["notification.undeliverable"] = "notification.undeliverable"
    payload: NotificationUndeliverable
