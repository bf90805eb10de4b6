"""The workspace refuses to start without link secrets; its settings read WORKSPACE_ variables."""

from __future__ import annotations

import pytest

from services.workspace.bootstrap import build
from services.workspace.settings import WorkspaceSettings


def test_without_link_secrets_the_workspace_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKSPACE_LINK_SECRETS", raising=False)
    with pytest.raises(ValueError, match="no link secret"):
        build(WorkspaceSettings(_env_file=None))
    with pytest.raises(ValueError, match="at least 32"):
        build(WorkspaceSettings(link_secrets="too-short"))


def test_settings_come_from_the_workspace_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_LINK_SECRETS", "new-secret-0123456789-0123456789, old-secret-0123456789-0123456789")
    monkeypatch.setenv("WORKSPACE_SESSION_IDLE_MINUTES", "15")
    monkeypatch.setenv("WORKSPACE_COOKIE_SECURE", "false")
    settings = WorkspaceSettings()
    assert len(settings.link_keys().keys) == 2
    assert settings.session_idle.total_seconds() == 15 * 60
    assert not settings.cookie_secure
    assert "new-secret" not in repr(settings)
    assert build(settings).name == "workspace"
