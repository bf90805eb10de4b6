"""The SMS adapters (OVHcloud, Brevo) over ``httpx.MockTransport``: what they send, how they sign or
authenticate, how each answer maps to an outcome, and the provider's message id they report.

One suite runs against every adapter where their contract is shared (the HTTP ones, and for acceptance the
in-memory ``log`` provider too); each provider's request shape and quirks have their own tests. The provider
emulator (devtools/sms_emulator.py) stays for the integration and end-to-end tests, over real sockets.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from structlog.testing import capture_logs

from services.notifier.channels import Channel, OutgoingMessage
from services.notifier.domain.alerts import RenderedEmail
from services.notifier.sms import BrevoSmsChannel, LogSmsChannel, OvhSmsChannel, ovh_signature

MOBILE = "+33612345678"
TEXT = "Expulsions 90: 90-2026-000001, Cdt de payer, Belfort. Urg. normale. https://prevex.example/d/x"
OVH_URL = "https://ovh.test/1.0"
OVH_SECRET = "as-secret"
BREVO_URL = "https://brevo.test/v3"
LOCAL_CLOCK = 1_700_000_000
OVH_CLOCK = LOCAL_CLOCK + 42  # the API's clock is 42 s ahead of ours
Reply = httpx.Response | type[httpx.TransportError]
C = TypeVar("C", bound=Channel)


@dataclass
class ProviderDouble:
    """A provider behind ``httpx.MockTransport``: answers each send with the next scripted reply (a response
    or a transport error to raise), the accepted answer once the script is spent; records every request."""

    accepted: Callable[[], httpx.Response]
    replies: list[Reply] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    time_answers: list[Reply] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/auth/time"):
            reply = self.time_answers.pop(0) if self.time_answers else httpx.Response(200, json=OVH_CLOCK)
        else:
            reply = self.replies.pop(0) if self.replies else self.accepted()
        if isinstance(reply, httpx.Response):
            return reply
        raise reply("scripted", request=request)

    @property
    def sends(self) -> list[httpx.Request]:
        return [r for r in self.requests if not r.url.path.endswith("/auth/time")]


def _ovh(double: ProviderDouble, *, sender: str = "Prevex90", application_secret: str = OVH_SECRET) -> OvhSmsChannel:
    return OvhSmsChannel(
        endpoint=OVH_URL,
        application_key="ak-1",
        application_secret=application_secret,
        consumer_key="ck-secret",
        service_name="sms-ab12345-1",
        sender=sender,
        timeout_s=5,
        transport=httpx.MockTransport(double.handle),
        clock=lambda: LOCAL_CLOCK,
    )


def _brevo(double: ProviderDouble, *, api_key: str = "brevo-key") -> BrevoSmsChannel:
    return BrevoSmsChannel(
        endpoint=BREVO_URL,
        api_key=api_key,
        sender="Prevex90",
        timeout_s=5,
        transport=httpx.MockTransport(double.handle),
    )


@dataclass(frozen=True)
class Provider:
    name: str
    build: Callable[[ProviderDouble], OvhSmsChannel | BrevoSmsChannel]
    accepted: Callable[[], httpx.Response]
    message_id: str


PROVIDERS = {
    "ovh": Provider(
        "ovh",
        _ovh,
        lambda: httpx.Response(200, json={"ids": [123456789], "invalidReceivers": [], "validReceivers": [MOBILE]}),
        "123456789",
    ),
    "brevo": Provider(
        "brevo", _brevo, lambda: httpx.Response(201, json={"messageId": 1511882900176220}), "1511882900176220"
    ),
}


Served = tuple[OvhSmsChannel | BrevoSmsChannel, ProviderDouble]
"""An HTTP adapter and the double behind it."""


@asynccontextmanager
async def _serving(
    build: Callable[[ProviderDouble], C], accepted: Callable[[], httpx.Response]
) -> AsyncIterator[tuple[C, ProviderDouble]]:
    """An adapter ``build`` makes over a fresh double answering ``accepted``; closed on the way out."""
    double = ProviderDouble(accepted)
    channel = build(double)
    try:
        yield channel, double
    finally:
        await channel.close()


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> Provider:
    return PROVIDERS[request.param]


@pytest.fixture
async def http(provider: Provider) -> AsyncIterator[Served]:
    async with _serving(provider.build, provider.accepted) as served:
        yield served


def _only(name: str) -> pytest.MarkDecorator:
    """Run a test on one provider's ``http`` fixture rather than on each."""
    return pytest.mark.parametrize("provider", [PROVIDERS[name]], ids=[name])


