"""An in-process SMTP sink (aiosmtpd) that records every message it accepts; starts in about 5 ms."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from devtools.net import free_port

__all__ = ["ReceivedMail", "SmtpSink"]

Responder = Callable[[Envelope], str | None]
_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


@dataclass(frozen=True)
class ReceivedMail:
    """One message accepted by the sink: envelope sender and recipients, parsed message, raw bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that accepts and records every message.

    ``mail_dir``: when given (created if missing), each accepted message is also written there as
    ``<UTC timestamp>-<n>-<first recipient>.eml``. ``responder``: called with the envelope at the end of
    DATA; a returned string (e.g. ``"451 4.3.0 try again"``) is sent as the reply instead of accepting,
    and the message is not recorded; ``None`` accepts. The server runs in its own thread; all accessors
    are thread-safe. Use ``start()``/``stop()`` or ``with SmtpSink() as sink:``.
    """

    def __init__(
        self,
        mail_dir: Path | None = None,
        responder: Responder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self._host = host
        self._port = port if port is not None else free_port(host)
        self._mail_dir = mail_dir
        self._responder = responder
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    @property
    def messages(self) -> list[ReceivedMail]:
        """A copy of the messages accepted so far, in arrival order."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages recorded so far (files in ``mail_dir`` are kept)."""
        with self._lock:
            self._messages.clear()

    def start(self) -> None:
        """Start listening; returns once the server accepts connections. No-op if already started."""
        if self._controller is not None:
            return
        if self._mail_dir is not None:
            self._mail_dir.mkdir(parents=True, exist_ok=True)
        controller = Controller(_Handler(self), hostname=self._host, port=self._port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening (messages stay recorded). No-op if not started."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedMail]:  # noqa: ASYNC109
        """Wait until at least ``count`` messages were accepted and return them all (a copy).

        Raises ``TimeoutError`` stating how many arrived if fewer than ``count`` did within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if len(messages) >= count:
                return messages
            if time.monotonic() >= deadline:
                arrived = len(messages)
                raise TimeoutError(f"expected {count} message(s) within {timeout:g} s, {arrived} arrived")
            await asyncio.sleep(0.01)

    def _respond(self, envelope: Envelope) -> str | None:
        return None if self._responder is None else self._responder(envelope)

    def _record(self, envelope: Envelope) -> None:
        raw = envelope.original_content
        if raw is None:
            content = envelope.content or b""
            raw = content if isinstance(content, bytes) else content.encode()
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=email.message_from_bytes(raw, policy=email.policy.default),
            raw=raw,
        )
        with self._lock:
            self._messages.append(mail)
            number = len(self._messages)
        if self._mail_dir is not None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            rcpt = _UNSAFE.sub("_", mail.rcpt_tos[0] if mail.rcpt_tos else "unknown")[:100]
            (self._mail_dir / f"{stamp}-{number}-{rcpt}.eml").write_bytes(raw)


class _Handler:
    """aiosmtpd handler delegating to its sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        reply = self._sink._respond(envelope)
        if reply is not None:
            return reply
        self._sink._record(envelope)
        return "250 Message accepted for delivery"
