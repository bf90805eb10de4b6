"""Ingest settings: environment variables prefixed ``INGEST_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings

__all__ = ["IngestSettings"]


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    territory_departements: str = Field(default="90", description="Comma-separated départements served")
    emitters_path: Path = Path("deploy/emitters/emitters.yaml")
    raw_retention_days: int = Field(default=90, ge=1)
    max_payload_bytes: int = Field(default=256_000, ge=1_024)

    @property
    def departements(self) -> frozenset[str]:
        """The served départements as a set of codes."""
        return frozenset(code.strip() for code in self.territory_departements.split(",") if code.strip())
