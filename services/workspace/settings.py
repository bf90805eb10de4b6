"""Workspace settings: environment variables prefixed ``WORKSPACE_``.

``link_secrets`` is a secret (``SecretStr``: environment only, never in ``repr`` or logs, no default).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.platform.links import LinkKeys
from services.platform.settings import ServiceSettings

__all__ = ["WorkspaceSettings"]


class WorkspaceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WORKSPACE_", extra="ignore")

    link_secrets: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC secrets of the alerts' links, comma-separated; every one verifies (key rotation)",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8083, ge=1, le=65_535)
    # The partners' port faces the internet: health, metrics and the events page are served apart, here.
    ops_http_host: str = Field(default="127.0.0.1", description="Address of /health/*, /metrics and /docs/events")
    ops_http_port: int = Field(default=8085, ge=0, le=65_535, description="Their port, internal only")
    # Off only for plain http on the loopback (make run, tests): browsers drop Secure cookies over http.
    cookie_secure: bool = True
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60, description="A silent session ends after")
    session_absolute_hours: int = Field(default=12, ge=1, le=7 * 24, description="Any session ends after")
    retention_days: int = Field(
        default=365, ge=0, le=3650, description="Personal data of a closed procedure is purged after"
    )
    retention_interval_s: float = Field(default=3600.0, gt=0, description="How often the purge runs")
    desk_tokens_path: Path | None = Field(
        default=None,
        description="The CCAPEX secretariat's sign-in tokens (orientation's tokens file format); none: no desk",
    )
    link_request_interval_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="An expired link asks for a new one at most once per assignment within this many minutes",
    )
    orientation_url: str | None = Field(
        default=None,
        description="Orientation's admin API on the internal network, for the desk's référentiel forms",
    )
    orientation_token_path: Path | None = Field(
        default=None,
        description="A file holding the workspace's own ccapex-admin token for that API (the token alone)",
    )
    desk_overdue_working_days: int = Field(
        default=5, ge=1, le=60, description="The desk lists an assignment still OUVERTE after this many working days"
    )

    @field_validator("desk_tokens_path", "orientation_url", "orientation_token_path", mode="before")
    @classmethod
    def _empty_means_none(cls, value: Any) -> Any:
        # `WORKSPACE_ORIENTATION_URL=` (as in .env.example) means "not configured", not "" nor the current directory.
        return None if value == "" else value

    def orientation_token(self) -> str | None:
        """The admin token read from ``orientation_token_path`` (``None`` without one); an empty file or a
        URL without a token fails at start: a desk half configured would only fail at the first save."""
        if self.orientation_url is None and self.orientation_token_path is None:
            return None
        if self.orientation_url is None or self.orientation_token_path is None:
            raise ValueError("WORKSPACE_ORIENTATION_URL and WORKSPACE_ORIENTATION_TOKEN_PATH go together")
        token = self.orientation_token_path.read_text("utf-8").strip()
        if not token:
            raise ValueError(f"{self.orientation_token_path}: no token in the file")
        return token

    def link_keys(self) -> LinkKeys:
        """The verifying keys; raises ``ValueError`` when none is configured (the service does not start)."""
        return LinkKeys.parse(self.link_secrets.get_secret_value())

    @property
    def session_idle(self) -> timedelta:
        return timedelta(minutes=self.session_idle_minutes)

    @property
    def session_absolute(self) -> timedelta:
        return timedelta(hours=self.session_absolute_hours)

    @property
    def link_request_interval(self) -> timedelta:
        return timedelta(minutes=self.link_request_interval_minutes)

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)
