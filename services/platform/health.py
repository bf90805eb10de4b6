"""Health and metrics endpoints every service serves: ``/health/live``, ``/health/ready``, ``/metrics``.

- ``/health/live``: 200 while the process's event loop answers (an orchestrator restarts it otherwise).
- ``/health/ready``: 200 when PostgreSQL answers, the broker answers, every consumer has joined its group
  and none is stalled; 503 otherwise, with the failing checks named. A consumer is *stalled* when one batch
  has been in its handler, or its batches have kept failing (each coming again), for longer than
  ``stall_after_s`` — an idle consumer is not stalled: no input is no work. A replica that joined its group
  without partitions (more replicas than partitions) is ready: it stands by.
- ``/metrics``: the service's registry in the Prometheus text format, its gauges read first
  (``ServiceMetrics.refresh``).

None of them is authenticated and none is in the services' OpenAPI documents: they are meant for the
internal network (docs/operations.md says what the workspace's reverse proxy must not forward).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.platform.logging import get_logger
from services.platform.metrics import ServiceMetrics

__all__ = ["ConsumerProgress", "Readiness", "health_app", "health_router"]

_CHECK_TIMEOUT_S = 2.0

log = get_logger(__name__)


@dataclass
class _Track:
    in_flight_since: float | None = None
    failing_since: float | None = None
    batches: int = 0


@dataclass
class ConsumerProgress:
    """What the consumers of one process are doing, fed by :meth:`middleware` (monotonic seconds)."""

    clock: Callable[[], float] = time.monotonic
    _tracks: dict[str, _Track] = field(default_factory=dict)

    def started(self, topic: str) -> None:
        """A batch of ``topic`` entered its handler."""
        self._tracks.setdefault(topic, _Track()).in_flight_since = self.clock()

    def finished(self, topic: str, *, ok: bool) -> None:
        """The batch of ``topic`` left its handler, committed (``ok``) or to come again."""
        track = self._tracks.setdefault(topic, _Track())
        track.in_flight_since = None
        if ok:
            track.failing_since = None
            track.batches += 1
        elif track.failing_since is None:
            track.failing_since = self.clock()

    def stalled(self, stall_after_s: float) -> list[str]:
        """The topics whose batch has been in its handler, or failing, for more than ``stall_after_s``."""
        since_limit = self.clock() - stall_after_s
        return sorted(
            topic
            for topic, track in self._tracks.items()
            if any(since is not None and since < since_limit for since in (track.in_flight_since, track.failing_since))
        )

    def middleware(self) -> Callable[..., BaseMiddleware]:
        """A FastStream broker middleware that reports every consumed batch to this tracker."""
        progress = self

        class _ProgressMiddleware(BaseMiddleware):
            async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
                topic = _topic(msg.raw_message)
                progress.started(topic)
                ok = False
                try:
                    result = await call_next(msg)
                    ok = True
                    return result
                finally:
                    progress.finished(topic, ok=ok)

        return _ProgressMiddleware


def _topic(raw: Any) -> str:
    # A batch is a tuple of records (one consumer may read several topics: its first record's names it).
    first = raw[0] if isinstance(raw, Sequence) and raw else raw
    return str(getattr(first, "topic", "unknown"))


@dataclass
class Readiness:
    """The checks of ``/health/ready`` for one process."""

    pool: Callable[[], asyncpg.Pool]
    broker: KafkaBroker
    progress: ConsumerProgress
    stall_after_s: float

    def consumers(self) -> list[AIOKafkaConsumer]:
        """The started consumers of the broker's subscribers."""
        consumers = (getattr(sub, "consumer", None) for sub in self.broker.subscribers)
        return [consumer for consumer in consumers if consumer is not None]

    async def problems(self) -> list[str]:
        """The failing checks, named (empty: ready); never raises."""
        problems = []
        try:
            await asyncio.wait_for(self.pool().fetchval("SELECT 1"), _CHECK_TIMEOUT_S)
        except Exception as error:  # any failure means "not ready", the type says why
            problems.append(f"postgresql: {type(error).__name__}")
        if not await self.broker.ping(timeout=_CHECK_TIMEOUT_S):
            problems.append("broker: no answer")
        waiting = sum(1 for sub in self.broker.subscribers if not _joined(getattr(sub, "consumer", None)))
        if waiting:
            problems.append(f"consumers: {waiting} not in their group yet")
        problems += [f"consumer stalled: {topic}" for topic in self.progress.stalled(self.stall_after_s)]
        return problems


def _joined(consumer: AIOKafkaConsumer | None) -> bool:
    # aiokafka sets the subscription's assignment when a group join completes (an empty one for a replica
    # that got no partition); it has no public accessor telling "joined" from "assigned nothing yet".
    if consumer is None:
        return False
    subscription = consumer._subscription.subscription
    return subscription is not None and subscription.assignment is not None


def health_router(readiness: Readiness, metrics: ServiceMetrics) -> APIRouter:
    """The three routes, to include in a service's FastAPI app (left out of its OpenAPI document)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/health/live")
    async def live() -> JSONResponse:
        return JSONResponse({"status": "live"})

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        problems = await readiness.problems()
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get("/metrics")
    async def metrics_text() -> Response:
        metrics.ready.set(0 if await readiness.problems() else 1)
        try:
            async with readiness.pool().acquire(timeout=_CHECK_TIMEOUT_S) as conn:
                await metrics.refresh(conn, readiness.consumers())
        except Exception as error:  # the counters are still worth serving without the gauges
            log.warning("metrics_refresh_failed", error=type(error).__name__)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def health_app(routers: Iterable[APIRouter]) -> FastAPI:
    """An app serving only ``routers``: for a service without an HTTP API of its own (the notifier)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    for router in routers:
        app.include_router(router)
    return app
