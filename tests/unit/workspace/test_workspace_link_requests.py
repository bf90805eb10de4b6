"""An expired link's request for a new one: who may ask, and how often (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.assignment import AssignmentStatus
from services.workspace.domain.link_requests import LinkRequestVerdict, judge_link_request
from services.workspace.settings import WorkspaceSettings

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


def _judge(
    status: AssignmentStatus = AssignmentStatus.OUVERTE,
    *,
    closed: bool = False,
    last: datetime | None = None,
) -> LinkRequestVerdict:
    return judge_link_request(
        status=status, procedure_closed=closed, last_requested_at=last, now=NOW, interval=INTERVAL
    )


@pytest.mark.parametrize("status", [AssignmentStatus.OUVERTE, AssignmentStatus.ACCEPTEE])
def test_a_held_assignment_gets_a_new_link(status: AssignmentStatus) -> None:
    assert _judge(status) is LinkRequestVerdict.SENT


@pytest.mark.parametrize("status", [AssignmentStatus.REFUSEE, AssignmentStatus.EXPIREE, AssignmentStatus.CLOTUREE])
def test_an_assignment_the_structure_no_longer_holds_gets_none(status: AssignmentStatus) -> None:
    assert _judge(status) is LinkRequestVerdict.NOT_HELD
    # Told it no longer holds the file rather than asked to wait.
    assert _judge(status, last=NOW - timedelta(minutes=1)) is LinkRequestVerdict.NOT_HELD


def test_a_closed_procedure_gets_none_even_if_the_assignment_was_left_open() -> None:
    assert _judge(AssignmentStatus.ACCEPTEE, closed=True) is LinkRequestVerdict.NOT_HELD


def test_one_request_per_interval_and_assignment() -> None:
    assert _judge(last=NOW) is LinkRequestVerdict.TOO_SOON
    assert _judge(last=NOW - INTERVAL + timedelta(seconds=1)) is LinkRequestVerdict.TOO_SOON
    assert _judge(last=NOW - INTERVAL) is LinkRequestVerdict.SENT
    assert _judge(last=NOW - timedelta(days=2)) is LinkRequestVerdict.SENT


def test_the_interval_is_a_setting_in_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkspaceSettings(_env_file=None).link_request_interval == timedelta(minutes=15)
    monkeypatch.setenv("WORKSPACE_LINK_REQUEST_INTERVAL_MINUTES", "60")
    assert WorkspaceSettings().link_request_interval == timedelta(hours=1)
    monkeypatch.setenv("WORKSPACE_LINK_REQUEST_INTERVAL_MINUTES", "0")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        WorkspaceSettings()
