"""Registry of known emitters, loaded from YAML: the authenticated identity behind a raw input."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from schemas.procedure import EmitterType
from services.ingest.domain.normalise import Emitter

__all__ = ["EmitterRegistry", "load_emitters"]


class _EmitterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
    type: EmitterType
    name: str


class _EmittersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emitters: list[_EmitterEntry]


class EmitterRegistry:
    """Looks emitters up by id (SIRET or registry id)."""

    def __init__(self, emitters: list[Emitter]) -> None:
        self._by_id = {e.emitter_id: e for e in emitters}

    def get(self, emitter_id: str | None) -> Emitter | None:
        """The emitter with that id, or ``None`` when unknown (the input is then rejected)."""
        return self._by_id.get(emitter_id) if emitter_id else None


def load_emitters(path: Path) -> EmitterRegistry:
    """Read the emitters file; a malformed file fails at start-up with pydantic's message."""
    document = _EmittersFile.model_validate(yaml.safe_load(path.read_text("utf-8")))
    return EmitterRegistry([Emitter(emitter_id=e.id, emitter_type=e.type, name=e.name) for e in document.emitters])
