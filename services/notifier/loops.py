"""The notifier's background loops (planner, sender), woken by PostgreSQL when there is work.

A loop runs its step again at once while the step finds work. When it finds none, the loop waits for a
notification on its channel (``LISTEN``; the repository ``NOTIFY``s when it stores alerts or deliveries, at
the commit that makes them visible) or ``idle_s`` at most: that slow poll covers what no notification
announces — a retry or the end of quiet hours coming due, a structure waited for, the daily digest's time, a
dead notifier's deliveries to take back — and a listening connection lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg

from services.platform.logging import get_logger
from services.platform.runtime import Runtime

__all__ = ["forever"]

log = get_logger(__name__)


def forever(
    name: str,
    step: Callable[[Runtime], Awaitable[int]],
    idle_s: float,
    *,
    wake_on: str | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> Callable[[Runtime], Coroutine[Any, Any, None]]:
    """Run ``step`` again at once while it finds work; when it does not, wait for a notification on
    ``wake_on`` or ``idle_s`` at most. An error is logged (its type only: messages may echo values) and
    the step retried after ``idle_s``."""

    async def loop(rt: Runtime) -> None:
        listener = _Listener(wake_on, idle_s) if wake_on is not None else None
        try:
            if listener is not None:
                await listener.listen(rt.pool)  # before the first step: nothing stored meanwhile goes unheard
            while True:
                try:
                    worked = await step(rt)
                except Exception as error:  # the loop must outlive a database or broker outage
                    log.error("loop_step_failed", loop=name, error=type(error).__name__)  # noqa: TRY400
                    await asyncio.sleep(idle_s)
                    continue
                if worked:
                    continue
                if listener is None:
                    await asyncio.sleep(idle_s)
                else:
                    await listener.wait(rt.pool)
        finally:
            if listener is not None:
                await listener.close()
            if on_stop is not None:
                await on_stop()

    return loop


class _Listener:
    """A pool connection held to ``LISTEN`` on one channel; lost, it is taken again at the next wait."""

    def __init__(self, channel: str, idle_s: float) -> None:
        self._channel = channel
        self._idle_s = idle_s
        self._notified = asyncio.Event()
        self._conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record] | None = None
        self._pool: asyncpg.Pool | None = None

    async def listen(self, pool: asyncpg.Pool) -> None:
        await self.close()
        try:
            conn = await pool.acquire(timeout=self._idle_s)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("listen_failed", channel=self._channel, error=type(error).__name__)
            return  # polling meanwhile
        self._conn, self._pool = conn, pool
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("listen_failed", channel=self._channel, error=type(error).__name__)
            await self.close()

    async def wait(self, pool: asyncpg.Pool) -> None:
        """Until a notification arrived since the last wait, or ``idle_s``."""
        if self._conn is None or self._conn.is_closed():
            await self.listen(pool)
        try:
            async with asyncio.timeout(self._idle_s):
                await self._notified.wait()
        except TimeoutError:
            pass
        # Cleared after waking and before the step runs: a notification during the step wakes the next wait.
        self._notified.clear()

    async def close(self) -> None:
        conn, pool, self._conn, self._pool = self._conn, self._pool, None, None
        if conn is None or pool is None:
            return
        try:
            if not conn.is_closed():
                await conn.remove_listener(self._channel, self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("unlisten_failed", channel=self._channel, error=type(error).__name__)
            # Maybe still listening on the server, and the pool no longer resets a session it gets back
            # (services.platform.db): closed, the connection returns to the pool as a free slot, not as a
            # listener handed to the next user.
            conn.terminate()
        await pool.release(conn)

    def _on_notify(self, *_: object) -> None:
        self._notified.set()
