"""The services' clock: system, frozen or shifted, and the PREVEX_CLOCK settings that choose it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from services.ingest.settings import IngestSettings
from services.notifier.settings import NotifierSettings
from services.orientation.settings import OrientationSettings
from services.platform.clock import (
    SYSTEM_CLOCK,
    FrozenClock,
    ShiftedClock,
    SystemClock,
    announce_clock,
    build_clock,
    parse_instant,
)

PARIS_WINTER = timezone(timedelta(hours=1))
MARCH_1 = datetime(2026, 3, 1, 9, 0, tzinfo=PARIS_WINTER)


class _Hand:
    """A base clock the test moves by hand."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def now(self) -> datetime:
        return self.instant


@pytest.fixture(autouse=True)
def _no_clock_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREVEX_CLOCK", raising=False)
    monkeypatch.delenv("PREVEX_CLOCK_FROZEN", raising=False)


def test_the_system_clock_reads_an_aware_utc_instant() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC


def test_a_frozen_clock_reads_its_instant_in_utc_every_time() -> None:
    clock = FrozenClock(MARCH_1)
    assert clock.now() == clock.now() == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_a_shifted_clock_starts_at_its_instant_and_runs_with_its_base() -> None:
    base = _Hand(datetime(2026, 12, 2, 19, 0, tzinfo=UTC))
    clock = ShiftedClock(MARCH_1, base)
    assert clock.now() == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    base.instant += timedelta(days=1, minutes=30)
    assert clock.now() == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_a_naive_instant_makes_no_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FrozenClock(datetime(2026, 3, 1, 9, 0))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        ShiftedClock(datetime(2026, 3, 1, 9, 0))  # noqa: DTZ001


def test_build_clock_is_the_system_clock_unless_an_instant_is_given() -> None:
    assert build_clock(None, frozen=False) is SYSTEM_CLOCK
    assert isinstance(build_clock(MARCH_1, frozen=False), ShiftedClock)
    assert build_clock(MARCH_1, frozen=True) == FrozenClock(MARCH_1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-25T10:00:00+01:00", datetime(2026, 3, 25, 9, 0, tzinfo=UTC)),
        ("2026-03-25T09:00:00Z", datetime(2026, 3, 25, 9, 0, tzinfo=UTC)),
        (" 2026-03-25T10:00:00.5+01:00 ", datetime(2026, 3, 25, 9, 0, 0, 500_000, tzinfo=UTC)),
    ],
)
def test_parse_instant_reads_iso_8601_with_an_offset(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-03-25", "needs a UTC offset"),  # a day is not an instant
        ("2026-03-25T10:00:00", "needs a UTC offset"),  # local time: another instant on every machine
        ("1774429200", "must be an ISO 8601 date-time"),  # seconds since 1970, which pydantic would take
        ("25/03/2026 10:00", "must be an ISO 8601 date-time"),
        ("2026-02-30T10:00:00+01:00", "must be an ISO 8601 date-time"),
        ("tomorrow", "must be an ISO 8601 date-time"),
    ],
)
def test_parse_instant_refuses_anything_else_naming_the_variable(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_instant(text)
    assert "PREVEX_CLOCK" in str(error.value)


@pytest.mark.parametrize("settings_class", [IngestSettings, OrientationSettings, NotifierSettings])
def test_every_service_reads_the_one_unprefixed_variable(settings_class: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVEX_CLOCK", "2026-03-01T09:00:00+01:00")
    settings = settings_class(_env_file=None)
    assert settings.clock == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert settings.clock_frozen is False
    assert isinstance(settings.make_clock(), ShiftedClock)


def test_frozen_setting_freezes_the_clock_at_the_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVEX_CLOCK", "2026-03-01T09:00:00+01:00")
    monkeypatch.setenv("PREVEX_CLOCK_FROZEN", "true")
    clock = OrientationSettings(_env_file=None).make_clock()
    assert clock == FrozenClock(MARCH_1)


@pytest.mark.parametrize(("clock", "frozen"), [(None, None), ("", ""), ("  ", "false")])
def test_unset_or_empty_is_the_system_clock(
    clock: str | None, frozen: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("PREVEX_CLOCK", clock), ("PREVEX_CLOCK_FROZEN", frozen)):
        if value is not None:
            monkeypatch.setenv(name, value)
    settings = IngestSettings(_env_file=None)
    assert settings.clock is None
    assert settings.make_clock() is SYSTEM_CLOCK


def test_a_prefixed_variable_is_not_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # One clock for the deployment: a service cannot be put on another date than the others by accident.
    monkeypatch.setenv("ORIENTATION_CLOCK", "2026-03-01T09:00:00+01:00")
    assert OrientationSettings(_env_file=None).clock is None


@pytest.mark.parametrize(
    ("env", "field", "message"),
    [
        ({"PREVEX_CLOCK": "2026-03-01"}, "PREVEX_CLOCK", "needs a UTC offset"),
        ({"PREVEX_CLOCK": "1er mars"}, "PREVEX_CLOCK", "must be an ISO 8601 date-time"),
        ({"PREVEX_CLOCK_FROZEN": "true"}, "PREVEX_CLOCK_FROZEN", "needs PREVEX_CLOCK"),
        (
            {"PREVEX_CLOCK": "2026-03-01T09:00:00Z", "PREVEX_CLOCK_FROZEN": "sometimes"},
            "PREVEX_CLOCK_FROZEN",
            "valid boolean",
        ),
    ],
)
def test_a_bad_setting_stops_the_service_at_start_with_a_clear_error(
    env: dict[str, str], field: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_LINK_SECRETS", "k1:" + "s" * 40)  # so that only the clock can fail
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for settings_class in (IngestSettings, OrientationSettings, NotifierSettings):
        with pytest.raises(ValidationError) as error:
            settings_class(_env_file=None)
        [problem] = error.value.errors()
        assert problem["loc"] == (field,)
        assert message in problem["msg"]


def test_a_bad_instant_is_reported_once_even_with_frozen_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVEX_CLOCK", "yesterday")
    monkeypatch.setenv("PREVEX_CLOCK_FROZEN", "true")
    with pytest.raises(ValidationError) as error:
        IngestSettings(_env_file=None)
    assert [problem["loc"] for problem in error.value.errors()] == [("PREVEX_CLOCK",)]


def test_settings_in_code_need_an_aware_instant() -> None:
    assert IngestSettings(PREVEX_CLOCK=MARCH_1).clock == MARCH_1
    with pytest.raises(ValidationError, match="needs a UTC offset"):
        IngestSettings(PREVEX_CLOCK=datetime(2026, 3, 1, 9, 0))  # noqa: DTZ001


async def test_a_set_clock_is_announced_by_a_warning_at_start() -> None:
    runtime: Any = SimpleNamespace(
        name="orientation", settings=OrientationSettings(PREVEX_CLOCK=MARCH_1, PREVEX_CLOCK_FROZEN=True)
    )
    with capture_logs() as logs:
        await announce_clock(runtime)
    [line] = logs
    assert line["log_level"] == "warning"
    assert line["event"] == "clock_set"
    assert line["service"] == "orientation"
    assert line["clock_start"] == "2026-03-01T08:00:00+00:00"
    assert line["frozen"] is True


async def test_the_system_clock_is_not_announced() -> None:
    runtime: Any = SimpleNamespace(name="ingest", settings=IngestSettings(_env_file=None))
    with capture_logs() as logs:
        await announce_clock(runtime)
    assert logs == []