def _sms(attempt: int = 1) -> OutgoingMessage:
    return OutgoingMessage(uuid.UUID(int=5), MOBILE, sms=TEXT, attempt=attempt)


# --- the shared suite ------------------------------------------------------------------------------------


@pytest.fixture(params=["ovh", "brevo", "log"])
async def any_adapter(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Channel, str]]:
    """Every SMS adapter with the message id it reports for ``_sms()``: the HTTP ones and the in-memory one."""
    if request.param == "log":
        yield LogSmsChannel(tmp_path), str(uuid.UUID(int=5))
        return
    provider = PROVIDERS[request.param]
    async with _serving(provider.build, provider.accepted) as (channel, _):
        yield channel, provider.message_id


async def test_an_accepted_sms_reports_the_provider_and_its_message_id(any_adapter: tuple[Channel, str]) -> None:
    channel, expected_id = any_adapter
    outcome = await channel.send(_sms())
    assert (outcome.ok, outcome.provider, outcome.provider_message_id) == (True, channel.provider, expected_id)


async def test_an_email_is_not_an_sms(any_adapter: tuple[Channel, str]) -> None:
    channel, _ = any_adapter
    email = OutgoingMessage(uuid.uuid4(), "a@b.test", email=RenderedEmail("s", "t", "<p>h</p>"))
    with pytest.raises(ValueError, match="SMS text"):
        await channel.send(email)


@pytest.mark.parametrize(
    ("reply", "code", "transient", "retry_after"),
    [
        (httpx.Response(500, json={"message": "boom"}), "HTTP_TRANSIENT:500", True, None),
        (httpx.Response(503, headers={"Retry-After": "7"}), "HTTP_TRANSIENT:503", True, 7.0),
        (
            httpx.Response(429, json={"message": "slow down"}, headers={"Retry-After": "3"}),
            "HTTP_TRANSIENT:429",
            True,
            3.0,
        ),
        (httpx.Response(408), "HTTP_TRANSIENT:408", True, None),
        (httpx.Response(401, json={"code": "unauthorized"}), "PROVIDER_AUTH:401", True, None),
        (httpx.Response(403, json={"message": "Invalid signature"}), "PROVIDER_AUTH:403", True, None),
        (httpx.Response(402, json={"code": "not_enough_credits"}), "PROVIDER_CREDITS:402", True, None),
        (httpx.Response(400, json={"message": "Invalid phone number"}), "INVALID_NUMBER", False, None),
        (httpx.Response(400, json={"message": "sender is invalid"}), "HTTP_PERMANENT:400", False, None),
        (httpx.Response(404, json={"message": "service not found"}), "HTTP_PERMANENT:404", False, None),
        (httpx.ReadTimeout, "TIMEOUT", True, None),
        (httpx.ConnectTimeout, "TIMEOUT", True, None),
        (httpx.ConnectError, "CONNECTION:ConnectError", True, None),
        (httpx.RemoteProtocolError, "CONNECTION:RemoteProtocolError", True, None),
    ],
)
async def test_answers_and_transport_errors_map_to_transient_or_permanent_failures(
    http: Served,
    *,
    reply: Reply,
    code: str,
    transient: bool,
    retry_after: float | None,
) -> None:
    channel, double = http
    double.replies.append(reply)
    outcome = await channel.send(_sms())
    assert (outcome.ok, outcome.provider, outcome.error_code, outcome.transient, outcome.retry_after_s) == (
        False,
        channel.provider,
        code,
        transient,
        retry_after,
    )
    assert len(double.sends) == 1  # the adapter never retries by itself: the dispatcher schedules retries


async def test_a_failure_then_a_success_sends_again_over_the_same_client(http: Served, provider: Provider) -> None:
    channel, double = http
    double.replies.append(httpx.Response(502))
    assert not (await channel.send(_sms(1))).ok
    outcome = await channel.send(_sms(2))
    assert (outcome.ok, outcome.provider_message_id) == (True, provider.message_id)
    first, second = double.sends  # the same SMS again, nothing kept from the failed call
    assert json.loads(first.content) == json.loads(second.content)


async def test_no_log_line_carries_the_number_or_the_text(http: Served) -> None:
    channel, double = http
    double.time_answers.append(httpx.ConnectError)  # OVH logs that it signs with its own clock
    double.replies += [httpx.Response(400, json={"message": f"invalid receiver {MOBILE}"}), httpx.ReadTimeout]
    with capture_logs() as logs:
        for _ in range(3):
            await channel.send(_sms())
    flat = json.dumps(logs, default=str)
    assert MOBILE not in flat
    assert MOBILE.lstrip("+") not in flat
    assert "Belfort" not in flat


