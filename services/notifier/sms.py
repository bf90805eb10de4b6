"""SMS providers behind the ``Channel`` interface: OVHcloud, Brevo, and ``log`` for local runs.

The HTTP adapters share one error mapping (``http_outcome``): 429, 408 and 5xx are transient (the
provider asked us to slow down, or failed), so are 401/402/403 (credentials or credit: an operator can
fix them within the retry budget, and each failure is published meanwhile); any other 4xx is permanent
— ``INVALID_NUMBER`` when the provider says the recipient is wrong. Timeouts and connection errors are
transient. Base URLs come from the settings, so tests point the adapters at a local server that answers
like each provider.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from services.notifier.channels import OutgoingMessage, SendOutcome
from services.platform.logging import get_logger

__all__ = ["BrevoSmsChannel", "LogSmsChannel", "OvhSmsChannel", "http_outcome", "ovh_signature"]

log = get_logger(__name__)

_INVALID_NUMBER_HINTS = ("receiver", "recipient", "number", "phone", "mobile")


def ovh_signature(*, secret: str, consumer_key: str, method: str, url: str, body: str, timestamp: int) -> str:
    """``X-Ovh-Signature`` as OVHcloud documents it: ``"$1$" + sha1_hex(AS+CK+METHOD+URL+BODY+TSTAMP)``,
    the six parts joined by ``+``."""
    clear = "+".join([secret, consumer_key, method.upper(), url, body, str(timestamp)])
    return "$1$" + hashlib.sha1(clear.encode("utf-8")).hexdigest()  # noqa: S324 (the provider's scheme)


def http_outcome(provider: str, response: httpx.Response, *, invalid_number: bool = False) -> SendOutcome:
    """The outcome of a non-2xx provider answer (see the module docstring for the mapping)."""
    status = response.status_code
    message = _error_message(response)
    if status in (408, 429) or status >= 500:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return SendOutcome.failure(
            provider, f"HTTP_TRANSIENT:{status}", transient=True, message=message, retry_after_s=retry_after
        )
    if status in (401, 402, 403):
        kind = "PROVIDER_CREDITS" if status == 402 else "PROVIDER_AUTH"
        return SendOutcome.failure(provider, f"{kind}:{status}", transient=True, message=message)
    if invalid_number or any(hint in (message or "").lower() for hint in _INVALID_NUMBER_HINTS):
        return SendOutcome.failure(provider, "INVALID_NUMBER", transient=False, message=message)
    return SendOutcome.failure(provider, f"HTTP_PERMANENT:{status}", transient=False, message=message)


class _HttpSmsChannel:
    """What the HTTP adapters share: one pooled ``httpx.AsyncClient``, transport errors → transient."""

    provider = "http"

    def __init__(self, *, base_url: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        if message.sms is None:
            raise ValueError("an SMS delivery needs rendered SMS text")
        try:
            response = await self._post(message.recipient, message.sms)
        except httpx.TimeoutException:
            return SendOutcome.failure(self.provider, "TIMEOUT", transient=True)
        except httpx.TransportError as error:
            return SendOutcome.failure(self.provider, f"CONNECTION:{type(error).__name__}", transient=True)
        if response.is_success:
            return self._accepted(response)
        return http_outcome(self.provider, response)

    async def close(self) -> None:
        await self._client.aclose()

    async def _post(self, recipient: str, text: str) -> httpx.Response:
        raise NotImplementedError

    def _accepted(self, response: httpx.Response) -> SendOutcome:
        raise NotImplementedError


class OvhSmsChannel(_HttpSmsChannel):
    """OVHcloud SMS API: ``POST {endpoint}/sms/{serviceName}/jobs``, signed with the application secret and
    consumer key. The timestamp is the API's clock (``GET /auth/time``, offset measured once and reused)."""

    provider = "ovh"

    def __init__(
        self,
        *,
        endpoint: str,
        application_key: str,
        application_secret: str,
        consumer_key: str,
        service_name: str,
        sender: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(base_url=endpoint, timeout_s=timeout_s, transport=transport)
        if not (application_key and application_secret and consumer_key and service_name):
            raise ValueError("the OVH SMS provider needs an application key and secret, a consumer key and a service")
        self._application_key = application_key
        self._secret = application_secret
        self._consumer_key = consumer_key
        self._service_name = service_name
        self._sender = sender
        self._clock = clock
        self._offset: int | None = None

    async def _post(self, recipient: str, text: str) -> httpx.Response:
        url = f"{self._base_url}/sms/{self._service_name}/jobs"
        payload: dict[str, Any] = {
            "message": text,
            "receivers": [recipient],
            "charset": "UTF-8",
            "coding": "7bit",
            # Alerts are not marketing: no "STOP" mention, and they go out first.
            "noStopClause": True,
            "priority": "high",
        }
        payload |= {"sender": self._sender} if self._sender else {"senderForResponse": True}
        body = json.dumps(payload, separators=(",", ":"))
        timestamp = int(self._clock()) + await self._time_offset()
        headers = {
            "Content-Type": "application/json;charset=utf-8",
            "X-Ovh-Application": self._application_key,
            "X-Ovh-Consumer": self._consumer_key,
            "X-Ovh-Timestamp": str(timestamp),
            "X-Ovh-Signature": ovh_signature(
                secret=self._secret,
                consumer_key=self._consumer_key,
                method="POST",
                url=url,
                body=body,
                timestamp=timestamp,
            ),
        }
        return await self._client.post(url, content=body.encode("utf-8"), headers=headers)

    def _accepted(self, response: httpx.Response) -> SendOutcome:
        report = _json(response)
        ids = report.get("ids") or []
        # OVH answers 200 even when it refused the number: the report lists it under invalidReceivers.
        if report.get("invalidReceivers") or not ids:
            return http_outcome(self.provider, response, invalid_number=True)
        return SendOutcome(ok=True, provider=self.provider, provider_message_id=str(ids[0]))

    async def _time_offset(self) -> int:
        if self._offset is None:
            try:
                response = await self._client.get(f"{self._base_url}/auth/time")
                self._offset = int(response.json()) - int(self._clock())
            except (httpx.HTTPError, ValueError, TypeError) as error:
                # Signing with our own clock works while it is close enough; the offset is asked again next time.
                log.warning("ovh_time_unavailable", error=type(error).__name__)
                return 0
        return self._offset


class BrevoSmsChannel(_HttpSmsChannel):
    """Brevo transactional SMS: ``POST {endpoint}/transactionalSMS/send`` with the ``api-key`` header.

    (``/transactionalSMS/sms`` is the deprecated former endpoint.) Brevo wants the number without ``+``.
    """

    provider = "brevo"

    def __init__(
        self,
        *,
        endpoint: str,
        api_key: str,
        sender: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url=endpoint, timeout_s=timeout_s, transport=transport)
        if not api_key:
            raise ValueError("the Brevo SMS provider needs an API key")
        self._api_key = api_key
        self._sender = sender

    async def _post(self, recipient: str, text: str) -> httpx.Response:
        payload = {
            "sender": self._sender,
            "recipient": recipient.lstrip("+"),
            "content": text,
            "type": "transactional",
            "unicodeEnabled": False,
            "tag": "prevex-alert",
        }
        headers = {"api-key": self._api_key, "accept": "application/json"}
        return await self._client.post(f"{self._base_url}/transactionalSMS/send", json=payload, headers=headers)

    def _accepted(self, response: httpx.Response) -> SendOutcome:
        message_id = _json(response).get("messageId")
        return SendOutcome(
            ok=True, provider=self.provider, provider_message_id=None if message_id is None else str(message_id)
        )


class LogSmsChannel:
    """The ``log`` SMS provider for local runs: each SMS sent becomes a text file in ``folder``,
    ``<delivery_id>-<attempt>.txt``, never overwritten, so that an SMS sent twice (a re-send after a crash)
    shows as two files of the same delivery."""

    provider = "log"

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        if message.sms is None:
            raise ValueError("an SMS delivery needs rendered SMS text")
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{message.delivery_id}-{message.attempt}.txt"
        # "x": an attempt number is never reused (each claim counts one), so an existing file is a bug to see.
        with path.open("x", encoding="utf-8") as file:
            file.write(f"To: {message.recipient}\n\n{message.sms}\n")
        log.info("sms_logged", delivery_id=str(message.delivery_id), attempt=message.attempt)
        return SendOutcome(ok=True, provider=self.provider, provider_message_id=str(message.delivery_id))

    async def close(self) -> None:
        return None


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error_message(response: httpx.Response) -> str | None:
    body = _json(response)
    text = body.get("message") or body.get("error") or response.reason_phrase
    return str(text)[:300] if text else None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
