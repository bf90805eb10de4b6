"""Base model shared by every contract: strict, closed, immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Contract"]


class Contract(BaseModel):
    """Base of every event contract.

    Unknown fields are refused (an emitter's typo must not vanish silently), types are not coerced
    in Python construction (``strict``) and instances are frozen so an event cannot be edited after
    it was built. JSON input still accepts ISO dates and UUID strings: pydantic's strict mode keeps
    those JSON conversions.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
