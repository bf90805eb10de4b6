"""Notifier settings: environment variables prefixed ``NOTIFIER_``.

Secrets (SMTP password, OVH application secret and consumer key, Brevo API key) are ``SecretStr``: they
come from the environment only, never appear in ``repr`` or logs, and have no default.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings

__all__ = ["NotifierSettings", "parse_quiet_hours"]


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """``"20:00-08:00"`` → ``(20:00, 08:00)``; an empty text means no default quiet hours."""
    if not text.strip():
        return None
    start, _, end = text.partition("-")
    try:
        window = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError as error:
        raise ValueError(f"quiet hours must look like 20:00-08:00, not {text!r}") from error
    if window[0] == window[1]:
        raise ValueError("quiet hours start and end are equal")
    return window


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore")

    # --- health and metrics (/health/live, /health/ready, /metrics: docs/operations.md) ---
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8084, ge=0, le=65_535)

    # --- email ---
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65_535)
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "alertes@prevex.test"
    # Where a partner's reply goes (the alerts come from an unattended mailbox): the CCAPEX secretariat,
    # the seed référentiel's CCAPEX90-SECRETARIAT. Empty: no Reply-To header.
    reply_to: str = Field(default="ccapex90@pref.test", pattern=r"^([^@\s<>,;]+@[^@\s<>,;]+)?$")
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    # Connections kept open and reused: one connection per message costs a TCP + EHLO (+ TLS) round trip.
    smtp_pool_size: int = Field(default=8, ge=1, le=100)
    # A reused connection idle for longer is closed instead: servers drop idle clients (RFC 5321 §4.5.3.2).
    smtp_max_idle_s: float = Field(default=30.0, gt=0)

    # --- content ---
    # Alerts link to ``<base>/<token>``: the workspace's ``/d/<token>`` (services/platform/links.py).
    link_base_url: str = "https://prevex.example/d"
    # HMAC secrets of the links, comma-separated, the first signing (the workspace's list verifies):
    # no default, the service refuses to start without one.
    link_secrets: SecretStr = SecretStr("")
    link_lifetime_days: int = Field(default=30, ge=1, le=365, description="How long an alert's link opens")
    alert_prefix: str = "Prévention expulsions 90"
    # SMS carry a shorter heading: 160 GSM-7 characters must also hold the reference and the link.
    sms_prefix: str = "Expulsions 90"

    # --- SMS ---
    sms_provider: Literal["log", "ovh", "brevo"] = "log"
    sms_log_dir: Path = Path("var/sms")
    sms_timeout_s: float = Field(default=10.0, gt=0)
    # Default quiet hours (local time, ``timezone``) for contacts without their own; empty = none.
    sms_quiet_hours: str = "20:00-08:00"
    sms_quiet_sundays: bool = True
    timezone: str = "Europe/Paris"
    ovh_endpoint: str = "https://eu.api.ovh.com/1.0"
    ovh_application_key: str = ""
    ovh_application_secret: SecretStr = SecretStr("")
    ovh_consumer_key: SecretStr = SecretStr("")
    ovh_service_name: str = ""
    ovh_sender: str = ""
    brevo_endpoint: str = "https://api.brevo.com/v3"
    brevo_api_key: SecretStr = SecretStr("")
    brevo_sender: str = "Prevex90"

    # --- delivery ---
    # A decision may arrive before the référentiel record naming the structure's contacts.
    contact_wait_s: float = Field(default=300.0, ge=0)
    dispatch_interval_s: float = Field(default=0.5, gt=0)
    # Messages handed to providers at the same time (across procedures; one procedure's are sequential).
    send_concurrency: int = Field(default=8, ge=1, le=200)
    # Hard bound on one provider call; a send is never started unless it can end before its lease does.
    send_timeout_s: float = Field(default=20.0, gt=0)
    send_lease_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=30)
    # Every retry of a delivery is scheduled within this window after its first attempt.
    retry_window_s: float = Field(default=1800.0, gt=0)
    # Local hour at which the day's low-urgency stage updates are sent as one digest per contact.
    digest_time: time = time(8, 30)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @field_validator("sms_quiet_hours")
    @classmethod
    def _quiet_hours_format(cls, value: str) -> str:
        parse_quiet_hours(value)
        return value

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> Self:
        # Exactly-once rests on this: a delivery's lease must not expire while its send may still run,
        # or another dispatcher could claim and send it a second time.
        if self.send_lease_s <= self.send_timeout_s:
            raise ValueError("send_lease_s must be longer than send_timeout_s")
        return self

    @property
    def default_quiet_hours(self) -> tuple[time, time] | None:
        """The parsed ``sms_quiet_hours``."""
        return parse_quiet_hours(self.sms_quiet_hours)

    @property
    def zone(self) -> ZoneInfo:
        """The local time zone of quiet hours and digests."""
        return ZoneInfo(self.timezone)
