"""Settings every service shares; each service subclasses with its own ``env_prefix``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.platform.clock import Clock, build_clock, parse_instant
from services.platform.tracing import TracingMode

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Connection and Kafka-client settings common to the three services.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="INGEST_")`` (etc.), so
    ``INGEST_KAFKA_BOOTSTRAP_SERVERS`` configures ingest only. No default carries a secret.

    The clock is the exception: ``PREVEX_CLOCK`` / ``PREVEX_CLOCK_FROZEN`` have no service prefix, so the
    three services of one deployment agree on the date (``services.platform.clock``).
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
    # /health/ready fails when a consumer's batch is in its handler, or keeps failing, for longer than this.
    health_stall_after_s: float = Field(default=300.0, gt=0)
    # Off by default; set for replays, acceptance runs and demos (services/platform/clock.py).
    clock: datetime | None = Field(default=None, validation_alias="PREVEX_CLOCK")
    clock_frozen: bool = Field(default=False, validation_alias="PREVEX_CLOCK_FROZEN")
    # Off by default (services/platform/tracing.py); unset, OTEL_EXPORTER_OTLP_ENDPOINT alone turns it on.
    tracing: TracingMode | None = Field(default=None, validation_alias="PREVEX_TRACING")
    otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")

    @property
    def tracing_mode(self) -> TracingMode:
        """``PREVEX_TRACING`` when set, else ``otlp`` if ``OTEL_EXPORTER_OTLP_ENDPOINT`` is, else ``off``."""
        if self.tracing is not None:
            return self.tracing
        return "otlp" if self.otlp_endpoint else "off"

    def make_clock(self) -> Clock:
        """The clock these settings ask for: the system clock unless ``PREVEX_CLOCK`` is set; a running one
        starts at that instant now, when this is called."""
        return build_clock(self.clock, frozen=self.clock_frozen)

    @field_validator("clock", mode="before")
    @classmethod
    def _parse_clock(cls, value: Any) -> Any:
        # Our own parser: pydantic would also take a bare number (seconds since 1970) or a local time.
        if isinstance(value, str):
            return parse_instant(value) if value.strip() else None
        return value

    @field_validator("clock")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("PREVEX_CLOCK needs a UTC offset (e.g. +01:00 or Z) to name one instant")
        return None if value is None else value.astimezone(UTC)

    @field_validator("tracing", "otlp_endpoint", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # An empty line in a sourced .env file means "not set".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("clock_frozen", mode="before")
    @classmethod
    def _empty_is_false(cls, value: Any) -> Any:
        # An empty line in a sourced .env file means "not set".
        return False if isinstance(value, str) and not value.strip() else value

    @field_validator("clock_frozen")
    @classmethod
    def _frozen_needs_an_instant(cls, frozen: bool, info: ValidationInfo) -> bool:
        # A field validator, not a model one: its error then shows this value only, never other settings.
        # ``clock`` absent from ``info.data``: it failed and said so already.
        if frozen and "clock" in info.data and info.data["clock"] is None:
            raise ValueError("PREVEX_CLOCK_FROZEN=true needs PREVEX_CLOCK, the instant to freeze the clock at")
        return frozen
