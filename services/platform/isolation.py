"""Keeping one poison record from stopping a batch subscription: split the batch, set the record aside.

A batch handler that raises makes the whole batch come again (``NACK_ON_ERROR``). That is right when the
cause is transient — PostgreSQL down, a connection lost, a deadlock — and the batch will pass later. It
is wrong when one record's processing raises every time (a bug reached by one input): the batch would
come back forever and nothing after it in its partitions would be processed. So a batch that fails for a
reason that is not transient is split in halves, each handled on its own, down to the record that fails
alone; that record is tried a bounded number of times, then handed to the service's poison handler
(ingest rejects it with an internal-error code, the others park it in ``dead_letter``), and the rest of
the batch goes on in order. Handlers are idempotent (inbox, Kafka positions), so the parts of a batch
that committed before the failure are recognised when they are handled again.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import asyncpg
from aiokafka import ConsumerRecord

from services.platform.logging import get_logger

__all__ = [
    "ISOLATION_ATTEMPTS",
    "REWIND_PAUSE_S",
    "PoisonHandler",
    "TransientError",
    "failure_summary",
    "handle_isolating",
    "is_transient",
]

ISOLATION_ATTEMPTS = 3
"""How many times a record that fails alone is handled before it is handed to the poison handler."""
REWIND_PAUSE_S = 1.0
"""How long a batch that must come again (a transient failure) waits before it rewinds: the consumer would
fetch it again at once, so without a pause an unavailable PostgreSQL is retried (and logged, with a
traceback, by FastStream) 10–20 times a second."""

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
PoisonHandler = Callable[[Record, BaseException], Awaitable[None]]
"""Sets aside a record whose processing keeps failing (stores it rejected, parks it); raising from it
makes the whole batch come again, as a transient failure does."""


class TransientError(RuntimeError):
    """Raised by a handler to say its batch must come again as it is (another consumer stored part of it
    meanwhile, say): never isolated, never set aside."""


_TRANSIENT = (
    TransientError,
    OSError,  # connection refused or reset, timeouts (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # connection closed, pool closing
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.OperatorInterventionError,  # server shutting down, statement cancelled
)

log = get_logger(__name__)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` may pass if the same records are handled again later, without any change:
    the infrastructure failed (network, PostgreSQL unavailable or overloaded, a transaction conflict)
    rather than the processing of a record."""
    return isinstance(error, _TRANSIENT)


def failure_summary(error: BaseException) -> str:
    """``ErrorType at module.py:123 in function``: where the processing failed, without the exception's
    message, which may quote the input (personal data). When that is in a library, the last place in the
    services' own code follows (``… via repository.py:212 in insert_raw``)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return type(error).__name__
    summary = f"{type(error).__name__} at {_place(frames[-1])}"
    own = [frame for frame in frames if f"{os.sep}services{os.sep}" in frame.filename]
    if own and own[-1] is not frames[-1]:
        summary += f" via {_place(own[-1])}"
    return summary


def _place(frame: traceback.FrameSummary) -> str:
    return f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"


async def handle_isolating(
    records: Sequence[Record],
    handler: Callable[[Sequence[Record]], Awaitable[Any]],
    on_poison: PoisonHandler,
    *,
    transient: Callable[[BaseException], bool] = is_transient,
    attempts: int = ISOLATION_ATTEMPTS,
    rewind_pause_s: float = REWIND_PAUSE_S,
) -> None:
    """Handle ``records`` with ``handler``; on a failure that is not ``transient``, isolate its cause.

    The batch is split in halves, handled in order, down to the records that fail alone; each of those is
    handled up to ``attempts`` times in all, then given to ``on_poison`` and logged once (an error line
    with where it failed, no traceback on the retries). A transient failure at any point — or a failure of
    ``on_poison`` — propagates after ``rewind_pause_s``, so the subscription rewinds and the whole batch
    comes again.
    """
    try:
        try:
            await handler(records)
        except Exception as error:
            if transient(error):
                raise
            log.warning("batch_failed_isolating", records=len(records), error=failure_summary(error))
            await _Isolation(handler, on_poison, transient, attempts).split(records, error)
    except Exception:
        await asyncio.sleep(rewind_pause_s)
        raise


class _Isolation:
    def __init__(
        self,
        handler: Callable[[Sequence[Record]], Awaitable[Any]],
        on_poison: PoisonHandler,
        transient: Callable[[BaseException], bool],
        attempts: int,
    ) -> None:
        self._handler = handler
        self._on_poison = on_poison
        self._transient = transient
        self._attempts = attempts

    async def split(self, failed: Sequence[Record], error: BaseException) -> None:
        """``failed`` raised ``error`` as a whole: handle its halves, isolating further in each that fails."""
        if len(failed) == 1:
            await self._alone(failed[0], error)
            return
        middle = len(failed) // 2
        for part in (failed[:middle], failed[middle:]):
            try:
                await self._handler(part)
            except Exception as part_error:
                if self._transient(part_error):
                    raise
                await self.split(part, part_error)

    async def _alone(self, record: Record, error: BaseException) -> None:
        """``record`` failed alone with ``error``: retry it up to the attempts left, then set it aside."""
        for _ in range(self._attempts - 1):
            try:
                await self._handler((record,))
            except Exception as retry_error:
                if self._transient(retry_error):
                    raise
                error = retry_error
            else:
                return
        await self._poison(record, error)

    async def _poison(self, record: Record, error: BaseException) -> None:
        log.error(
            "record_set_aside",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=self._attempts,
            error=failure_summary(error),
        )
        await self._on_poison(record, error)
