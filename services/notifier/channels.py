"""Delivery channels behind one interface: email through SMTP, SMS through a provider.

A channel never raises for a delivery problem: it answers with a ``SendOutcome`` that says whether
the error is transient (retry later) or permanent (fail now and fall back).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol

import aiosmtplib

from services.notifier.domain.alerts import RenderedEmail
from services.notifier.settings import NotifierSettings
from services.platform.logging import get_logger

__all__ = ["Channel", "LogSmsChannel", "OutgoingMessage", "SendOutcome", "SmtpChannel", "message_id"]

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: uuid.UUID
    recipient: str
    email: RenderedEmail | None = None
    sms: str | None = None


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    provider: str
    provider_message_id: str | None = None
    transient: bool = False
    error_code: str | None = None
    error_message: str | None = None


class Channel(Protocol):
    provider: str

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        """Hand ``message`` to the provider; report the outcome instead of raising."""


def message_id(delivery_id: uuid.UUID, domain: str) -> str:
    """The email ``Message-ID`` of a delivery: a re-sent delivery keeps its id, so clients can dedupe."""
    return f"<{delivery_id}@{domain}>"


class SmtpChannel:
    """Email through aiosmtplib: plain text + HTML alternative, STARTTLS / implicit TLS / none."""

    provider = "smtp"

    def __init__(self, settings: NotifierSettings) -> None:
        self._settings = settings
        self._domain = settings.smtp_from.rpartition("@")[2] or "prevex.invalid"

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        if message.email is None:
            raise ValueError("an email delivery needs rendered email content")
        email = self._build(message.delivery_id, message.recipient, message.email)
        settings = self._settings
        try:
            await aiosmtplib.send(
                email,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                use_tls=settings.smtp_tls == "tls",
                start_tls=settings.smtp_tls == "starttls",
                username=settings.smtp_username or None,
                password=settings.smtp_password.get_secret_value() or None,
                timeout=settings.smtp_timeout_s,
            )
        except aiosmtplib.SMTPResponseException as error:
            # RFC 5321: 4yz is a transient negative reply, 5yz a permanent one.
            return SendOutcome(
                ok=False,
                provider=self.provider,
                transient=error.code < 500,
                error_code=f"SMTP_{error.code}",
                error_message=error.message[:200],
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return SendOutcome(
                ok=False, provider=self.provider, transient=True, error_code=type(error).__name__, error_message=None
            )
        return SendOutcome(ok=True, provider=self.provider, provider_message_id=email["Message-ID"])

    def _build(self, delivery_id: uuid.UUID, recipient: str, content: RenderedEmail) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._settings.smtp_from
        email["To"] = recipient
        email["Subject"] = content.subject
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = message_id(delivery_id, self._domain)
        email.set_content(content.text)
        email.add_alternative(content.html, subtype="html")
        return email


class LogSmsChannel:
    """The ``log`` SMS provider for local runs: each SMS becomes a text file in ``folder``."""

    provider = "log"

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        if message.sms is None:
            raise ValueError("an SMS delivery needs rendered SMS text")
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{message.delivery_id}.txt"
        path.write_text(f"To: {message.recipient}\n\n{message.sms}\n", "utf-8")
        log.info("sms_logged", delivery_id=str(message.delivery_id))
        return SendOutcome(ok=True, provider=self.provider, provider_message_id=str(message.delivery_id))
