"""Session lifetime and the secrets a session holds (pure)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["NewSession", "SessionPolicy", "hash_secret", "new_session"]


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """A session ends ``idle`` after its last request, and ``absolute`` after it began, whichever is first."""

    idle: timedelta
    absolute: timedelta

    def alive(self, *, created_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
        """Whether a session created at ``created_at`` and last used at ``last_seen_at`` may serve ``now``."""
        return now < last_seen_at + self.idle and now < created_at + self.absolute


@dataclass(frozen=True, slots=True)
class NewSession:
    """The cookie's secret (given to the browser only), its hash (stored) and the CSRF token of the forms."""

    secret: str
    secret_hash: bytes
    csrf_token: str


def hash_secret(secret: str) -> bytes:
    """What the database keeps of a cookie: a leaked table opens no session."""
    return hashlib.sha256(secret.encode()).digest()


def new_session() -> NewSession:
    """Fresh random secrets (256 bits each) for a session."""
    secret = secrets.token_urlsafe(32)
    return NewSession(secret, hash_secret(secret), secrets.token_urlsafe(32))
