"""Settings every service shares; each service subclasses with its own ``env_prefix``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Connection and Kafka-client settings common to the three services.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="INGEST_")`` (etc.), so
    ``INGEST_KAFKA_BOOTSTRAP_SERVERS`` configures ingest only. No default carries a secret.
    """

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/prevex"
    log_level: str = "INFO"
    # On Tansu a hop costs about fetch_max_wait_ms (docs/architecture.md §7.1): keep it low on pipeline hops.
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=1, le=10_000)
    # Group joins wait about half the session timeout on Tansu (docs/architecture.md §7.1).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=1_000, ge=50)
    kafka_max_batch_records: int = Field(default=500, ge=1, le=10_000)
    # Tansu fails InitProducerId: idempotence stays off unless the broker is a real Kafka.
    kafka_enable_idempotence: bool = False
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
