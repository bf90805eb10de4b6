"""prevex-ops without a database: the journey's rendering and redaction, dead-letter references and headers,
usage and settings errors (exit 2 with a message naming what is wrong)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord

from services.ops import run
from services.ops.dead_letters import DeadLetterRef, kafka_headers
from services.ops.settings import OpsSettings, SettingsMissingError
from services.ops.timeline import Journey, Step, mask_figures, render_json, render_text
from services.platform.kafka import header_entries

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
JOURNEY = Journey(
    "CP-2026-0412",
    [{"short_ref": "90-2026-000001"}],
    [
        Step(T0 + timedelta(seconds=2), "notifier", "delivery.sent", {"channel": "EMAIL"}, {"recipient": "a@b.test"}),
        Step(T0, "ingest", "act.accepted", {"stage": "COMMANDEMENT_PAYER"}, {"household": {"name": "Durand"}}),
        Step(
            T0 + timedelta(seconds=1),
            "orientation",
            "assignment.opened",
            {"explanation": mask_figures("debt 2 400 ≤ 6000 ✓\ncommune 90010 ✓")},
            {"explanation": "debt 2 400 ≤ 6000 ✓"},
        ),
    ],
)


def test_figures_are_masked_in_explanations() -> None:
    assert mask_figures("debt 2 400.50 ≤ 6000 ✓, 4 months") == "debt • ≤ • ✓, • months"


def test_text_is_in_time_order_and_without_personal_data() -> None:
    out = io.StringIO()
    render_text(JOURNEY, out, personal=False)
    text = out.getvalue()
    assert text.index("act.accepted") < text.index("assignment.opened") < text.index("delivery.sent")
    assert "Durand" not in text
    assert "a@b.test" not in text
    assert "2 400" not in text
    assert "      debt • ≤ • ✓" in text  # a multi-line fact, indented under its step


def test_json_carries_personal_data_only_when_asked() -> None:
    for personal in (False, True):
        out = io.StringIO()
        render_json(JOURNEY, out, personal=personal)
        document = json.loads(out.getvalue())
        assert [s["kind"] for s in document["steps"]] == ["act.accepted", "assignment.opened", "delivery.sent"]
        assert ("Durand" in out.getvalue()) is personal
        assert document["personal_data"] is personal


def test_dead_letter_references() -> None:
    assert DeadLetterRef.parse("orientation:12") == DeadLetterRef("orientation", 12)
    assert str(DeadLetterRef("notifier", 3)) == "notifier:3"
    for bad in ("orientation", "orientation:", ":12", "orientation:x", "orientation:-1"):
        with pytest.raises(ValueError, match="SERVICE:ID"):
            DeadLetterRef.parse(bad)


def test_stored_headers_come_back_as_received() -> None:
    headers = [("event_id", b"e1"), ("binary", b"\xff\x00\xfe"), ("empty", b"")]
    record = ConsumerRecord("t", 0, 0, 0, 0, None, b"v", None, 0, 0, headers)
    stored = json.loads(json.dumps(header_entries(record)))  # through jsonb
    assert kafka_headers(stored) == headers
    assert kafka_headers(None) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace"], "the following arguments are required: query"),
        (["dead-letters", "replay", "nonsense"], "not a dead letter reference"),
        (["dead-letters", "show", "billing:3"], "unknown service 'billing'"),
        (["dead-letters", "list", "--limit", "many"], "invalid int value"),
        (["frobnicate"], "invalid choice"),
        (["status-refusals", "show", "not-an-id"], "invalid UUID value"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(argv: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.ops", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


async def test_a_missing_database_setting_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(["trace", "90-2026-000001"], settings=OpsSettings(database_url=None)) == 2
    assert "PREVEX_OPS_DATABASE_URL" in capsys.readouterr().err


def test_per_service_urls_win_over_the_shared_one() -> None:
    settings = OpsSettings(database_url="postgresql://shared/db", notifier_database_url="postgresql://own/db")
    assert settings.url_of("notifier") == "postgresql://own/db"
    assert settings.url_of("ingest") == "postgresql://shared/db"
    with pytest.raises(SettingsMissingError, match="PREVEX_OPS_AUDIT_DATABASE_URL"):
        OpsSettings(database_url=None, ingest_database_url="postgresql://x/y").audit_url()


async def test_a_database_that_does_not_answer_exits_4_naming_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on the loopback: nothing listens, the connection is refused at once.
    settings = OpsSettings(database_url="postgresql://postgres@127.0.0.1:1/prevex")
    assert await run(["queues"], settings=settings) == 4
    assert "cannot reach a database or the broker: ConnectionRefusedError" in capsys.readouterr().err
