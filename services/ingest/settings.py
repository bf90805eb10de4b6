"""Ingest settings: environment variables prefixed ``INGEST_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings

__all__ = ["IngestSettings"]


class IngestSettings(ServiceSettings):
    """Ingest's settings; every field is read from ``INGEST_<FIELD>`` (docs/ingest.md lists them)."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    # Raw records are consumed in large batches and written in chunks, each chunk validated while the
    # previous chunk's transaction waits for PostgreSQL (services.platform.pipeline).
    kafka_max_batch_records: int = Field(default=2_000, ge=1, le=10_000)
    write_chunk_records: int = Field(default=500, ge=1, le=10_000, description="Inputs per ingest transaction")
    territory_departements: str = Field(default="90", description="Comma-separated départements served")
    emitters_path: Path = Path("deploy/emitters/emitters.yaml")
    raw_retention_days: int = Field(default=90, ge=1)
    max_payload_bytes: int = Field(default=256_000, ge=1_024, description="Largest single notification")
    # HTTP intake for emitters that cannot produce to Kafka (docs/ingest.md, "HTTP API").
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=0, le=65_535)
    http_max_body_bytes: int = Field(default=8_000_000, ge=1_024, description="Largest batch or CSV upload")
    http_batch_max_items: int = Field(default=500, ge=1, le=10_000)
    # Per-emitter token bucket over requests, in memory (each replica counts its own requests).
    http_rate_limit_per_s: float = Field(default=10.0, gt=0)
    http_rate_limit_burst: int = Field(default=50, ge=1)

    @property
    def departements(self) -> frozenset[str]:
        """The served départements as a set of codes."""
        return frozenset(code.strip() for code in self.territory_departements.split(",") if code.strip())
