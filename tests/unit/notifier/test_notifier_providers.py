"""Provider error mapping (transient / permanent) and the OVHcloud request signature, without a network."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from services.notifier.channels import OutgoingMessage
from services.notifier.domain.alerts import RenderedEmail
from services.notifier.settings import NotifierSettings
from services.notifier.sms import LogSmsChannel, http_outcome, ovh_signature
from services.notifier.smtp import SmtpChannel


def test_ovh_signature_matches_the_documented_scheme() -> None:
    # Expected value computed with the shell recipe OVHcloud publishes:
    #   echo -n "$AS+$CK+$METHOD+$QUERY+$BODY+$TSTAMP" | openssl dgst -sha1   →  "$1$" + digest
    signature = ovh_signature(
        secret="as-x",
        consumer_key="ck-y",
        method="post",
        url="https://eu.api.ovh.com/1.0/sms/sms-ab12345-1/jobs",
        body='{"message":"x"}',
        timestamp=1366560945,
    )
    assert signature == "$1$bb681e87d921c7739c86a9c8f5879a0ce7c2739c"


@pytest.mark.parametrize(
    ("status", "body", "headers", "code", "transient", "retry_after"),
    [
        (500, {"message": "boom"}, {}, "HTTP_TRANSIENT:500", True, None),
        (503, {}, {"Retry-After": "7"}, "HTTP_TRANSIENT:503", True, 7.0),
        (429, {"message": "slow down"}, {"Retry-After": "3"}, "HTTP_TRANSIENT:429", True, 3.0),
        (408, {}, {}, "HTTP_TRANSIENT:408", True, None),
        (401, {"code": "unauthorized"}, {}, "PROVIDER_AUTH:401", True, None),
        (403, {"errorCode": "INVALID_SIGNATURE", "message": "Invalid signature"}, {}, "PROVIDER_AUTH:403", True, None),
        (402, {"code": "not_enough_credits"}, {}, "PROVIDER_CREDITS:402", True, None),
        (400, {"code": "invalid_parameter", "message": "Invalid phone number"}, {}, "INVALID_NUMBER", False, None),
        (400, {"message": "Invalid receivers"}, {}, "INVALID_NUMBER", False, None),
        (400, {"code": "invalid_parameter", "message": "sender is invalid"}, {}, "HTTP_PERMANENT:400", False, None),
        (404, {"message": "service not found"}, {}, "HTTP_PERMANENT:404", False, None),
    ],
)
def test_provider_errors_are_transient_or_permanent(
    *, status: int, body: dict[str, str], headers: dict[str, str], code: str, transient: bool, retry_after: float | None
) -> None:
    response = httpx.Response(status, json=body, headers=headers)
    outcome = http_outcome("brevo", response)
    assert (outcome.ok, outcome.error_code, outcome.transient, outcome.retry_after_s) == (
        False,
        code,
        transient,
        retry_after,
    )


def test_secrets_never_show_in_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_OVH_APPLICATION_SECRET", "very-secret-as")
    monkeypatch.setenv("NOTIFIER_OVH_CONSUMER_KEY", "very-secret-ck")
    monkeypatch.setenv("NOTIFIER_BREVO_API_KEY", "very-secret-brevo")
    monkeypatch.setenv("NOTIFIER_SMTP_PASSWORD", "very-secret-smtp")
    settings = NotifierSettings()
    assert "very-secret" not in repr(settings)
    assert settings.brevo_api_key.get_secret_value() == "very-secret-brevo"


def test_a_lease_shorter_than_a_send_is_refused() -> None:
    with pytest.raises(ValueError, match="send_lease_s must be longer than send_timeout_s"):
        NotifierSettings(send_lease_s=5, send_timeout_s=5)


@pytest.mark.parametrize("value", ["20h-8h", "20:00", "08:00-08:00"])
def test_malformed_quiet_hours_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="quiet hours"):
        NotifierSettings(sms_quiet_hours=value)


def test_quiet_hours_setting() -> None:
    assert NotifierSettings(sms_quiet_hours="").default_quiet_hours is None
    assert str(NotifierSettings().default_quiet_hours) == "(datetime.time(20, 0), datetime.time(8, 0))"


async def test_the_log_provider_keeps_one_file_per_attempt_so_a_resent_sms_shows(tmp_path: Path) -> None:
    channel, delivery_id = LogSmsChannel(tmp_path), uuid.uuid4()
    for attempt in (1, 2):
        outcome = await channel.send(
            OutgoingMessage(delivery_id, "+33612000001", sms=f"texte {attempt}", attempt=attempt)
        )
        assert outcome.ok
    assert _files(tmp_path) == {
        f"{delivery_id}-1.txt": "To: +33612000001\n\ntexte 1\n",
        f"{delivery_id}-2.txt": "To: +33612000001\n\ntexte 2\n",
    }
    with pytest.raises(FileExistsError):  # an attempt number is never reused: a file is never overwritten
        await channel.send(OutgoingMessage(delivery_id, "+33612000001", sms="texte 3", attempt=2))


def _files(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text("utf-8") for path in folder.glob("*.txt")}


def _email_headers(settings: NotifierSettings) -> list[str]:
    message = OutgoingMessage(uuid.UUID(int=7), "a@b.test", email=RenderedEmail("Sujet", "texte", "<p>html</p>"))
    head = SmtpChannel(settings).build(message).decode("ascii").split("\r\n\r\n")[0]
    return head.split("\r\n")


def test_an_email_is_marked_automated_and_answered_to_the_ccapex_secretariat() -> None:
    headers = _email_headers(NotifierSettings())
    assert "Auto-Submitted: auto-generated" in headers
    assert "Reply-To: ccapex90@pref.test" in headers
    assert f"Message-ID: <{uuid.UUID(int=7)}@prevex.test>" in headers


def test_reply_to_is_configurable_and_may_be_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_REPLY_TO", "secretariat@ccapex.test")
    assert "Reply-To: secretariat@ccapex.test" in _email_headers(NotifierSettings())
    monkeypatch.setenv("NOTIFIER_REPLY_TO", "")
    headers = _email_headers(NotifierSettings())
    assert not any(h.startswith("Reply-To:") for h in headers)
    assert "Auto-Submitted: auto-generated" in headers


@pytest.mark.parametrize("value", ["not-an-address", "a@b.test\r\nBcc: x@y.test", "a@b.test, c@d.test", "<a@b.test>"])
def test_a_malformed_reply_to_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # A header injection (a line break) or a list must never reach the message head.
    monkeypatch.setenv("NOTIFIER_REPLY_TO", value)
    with pytest.raises(ValidationError, match="reply_to"):
        NotifierSettings()
