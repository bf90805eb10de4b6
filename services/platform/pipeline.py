"""Pipelined processing of a consumed batch: chunks prepared and written concurrently, admitted in order.

A batch handler spends its time in three kinds of work: CPU work that needs no database (validating and
normalising records), CPU work inside a transaction (deciding, building events) and waits for PostgreSQL.
Done one after the other, the process idles while PostgreSQL works and PostgreSQL idles meanwhile. Here the
batch is split into chunks: chunk *i + 1* is prepared while chunk *i*'s transaction is in flight, and its
own transaction starts as soon as chunk *i*'s *admitted* the next one — for ingest, once it holds its
advisory locks, so that a later chunk touching the same acts or households waits for it to commit and
sees its rows, exactly as if the chunks had run one after the other.

Delivery semantics are the caller's batch semantics: :func:`run_pipelined` returns only once every chunk
was written, and raises the first failure after cancelling the writes still in flight, so the whole batch
comes again (chunks already committed must be recognised on redelivery, as ingest does by Kafka position).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

__all__ = ["Admit", "run_pipelined"]

In = TypeVar("In")
Out = TypeVar("Out")

Admit = Callable[[], None]
"""Called by a chunk's write once the next chunk's write may start (calling it again does nothing)."""


async def run_pipelined(
    items: Sequence[In],
    *,
    prepare: Callable[[Sequence[In]], list[Out]],
    write: Callable[[list[Out], Admit], Coroutine[Any, Any, None]],
    chunk_size: int,
    yield_every: int = 25,
) -> None:
    """Prepare and write ``items`` chunk by chunk; a chunk's write starts once the previous one admitted it.

    ``prepare`` is called on slices of at most ``yield_every`` items, with a pass through the event loop
    between slices, so the writes in flight get their database replies handled promptly. A write that
    returns without calling its ``Admit`` admits the next one by returning. Raises the first exception of
    ``prepare`` or of a write; the writes still in flight are then cancelled and awaited.
    """
    if chunk_size < 1 or yield_every < 1:
        raise ValueError("chunk_size and yield_every must be at least 1")
    chunks = [items[start : start + chunk_size] for start in range(0, len(items), chunk_size)]
    writes: list[tuple[asyncio.Task[None], asyncio.Event]] = []
    try:
        for chunk in chunks:
            prepared = await _prepare(chunk, prepare, yield_every)
            if writes:
                await _admitted(*writes[-1])
            for task, _ in writes:  # no new write once an earlier one failed, even after admitting it
                if task.done():
                    task.result()
            admitted = asyncio.Event()
            writes.append((asyncio.create_task(write(prepared, admitted.set)), admitted))
        for task, _ in writes:
            await task
    finally:
        for task, _ in writes:
            task.cancel()
        await asyncio.gather(*(task for task, _ in writes), return_exceptions=True)


async def _prepare(chunk: Sequence[In], prepare: Callable[[Sequence[In]], list[Out]], yield_every: int) -> list[Out]:
    prepared: list[Out] = []
    for start in range(0, len(chunk), yield_every):
        prepared += prepare(chunk[start : start + yield_every])
        await asyncio.sleep(0)
    return prepared


async def _admitted(write: asyncio.Task[None], admitted: asyncio.Event) -> None:
    """Wait until ``write`` admitted the next chunk or ended."""
    waiter = asyncio.create_task(admitted.wait())
    try:
        await asyncio.wait({write, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
