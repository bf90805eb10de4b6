"""Delivery channels behind one interface: email through SMTP, SMS through a provider.

A channel never raises for a delivery problem: it answers with a ``SendOutcome`` that says whether
the error is transient (retry later) or permanent (fail now and fall back). It never logs a recipient's
address or phone number, nor a message body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from services.notifier.domain.alerts import RenderedEmail

__all__ = ["Channel", "OutgoingMessage", "SendOutcome", "message_id"]


@dataclass(frozen=True)
class OutgoingMessage:
    """What a channel hands to its provider: exactly one of ``email`` and ``sms`` is set. ``attempt`` is the
    delivery's attempt number (each claim counts one), so that a re-send after a crash can be told apart."""

    delivery_id: uuid.UUID
    recipient: str
    email: RenderedEmail | None = None
    sms: str | None = None
    attempt: int = 1


@dataclass(frozen=True)
class SendOutcome:
    """A provider's answer. ``error_code`` is a machine code (``SMTP_PERMANENT:550``, ``INVALID_NUMBER``,
    ``HTTP_TRANSIENT:503``, ``TIMEOUT``…); ``error_message`` the provider's diagnostic, if any (it may
    echo the recipient: receipts redact it, logs never carry it). ``retry_after_s``: the provider asked
    for that delay (HTTP ``Retry-After``)."""

    ok: bool
    provider: str
    provider_message_id: str | None = None
    transient: bool = False
    error_code: str | None = None
    error_message: str | None = None
    retry_after_s: float | None = None

    @classmethod
    def failure(
        cls,
        provider: str,
        code: str,
        *,
        transient: bool,
        message: str | None = None,
        retry_after_s: float | None = None,
    ) -> SendOutcome:
        return cls(
            ok=False,
            provider=provider,
            transient=transient,
            error_code=code,
            error_message=message,
            retry_after_s=retry_after_s,
        )


class Channel(Protocol):
    """One way of reaching contacts (``smtp``, ``ovh``, ``brevo``, ``log``)."""

    provider: str

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        """Hand ``message`` to the provider; report the outcome instead of raising."""

    async def close(self) -> None:
        """Release connections; the channel is not used afterwards."""


def message_id(delivery_id: uuid.UUID, domain: str) -> str:
    """The email ``Message-ID`` of a delivery: a re-sent delivery keeps its id, so clients can dedupe."""
    return f"<{delivery_id}@{domain}>"
