"""Admin API tokens: bearer tokens stored as SHA-256 hashes, each with a name and roles.

The tokens file (``ORIENTATION_ADMIN_TOKENS_PATH``) never holds a token, only its hash::

    tokens:
      - name: secretariat-ccapex          # recorded as the author of every change made with it
        sha256: 9f86d08188…              # python -m services.orientation.cli token new --name …
        roles: [ccapex-admin]

Tokens are 256-bit random strings, so a plain SHA-256 is enough (no dictionary to attack, unlike a
password) and lets a lookup be one hash; the comparison is constant-time. Roles: ``ccapex-admin``
reads, simulates and changes the référentiel; ``ccapex-viewer`` reads and simulates.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Principal", "Role", "TokenRegistry", "hash_token", "load_tokens", "new_token"]

TOKEN_PREFIX = "pvx_"  # noqa: S105 -- a prefix that makes leaked tokens easy to grep for, not a secret


class Role(StrEnum):
    ADMIN = "ccapex-admin"
    VIEWER = "ccapex-viewer"


@dataclass(frozen=True)
class Principal:
    """Who called: the token's name (never the token) and its roles."""

    name: str
    roles: frozenset[Role]


class _TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    roles: list[Role] = Field(min_length=1)


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[_TokenEntry]


def hash_token(token: str) -> str:
    """The hex SHA-256 stored for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (``pvx_`` + 43 URL-safe characters, 256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenRegistry:
    """Looks a bearer token up among the known hashes."""

    def __init__(self, entries: list[tuple[str, str, frozenset[Role]]]) -> None:
        self._entries = entries

    @classmethod
    def empty(cls) -> TokenRegistry:
        """No token: every request is refused (the default when no tokens file is configured)."""
        return cls([])

    def authenticate(self, token: str) -> Principal | None:
        """The principal of ``token``, or ``None`` when it is unknown."""
        digest = hash_token(token)
        found = None
        for name, expected, roles in self._entries:
            # Compare against every entry: the time taken does not tell which one matched.
            if hmac.compare_digest(digest, expected):
                found = Principal(name, roles)
        return found


def load_tokens(path: Path | None) -> TokenRegistry:
    """Read the tokens file; ``None`` gives an empty registry. A malformed file fails at start-up."""
    if path is None:
        return TokenRegistry.empty()
    try:
        document = _TokensFile.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ValueError(f"{path}: invalid tokens file: {problems}") from None
    return TokenRegistry([(e.name, e.sha256, frozenset(e.roles)) for e in document.tokens])
