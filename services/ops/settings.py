"""Settings of ``prevex-ops``: where each service's schema lives, the broker, the audit log's database."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.ingest.intake import SCHEMA as INGEST_SCHEMA
from services.notifier.dispatch import SCHEMA as NOTIFIER_SCHEMA
from services.orientation.referential_store import SCHEMA as ORIENTATION_SCHEMA
from services.workspace.http import SCHEMA as WORKSPACE_SCHEMA

__all__ = ["SCHEMAS", "OpsSettings", "SettingsMissingError"]

SCHEMAS: dict[str, str] = {
    "ingest": INGEST_SCHEMA,
    "orientation": ORIENTATION_SCHEMA,
    "notifier": NOTIFIER_SCHEMA,
    "workspace": WORKSPACE_SCHEMA,
}
"""Each service's schema, as the service names it (one per service, docs/architecture.md §3)."""


class SettingsMissingError(ValueError):
    """A command needs a URL that no setting gives."""


class OpsSettings(BaseSettings):
    """``PREVEX_OPS_*``. Locally the services share one database, a schema each: ``PREVEX_OPS_DATABASE_URL``
    is enough. In production each service may have its own: ``PREVEX_OPS_<SERVICE>_DATABASE_URL`` wins
    for that service. The audit log of personal-data reads goes to the ``ops`` schema of
    ``PREVEX_OPS_AUDIT_DATABASE_URL`` (default ``PREVEX_OPS_DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="PREVEX_OPS_", extra="ignore")

    database_url: str | None = None
    ingest_database_url: str | None = None
    orientation_database_url: str | None = None
    notifier_database_url: str | None = None
    workspace_database_url: str | None = None
    audit_database_url: str | None = None
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    operator: str | None = Field(default=None, description="who runs the command, for the audit log")

    def url_of(self, service: str) -> str:
        """The database URL of ``service``'s schema; :class:`SettingsMissingError` when none is set."""
        url = getattr(self, f"{service}_database_url") or self.database_url
        if not url:
            raise SettingsMissingError(
                f"no database for {service}: set PREVEX_OPS_DATABASE_URL or PREVEX_OPS_{service.upper()}_DATABASE_URL"
            )
        return str(url)

    def audit_url(self) -> str:
        """The database the audit log is written to; :class:`SettingsMissingError` when none is set."""
        url = self.audit_database_url or self.database_url
        if not url:
            raise SettingsMissingError("no database for the audit log: set PREVEX_OPS_AUDIT_DATABASE_URL")
        return url