# --- OVHcloud ------------------------------------------------------------------------------------------------


@_only("ovh")
async def test_ovh_posts_a_signed_job_with_the_api_clock(http: Served) -> None:
    channel, double = http
    await channel.send(_sms())
    [send] = double.sends
    assert (send.method, str(send.url)) == ("POST", f"{OVH_URL}/sms/sms-ab12345-1/jobs")
    assert json.loads(send.content) == {
        "message": TEXT,
        "receivers": [MOBILE],
        "charset": "UTF-8",
        "coding": "7bit",
        "noStopClause": True,
        "priority": "high",
        "sender": "Prevex90",
    }
    headers = send.headers
    assert (headers["X-Ovh-Application"], headers["X-Ovh-Consumer"]) == ("ak-1", "ck-secret")
    assert headers["X-Ovh-Timestamp"] == str(OVH_CLOCK)
    expected = ovh_signature(
        secret=OVH_SECRET,
        consumer_key="ck-secret",
        method="POST",
        url=str(send.url),
        body=send.content.decode("utf-8"),
        timestamp=OVH_CLOCK,
    )
    assert headers["X-Ovh-Signature"] == expected
    # The application secret signs; it never travels.
    assert OVH_SECRET not in json.dumps(dict(send.headers))
    assert OVH_SECRET not in send.content.decode()


@_only("ovh")
async def test_ovh_asks_the_api_clock_once_and_again_only_after_it_failed(http: Served) -> None:
    channel, double = http
    double.time_answers.append(httpx.ConnectError)
    for _ in range(3):
        assert (await channel.send(_sms())).ok
    paths = [r.url.path.rsplit("/", 1)[-1] for r in double.requests]
    # Unreachable: signed with our own clock; asked again for the next send, then kept.
    assert paths == ["time", "jobs", "time", "jobs", "jobs"]
    stamps = [r.headers["X-Ovh-Timestamp"] for r in double.sends]
    assert stamps == [str(LOCAL_CLOCK), str(OVH_CLOCK), str(OVH_CLOCK)]


async def test_ovh_without_a_sender_asks_for_its_short_number() -> None:
    async with _serving(partial(_ovh, sender=""), PROVIDERS["ovh"].accepted) as (channel, double):
        await channel.send(_sms())
    body = json.loads(double.sends[0].content)
    assert body["senderForResponse"] is True
    assert "sender" not in body


@_only("ovh")
@pytest.mark.parametrize(
    "report",
    [{"ids": [], "invalidReceivers": [MOBILE], "validReceivers": []}, {"ids": []}, {}],
)
async def test_ovh_refusing_the_number_inside_a_200_is_a_permanent_invalid_number(
    http: Served, report: dict[str, object]
) -> None:
    channel, double = http
    double.replies.append(httpx.Response(200, json=report))
    outcome = await channel.send(_sms())
    assert (outcome.ok, outcome.error_code, outcome.transient) == (False, "INVALID_NUMBER", False)


def test_ovh_needs_its_credentials() -> None:
    with pytest.raises(ValueError, match="OVH"):
        _ovh(ProviderDouble(PROVIDERS["ovh"].accepted), application_secret="")


# --- Brevo ---------------------------------------------------------------------------------------------------


@_only("brevo")
async def test_brevo_posts_a_transactional_sms_with_its_key_and_the_number_without_plus(http: Served) -> None:
    channel, double = http
    await channel.send(_sms())
    [send] = double.sends
    assert (send.method, str(send.url)) == ("POST", f"{BREVO_URL}/transactionalSMS/send")
    assert send.headers["api-key"] == "brevo-key"
    assert send.headers["accept"] == "application/json"
    assert json.loads(send.content) == {
        "sender": "Prevex90",
        "recipient": MOBILE.lstrip("+"),
        "content": TEXT,
        "type": "transactional",
        "unicodeEnabled": False,
        "tag": "prevex-alert",
    }


@_only("brevo")
async def test_brevo_accepting_without_an_id_is_still_sent(http: Served) -> None:
    channel, double = http
    double.replies.append(httpx.Response(201, text="not json"))
    outcome = await channel.send(_sms())
    assert (outcome.ok, outcome.provider_message_id) == (True, None)


def test_brevo_needs_its_key() -> None:
    with pytest.raises(ValueError, match="Brevo"):
        _brevo(ProviderDouble(PROVIDERS["brevo"].accepted), api_key="")
