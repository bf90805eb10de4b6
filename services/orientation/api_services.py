"""What the admin API's routes run on: the service's parts, and the référentiel they read and change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from fastapi import HTTPException

from services.orientation.auth import Principal, TokenRegistry
from services.orientation.referential_store import (
    ActiveReferential,
    Change,
    Commit,
    ReferentialHolder,
    commit_referential,
    load_active,
)
from services.platform.clock import SYSTEM_CLOCK, Clock
from services.platform.logging import get_logger

__all__ = ["AdminServices", "commit", "current"]

log = get_logger(__name__)


@dataclass(frozen=True)
class AdminServices:
    """What the API needs from the running service. ``pool`` is a function: the pool only exists once
    the service started, after the app was built. ``clock`` dates the week whose capacity ``simulate`` reads."""

    pool: Callable[[], asyncpg.Pool]
    holder: ReferentialHolder
    tokens: TokenRegistry
    max_structures: int
    clock: Clock = SYSTEM_CLOCK


async def current(services: AdminServices, version: int | None = None) -> ActiveReferential:
    """The current version (reloaded if another process changed it), or ``version`` (404 if unknown)."""
    async with services.pool().acquire() as conn:
        active = await services.holder.refresh(conn)
        if version is None or version == active.version:
            return active
        try:
            return await load_active(conn, version)
        except LookupError:
            raise HTTPException(404, f"no référentiel version {version}") from None


async def commit(services: AdminServices, change: Change, who: Principal, what: str) -> Commit:
    """Apply ``change`` as a new version, then use it in this process at once."""
    async with services.pool().acquire() as conn, conn.transaction():
        done = await commit_referential(conn, change, source=f"api {what}", author=who.name)
    services.holder.offer(done.active)
    log.info("referential_changed_by_api", request=what, author=who.name, version=done.active.version)
    return done
