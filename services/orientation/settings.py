"""Orientation settings: environment variables prefixed ``ORIENTATION_``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings

__all__ = ["OrientationSettings", "ReferentialImport"]


class ReferentialImport(StrEnum):
    """When the service imports ``referential_path`` at start.

    ``if-empty``: only into an empty database (first start); afterwards the database is the référentiel,
    edited through the admin API or ``cli referential import``, and a restart never undoes an edit.
    ``always``: at every start, a new version when the file differs from the latest one (the file in
    the deployment is the source of truth; edits made through the API are replaced at the next start).
    """

    IF_EMPTY = "if-empty"
    ALWAYS = "always"


class OrientationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ORIENTATION_", extra="ignore")

    referential_path: Path = Path("deploy/referential/seed-90.yaml")
    referential_import: ReferentialImport = Field(
        default=ReferentialImport.IF_EMPTY, description="When referential_path is imported at start"
    )
    max_structures: int = Field(default=3, ge=1, le=20, description="Cap K of structures beyond mandatory")
    http_enabled: bool = Field(default=True, description="Serve the admin API (référentiel, simulate)")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8082, ge=1, le=65535)
    admin_tokens_path: Path | None = Field(
        default=None,
        description="YAML file of admin API tokens (SHA-256 hashes and roles); none = every request is refused",
    )

    @field_validator("admin_tokens_path", mode="before")
    @classmethod
    def _empty_means_none(cls, value: Any) -> Any:
        # `ORIENTATION_ADMIN_TOKENS_PATH=` (as in .env.example) means "no file", not the current directory.
        return None if value == "" else value

    assignment_expiry_days: int = Field(
        default=30, ge=1, le=365, description="An OUVERTE assignment without answer expires after (DORA: 30)"
    )
    assignment_expiry_interval_s: float = Field(default=3600.0, gt=0, description="How often expiry runs")
    escalation_reminder_working_days: int = Field(
        default=5, ge=1, le=60, description="An OUVERTE assignment's structure is reminded after (working days)"
    )
    escalation_secretariat_working_days: int = Field(
        default=5, ge=1, le=60, description="Then the CCAPEX secretariat is alerted after (working days more)"
    )
    escalation_interval_s: float = Field(default=3600.0, gt=0, description="How often escalations are looked for")
    truce_reminder_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the sortie-de-trêve reminders due in March are looked for"
    )
