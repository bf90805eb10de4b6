"""The lifecycle every service shares: pool + migrations, outbox relay, background loops, broker.

A service's ``bootstrap`` builds a ``Runtime`` and registers its subscribers on ``runtime.broker``;
``serve`` runs it as a FastStream app, which handles SIGINT/SIGTERM. The pool is opened and the
schema migrated before the broker starts consuming, and closed only after the broker stopped.

Every runtime measures itself (``services.platform.metrics``, ``services.platform.health``): the broker
carries FastStream's Prometheus middleware and a progress tracker, the outbox relay counts the business
events it published, and every FastAPI app given to :meth:`Runtime.add_http` also serves
``/health/live``, ``/health/ready`` and ``/metrics``, and the API documents as pages (``/docs/events``,
``/docs/api``: ``services.platform.apidocs``) — unless it faces the internet (``health=False``), when
:meth:`Runtime.add_health_http` serves them on an internal port. With tracing on (``PREVEX_TRACING``), the broker
also carries FastStream's OpenTelemetry middleware and the HTTP apps serve each request under a span.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Coroutine, Iterator
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI
from faststream import FastStream
from faststream.kafka import KafkaBroker

from services.platform import tracing
from services.platform.apidocs import api_docs_router
from services.platform.db import open_schema
from services.platform.health import ConsumerProgress, Readiness, health_app, health_router
from services.platform.kafka import make_broker
from services.platform.logging import configure_logging, get_logger
from services.platform.metrics import ServiceMetrics
from services.platform.outbox import KafkaOutboxPublisher, OutboxRelay
from services.platform.settings import ServiceSettings

__all__ = ["BackgroundLoop", "Runtime", "serve"]

BackgroundLoop = Callable[["Runtime"], Coroutine[Any, Any, None]]
"""A coroutine function run for the service's lifetime and cancelled at shutdown."""

log = get_logger(__name__)


class Runtime:
    """Connections and background tasks of one service process."""

    def __init__(self, name: str, settings: ServiceSettings, *, schema: str, migrations: Traversable) -> None:
        self.name = name
        self.settings = settings
        self.schema = schema
        self.broker: KafkaBroker = make_broker(settings, client_id=f"prevex-{name}")
        self.metrics = ServiceMetrics(name)
        self.progress = ConsumerProgress()
        self.broker.add_middleware(self.metrics.middleware)
        self.broker.add_middleware(self.progress.middleware())
        # None when tracing is off: then no middleware, no wrapped app, no span (services/platform/tracing.py).
        self._tracer_provider = tracing.configure(name, settings.tracing_mode)
        if self._tracer_provider is not None:
            self.broker.add_middleware(tracing.broker_middleware(self._tracer_provider))
        self._migrations = migrations
        self._pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._loops: list[BackgroundLoop] = []
        self._startups: list[BackgroundLoop] = []
        self._http: list[tuple[Any, str, int]] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pool(self) -> asyncpg.Pool:
        """The service's connection pool; only valid between ``start`` and ``stop``."""
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the runtime is not started")
        return self._pool

    def add_startup(self, step: BackgroundLoop) -> None:
        """Run ``step(runtime)`` once at start, after migrations and before the broker consumes."""
        self._startups.append(step)

    def add_http(self, app: Any, *, host: str, port: int, health: bool = True) -> None:
        """Serve the ASGI ``app`` on ``host:port`` while the service runs.

        The socket is bound at start, before anything consumes: a taken port stops the service with a
        clear error (fail fast, as an orchestrator expects) instead of a half-working process. uvicorn
        installs no signal handler: FastStream owns SIGINT/SIGTERM and cancels the server with the
        other background tasks. A FastAPI app also gets the health and metrics routes and the API
        documents' pages, unless ``health`` is false: an app facing the internet, whose runtime serves them
        with :meth:`add_health_http` on an internal port instead. When tracing is on, each request is
        served under a server span.
        """
        if health and isinstance(app, FastAPI):
            app.include_router(self._health_router())
            app.include_router(api_docs_router(self.name, app.openapi if app.openapi_url is not None else None))
        if self._tracer_provider is not None:
            app = tracing.asgi_app(app, self._tracer_provider)
        self._http.append((app, host, port))

    def add_health_http(self, *, host: str, port: int) -> None:
        """Serve only the health and metrics routes, and the events' page, on ``host:port``: for a service
        without an HTTP API, or whose API faces the internet (the workspace)."""
        routers = [self._health_router(), api_docs_router(self.name, None)]
        self._http.append((health_app(routers), host, port))

    def _health_router(self) -> APIRouter:
        readiness = Readiness(
            pool=lambda: self.pool,
            broker=self.broker,
            progress=self.progress,
            stall_after_s=self.settings.health_stall_after_s,
        )
        return health_router(readiness, self.metrics)

    @property
    def http_apps(self) -> list[tuple[Any, str, int]]:
        """The ASGI apps this runtime serves, with their host and port, as they will be served."""
        return list(self._http)

    def add_loop(self, loop: BackgroundLoop) -> None:
        """Run ``loop(runtime)`` in the background once started."""
        self._loops.append(loop)

    async def start(self) -> None:
        """Bind the HTTP sockets, open the pool, migrate the schema, start the outbox producer, run the
        start-up steps, then the background loops and HTTP servers."""
        servers = [(_QuietServer(_http_config(app)), _listen(host, port)) for app, host, port in self._http]
        self._pool = await open_schema(self.settings.database_url, schema=self.schema, migrations=self._migrations)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"prevex-{self.name}-outbox",
            acks="all",
            enable_idempotence=self.settings.kafka_enable_idempotence,
            # No linger: the relay hands a whole batch to the producer before awaiting any of it, so the
            # batch travels in a few requests anyway, and a lone event is not held 5 ms on every hop.
            linger_ms=0,
            max_batch_size=1_048_576,
            max_request_size=8_388_608,
        )
        await self._producer.start()
        for step in self._startups:
            await step(self)
        relay = OutboxRelay(
            self._pool,
            self.schema,
            KafkaOutboxPublisher(self._producer),
            batch_size=self.settings.outbox_batch_size,
            poll_interval_s=self.settings.outbox_poll_interval_s,
            on_relayed=self.metrics.observe_published,
        )
        self._tasks = [asyncio.create_task(relay.run(), name=f"{self.name}-outbox")]
        self._tasks += [asyncio.create_task(loop(self), name=f"{self.name}-loop") for loop in self._loops]
        self._tasks += [
            asyncio.create_task(server.serve(sockets=[sock]), name=f"{self.name}-http") for server, sock in servers
        ]
        log.info("service_started", service=self.name)

    async def stop(self) -> None:
        """Cancel the background tasks, then close the producer and the pool."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._producer is not None:
            await self._producer.stop()
        if self._pool is not None:
            await self._pool.close()
        log.info("service_stopped", service=self.name)


def _http_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {error.strerror}") from error
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to FastStream (it would otherwise take SIGINT/SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(runtime: Runtime) -> None:
    """Run ``runtime`` as a FastStream application until SIGINT/SIGTERM."""
    configure_logging(runtime.name, runtime.settings.log_level)
    app = FastStream(
        runtime.broker,
        logger=get_logger(f"prevex.{runtime.name}"),
        on_startup=[runtime.start],
        after_shutdown=[runtime.stop],
    )
    asyncio.run(app.run())
