"""The channels against real servers: aiosmtpd for SMTP, the provider emulator for OVHcloud and Brevo."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devtools import SmtpSink, free_port
from devtools.sms_emulator import Reply, SmsProviderEmulator, SmtpReplies
from services.notifier.channels import OutgoingMessage
from services.notifier.domain.alerts import RenderedEmail
from services.notifier.settings import NotifierSettings
from services.notifier.sms import BrevoSmsChannel, OvhSmsChannel
from services.notifier.smtp import SmtpChannel

pytestmark = pytest.mark.integration

MOBILE = "+33611223344"
EMAIL = RenderedEmail("[Prévention expulsions 90] Dossier 90-2026-000001", "texte é\n", "<p>html é</p>\n")


@pytest.fixture
def emulator() -> Iterator[SmsProviderEmulator]:
    with SmsProviderEmulator(ovh_clock_skew_s=3600) as running:
        yield running


def _ovh(emulator: SmsProviderEmulator, *, secret: str | None = None, timeout_s: float = 0.5) -> OvhSmsChannel:
    return OvhSmsChannel(
        endpoint=emulator.ovh_endpoint,
        application_key=emulator.ovh_application_key,
        application_secret=secret or emulator.ovh_application_secret,
        consumer_key=emulator.ovh_consumer_key,
        service_name=emulator.ovh_service_name,
        sender="PREVEX90",
        timeout_s=timeout_s,
    )


def _brevo(emulator: SmsProviderEmulator, *, api_key: str | None = None) -> BrevoSmsChannel:
    return BrevoSmsChannel(
        endpoint=emulator.brevo_endpoint, api_key=api_key or emulator.brevo_api_key, sender="Prevex90", timeout_s=0.5
    )


def _sms(text: str = "Expulsions 90: Cdt de payer, Belfort.") -> OutgoingMessage:
    return OutgoingMessage(uuid.uuid4(), MOBILE, sms=text)


async def test_ovh_request_is_signed_with_the_api_clock_and_accepted(emulator: SmsProviderEmulator) -> None:
    # The emulator's clock is an hour off ours: a signature made with our own clock would be refused.
    channel = _ovh(emulator)
    try:
        outcome = await channel.send(_sms())
    finally:
        await channel.close()
    assert outcome.ok, outcome
    [received] = emulator.received
    assert (received.provider, received.recipient, received.text) == (
        "ovh",
        MOBILE,
        "Expulsions 90: Cdt de payer, Belfort.",
    )
    assert outcome.provider_message_id == received.message_id


@pytest.mark.parametrize(
    ("reply", "code", "transient"),
    [
        (Reply.server_error(500), "HTTP_TRANSIENT:500", True),
        (Reply.rate_limited(2), "HTTP_TRANSIENT:429", True),
        (Reply.hang(2.0), "TIMEOUT", True),
        (Reply.invalid(), "INVALID_NUMBER", False),
        (Reply(400, {"message": "Invalid receivers"}), "INVALID_NUMBER", False),
    ],
)
async def test_ovh_errors_map_to_transient_or_permanent(
    emulator: SmsProviderEmulator, reply: Reply, code: str, transient: bool
) -> None:
    emulator.script(MOBILE, reply)
    channel = _ovh(emulator)
    try:
        outcome = await channel.send(_sms())
    finally:
        await channel.close()
    assert (outcome.ok, outcome.error_code, outcome.transient) == (False, code, transient)
    assert emulator.received == []
    if reply.status == 429:
        assert outcome.retry_after_s == 2.0


async def test_a_bad_ovh_secret_is_refused_by_the_signature_check(emulator: SmsProviderEmulator) -> None:
    channel = _ovh(emulator, secret="wrong-secret")
    try:
        outcome = await channel.send(_sms())
    finally:
        await channel.close()
    assert (outcome.error_code, outcome.transient) == ("PROVIDER_AUTH:403", True)


async def test_brevo_send_invalid_number_and_bad_key(emulator: SmsProviderEmulator) -> None:
    channel, wrong_key = _brevo(emulator), _brevo(emulator, api_key="nope")
    try:
        accepted = await channel.send(_sms())
        emulator.script(MOBILE, Reply.invalid())
        invalid = await channel.send(_sms())
        refused = await wrong_key.send(_sms())
    finally:
        await channel.close()
        await wrong_key.close()
    assert accepted.ok
    assert accepted.provider_message_id == emulator.received[0].message_id
    assert emulator.received[0].recipient == MOBILE
    assert (invalid.error_code, invalid.transient) == ("INVALID_NUMBER", False)
    assert (refused.error_code, refused.transient) == ("PROVIDER_AUTH:401", True)


async def test_an_unreachable_provider_is_transient() -> None:
    channel = BrevoSmsChannel(
        endpoint=f"http://127.0.0.1:{free_port('127.0.0.1')}/v3", api_key="k", sender="s", timeout_s=1
    )
    try:
        outcome = await channel.send(_sms())
    finally:
        await channel.close()
    assert outcome.transient
    assert outcome.error_code is not None
    assert outcome.error_code.startswith("CONNECTION:")


def _smtp(sink: SmtpSink) -> SmtpChannel:
    return SmtpChannel(NotifierSettings(smtp_host=sink.host, smtp_port=sink.port, smtp_timeout_s=2, smtp_pool_size=2))


async def test_smtp_email_has_both_parts_and_a_message_id_derived_from_the_delivery() -> None:
    delivery_id = uuid.uuid4()
    with SmtpSink() as sink:
        channel = _smtp(sink)
        try:
            outcome = await channel.send(OutgoingMessage(delivery_id, "fsl@cd90.test", email=EMAIL))
        finally:
            await channel.close()
        [mail] = sink.messages
    assert outcome.ok
    assert outcome.provider_message_id == f"<{delivery_id}@prevex.test>" == mail.message["Message-ID"]
    assert mail.rcpt_tos == ("fsl@cd90.test",)
    assert mail.message["Subject"] == EMAIL.subject
    assert [part.get_content_type() for part in mail.message.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]


async def test_smtp_replies_map_to_transient_or_permanent_and_the_connection_is_kept() -> None:
    replies = SmtpReplies()
    replies.script("a@x.test", "451 4.3.0 Try again later", "550 5.1.1 <a@x.test>: Recipient unknown")
    with SmtpSink(responder=replies) as sink:
        channel = _smtp(sink)
        try:
            outcomes = [await channel.send(OutgoingMessage(uuid.uuid4(), "a@x.test", email=EMAIL)) for _ in range(3)]
        finally:
            await channel.close()
        assert len(sink.messages) == 1
    assert [(o.ok, o.error_code, o.transient) for o in outcomes] == [
        (False, "SMTP_TRANSIENT:451", True),
        (False, "SMTP_PERMANENT:550", False),
        (True, None, False),
    ]


async def test_a_pooled_connection_the_server_dropped_is_replaced_before_sending() -> None:
    port = free_port("127.0.0.1")
    with SmtpSink(port=port) as first:
        channel = _smtp(first)
        assert (await channel.send(OutgoingMessage(uuid.uuid4(), "a@x.test", email=EMAIL))).ok
    # The server restarted: the idle pooled connection is dead, the next message must still go, once.
    with SmtpSink(port=port) as second:
        try:
            outcome = await channel.send(OutgoingMessage(uuid.uuid4(), "a@x.test", email=EMAIL))
        finally:
            await channel.close()
        assert outcome.ok, outcome
        assert len(second.messages) == 1


async def test_no_smtp_server_is_a_transient_connection_error() -> None:
    settings = NotifierSettings(smtp_host="127.0.0.1", smtp_port=free_port("127.0.0.1"), smtp_timeout_s=1)
    channel = SmtpChannel(settings)
    outcome = await channel.send(OutgoingMessage(uuid.uuid4(), "a@x.test", email=EMAIL))
    await channel.close()
    assert (outcome.ok, outcome.transient, outcome.error_code) == (False, True, "CONNECTION:connect")
