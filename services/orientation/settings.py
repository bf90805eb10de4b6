"""Orientation settings: environment variables prefixed ``ORIENTATION_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings

__all__ = ["OrientationSettings"]


class OrientationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ORIENTATION_", extra="ignore")

    referential_path: Path = Path("deploy/referential/seed-90.yaml")
    max_structures: int = Field(default=3, ge=1, le=20, description="Cap K of structures beyond mandatory")
