"""Registry of known emitters, loaded from YAML: the authenticated identity behind a raw input.

On Kafka the record key names the emitter (ACLs bind it to the producing principal); over HTTP the API
key does. Keys are stored as their SHA-256 only (``api_keys_sha256``, several to allow a rotation). A
plain hash is enough because keys are random 256-bit tokens (``python -m services.ingest.cli api-key``):
nothing can be guessed by brute force, unlike a password, so a slow hash would only slow every request.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field

from schemas.procedure import EmitterType
from services.ingest.domain.normalise import Emitter

__all__ = ["API_KEY_PREFIX", "EmitterRegistry", "hash_api_key", "load_emitters", "new_api_key"]

API_KEY_PREFIX = "pvx_"
"""Prefix of generated keys, so a leaked key is recognisable by secret scanners."""


class _EmitterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
    type: EmitterType
    name: str
    api_keys_sha256: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=list, description="SHA-256 (lowercase hex) of each valid API key"
    )


class _EmittersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emitters: list[_EmitterEntry]


def hash_api_key(key: str) -> str:
    """The stored form of an API key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> tuple[str, str]:
    """A fresh random key and its hash: ``(key to give the emitter, hash for emitters.yaml)``."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_api_key(key)


class EmitterRegistry:
    """Looks emitters up by id (SIRET or registry id) or by API key."""

    def __init__(self, emitters: list[Emitter], api_key_hashes: dict[str, str] | None = None) -> None:
        self._by_id = {e.emitter_id: e for e in emitters}
        self._by_key_hash = {digest: self._by_id[emitter_id] for digest, emitter_id in (api_key_hashes or {}).items()}

    def get(self, emitter_id: str | None) -> Emitter | None:
        """The emitter with that id, or ``None`` when unknown (the input is then rejected)."""
        return self._by_id.get(emitter_id) if emitter_id else None

    def authenticate(self, api_key: str | None) -> Emitter | None:
        """The emitter an API key belongs to, or ``None``.

        The lookup is by the key's hash: response timing can reveal nothing about the key itself.
        """
        return self._by_key_hash.get(hash_api_key(api_key)) if api_key else None


def load_emitters(path: Path) -> EmitterRegistry:
    """Read the emitters file; a malformed file, or a key hash given twice, fails at start-up."""
    document = _EmittersFile.model_validate(yaml.safe_load(path.read_text("utf-8")))
    hashes: dict[str, str] = {}
    for entry in document.emitters:
        for digest in entry.api_keys_sha256:
            if hashes.setdefault(digest, entry.id) != entry.id:
                raise ValueError(f"emitter {entry.id}: an API key hash is also given to {hashes[digest]}")
    emitters = [Emitter(emitter_id=e.id, emitter_type=e.type, name=e.name) for e in document.emitters]
    return EmitterRegistry(emitters, hashes)
