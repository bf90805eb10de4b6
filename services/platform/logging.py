"""structlog configured once for every service: JSON lines, stdlib loggers routed through it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import structlog

__all__ = ["configure_logging", "event_context", "get_logger", "log_context"]

_SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
]

# Context keys a message's processing may bind. Anything else a header carries is ignored so an
# emitter cannot smuggle personal data into our logs through a header.
_CONTEXT_HEADERS = ("event_id", "correlation_id", "event_type")


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send structlog and stdlib (faststream, aiokafka, asyncpg) logs to stdout as JSON lines.

    Idempotent: a second call replaces the handler instead of duplicating lines.
    """
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    # FastStream installs its own coloured stderr handler on "faststream": route it through ours instead.
    faststream_logger = logging.getLogger("faststream")
    faststream_logger.handlers.clear()
    faststream_logger.propagate = True
    # aiokafka logs every coordinator change at INFO; keep them for ops but not the heartbeat noise.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, root.level))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A named structlog logger; the service name and any bound message context are added."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def event_context(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """The log context carried by a record's Kafka headers: ``event_id``, ``correlation_id``, ``event_type``."""
    return {key: value.decode("utf-8", "replace") for key, value in headers if key in _CONTEXT_HEADERS and value}


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Bind ``values`` to every log line emitted inside the block, then restore the previous context."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
