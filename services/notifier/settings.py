"""Notifier settings: environment variables prefixed ``NOTIFIER_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings

__all__ = ["NotifierSettings"]


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65_535)
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "alertes@prevex.test"
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    link_base_url: str = "https://prevex.example/dossiers"
    alert_prefix: str = "Prévention expulsions 90"
    # A decision may arrive before the référentiel record naming the structure's contacts.
    contact_wait_s: float = Field(default=300.0, ge=0)
    dispatch_interval_s: float = Field(default=0.5, gt=0)
    send_lease_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    sms_provider: Literal["log"] = "log"
    sms_log_dir: Path = Path("var/sms")
    retry_base_delay_s: float = Field(default=30.0, gt=0)
