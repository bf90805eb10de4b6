"""``SmtpSink``: a real SMTP server receiving real mail from aiosmtplib."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.smtp import Envelope

from devtools import SmtpSink

pytestmark = pytest.mark.integration


def make_message(to: list[str], subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ccapex@departement.example"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content("Votre dossier a été orienté.")
    return message


async def test_records_messages_and_writes_eml(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mails"
    with SmtpSink(mail_dir=mail_dir) as sink:
        assert sink.host == "127.0.0.1"
        await aiosmtplib.send(make_message(["a@example.org"], "premier"), hostname=sink.host, port=sink.port)
        await aiosmtplib.send(
            make_message(["b@example.org", "c@example.org"], "second"), hostname=sink.host, port=sink.port
        )
        mails = await sink.wait_for(2, timeout=10)

    assert [mail.rcpt_tos for mail in mails] == [("a@example.org",), ("b@example.org", "c@example.org")]
    assert [mail.mail_from for mail in mails] == ["ccapex@departement.example"] * 2
    assert [mail.message["Subject"] for mail in mails] == ["premier", "second"]
    body = mails[0].message.get_body()
    assert body is not None
    assert body.get_content().strip() == "Votre dossier a été orienté."

    files = sorted(mail_dir.glob("*.eml"), key=lambda path: int(path.name.split("-")[1]))
    assert [path.name.split("-", 2)[2] for path in files] == ["a@example.org.eml", "b@example.org.eml"]
    assert [path.read_bytes() for path in files] == [mail.raw for mail in mails]
    parsed = email.message_from_bytes(files[1].read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "second"


async def test_responder_rejects_without_recording(tmp_path: Path) -> None:
    def responder(envelope: Envelope) -> str | None:
        return "451 4.3.0 try again" if "retry@example.org" in envelope.rcpt_tos else None

    mail_dir = tmp_path / "mails"
    with SmtpSink(mail_dir=mail_dir, responder=responder) as sink:
        with pytest.raises(aiosmtplib.SMTPResponseException) as excinfo:
            await aiosmtplib.send(make_message(["retry@example.org"], "refusé"), hostname=sink.host, port=sink.port)
        assert excinfo.value.code == 451
        assert sink.messages == []
        assert list(mail_dir.glob("*.eml")) == []

        await aiosmtplib.send(make_message(["ok@example.org"], "accepté"), hostname=sink.host, port=sink.port)
        (mail,) = await sink.wait_for(1, timeout=10)
    assert mail.rcpt_tos == ("ok@example.org",)
    assert len(list(mail_dir.glob("*.eml"))) == 1


async def test_wait_for_reports_how_many_arrived() -> None:
    with SmtpSink() as sink:
        await aiosmtplib.send(make_message(["a@example.org"], "seul"), hostname=sink.host, port=sink.port)
        with pytest.raises(TimeoutError, match=r"expected 2 message\(s\) within 0\.2 s, 1 arrived"):
            await sink.wait_for(2, timeout=0.2)
