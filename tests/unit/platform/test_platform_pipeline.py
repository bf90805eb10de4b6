"""run_pipelined: every item prepared once and written once, writes admitted in order, failures never hidden."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.platform.pipeline import Admit, run_pipelined


class Recorder:
    """Prepares items by tagging them and writes chunks by logging them; can fail or hold on demand."""

    def __init__(self, *, fail_write: int | None = None, fail_prepare: int | None = None) -> None:
        self.log: list[str] = []
        self.written: list[list[str]] = []
        self.fail_write = fail_write
        self.fail_prepare = fail_prepare
        self.release_first = asyncio.Event()
        self.second_started = asyncio.Event()
        self.cancelled: list[int] = []

    def prepare(self, items: Sequence[int]) -> list[str]:
        for item in items:
            if item == self.fail_prepare:
                raise ValueError(f"cannot prepare {item}")
            self.log.append(f"prepare {item}")
        return [f"p{item}" for item in items]

    async def write(self, chunk: list[str], admit_next: Admit) -> None:
        number = len(self.written)
        self.written.append(chunk)
        self.log.append(f"write {number} start")
        if number == 1:
            self.second_started.set()
        try:
            if number == self.fail_write:
                raise RuntimeError(f"write {number} failed")
            admit_next()
            if number == 0:
                await self.release_first.wait()  # the first write holds on, admitted ones must still run
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(number)
            raise
        self.log.append(f"write {number} end")


async def _run(recorder: Recorder, items: Sequence[int], chunk_size: int, yield_every: int = 25) -> None:
    await run_pipelined(
        items, prepare=recorder.prepare, write=recorder.write, chunk_size=chunk_size, yield_every=yield_every
    )


async def test_every_item_is_written_once_in_chunks_in_order() -> None:
    recorder = Recorder()
    recorder.release_first.set()
    await _run(recorder, range(7), chunk_size=3)
    assert recorder.written == [["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6"]]


async def test_the_next_chunk_is_prepared_while_a_write_is_in_flight() -> None:
    recorder = Recorder()
    task = asyncio.create_task(_run(recorder, range(4), chunk_size=2, yield_every=1))
    await asyncio.wait_for(recorder.second_started.wait(), timeout=5)
    assert "write 0 end" not in recorder.log  # write 0 still holds, yet chunk 1 was prepared and started
    assert recorder.log.index("prepare 3") > recorder.log.index("write 0 start")
    recorder.release_first.set()
    await task
    assert recorder.written == [["p0", "p1"], ["p2", "p3"]]


async def test_a_write_starts_only_once_the_previous_one_admitted_it() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def write(chunk: list[int], admit_next: Admit) -> None:
        order.append(f"start {chunk}")
        if chunk == [0]:
            await gate.wait()
            order.append("admit after [0]")
            admit_next()
            await asyncio.sleep(0)
        order.append(f"end {chunk}")

    task = asyncio.create_task(run_pipelined([0, 1], prepare=list, write=write, chunk_size=1))
    for _ in range(20):
        await asyncio.sleep(0)
    assert order == ["start [0]"]  # chunk [1] is prepared, but not admitted yet
    gate.set()
    await task
    assert order.index("start [1]") > order.index("admit after [0]")


async def test_a_write_that_returns_without_admitting_admits_the_next_by_returning() -> None:
    written: list[list[int]] = []

    async def write(chunk: list[int], _: Admit) -> None:
        written.append(chunk)

    await run_pipelined(range(3), prepare=list, write=write, chunk_size=1)
    assert written == [[0], [1], [2]]


async def test_a_failed_write_is_raised_and_no_later_chunk_is_written() -> None:
    recorder = Recorder(fail_write=0)
    with pytest.raises(RuntimeError, match="write 0 failed"):
        await _run(recorder, range(6), chunk_size=2)
    assert len(recorder.written) == 1


async def test_a_write_failing_after_admitting_cancels_the_writes_in_flight() -> None:
    recorder = Recorder(fail_write=1)
    with pytest.raises(RuntimeError, match="write 1 failed"):
        await _run(recorder, range(6), chunk_size=2)
    assert 0 in recorder.cancelled  # write 0 was still holding: cancelled, not left running
    assert "write 0 end" not in recorder.log


async def test_no_chunk_is_written_once_an_earlier_write_failed_even_after_admitting() -> None:
    written: list[list[int]] = []
    second_started = asyncio.Event()

    async def write(chunk: list[int], admit_next: Admit) -> None:
        written.append(chunk)
        if chunk == [0]:
            admit_next()
            await second_started.wait()  # fails while chunk [1] is in flight
            raise RuntimeError("write 0 failed after admitting")
        second_started.set()
        await asyncio.sleep(0)
        admit_next()
        await asyncio.Event().wait()  # holds until cancelled

    with pytest.raises(RuntimeError, match="write 0 failed"):
        await run_pipelined(range(4), prepare=list, write=write, chunk_size=1, yield_every=1)
    assert written == [[0], [1]]


async def test_a_failed_preparation_cancels_the_write_in_flight_and_is_raised() -> None:
    recorder = Recorder(fail_prepare=3)
    with pytest.raises(ValueError, match="cannot prepare 3"):
        await _run(recorder, range(6), chunk_size=2, yield_every=1)
    assert recorder.cancelled == [0]  # write 0 had started and was holding
    assert len(recorder.written) == 1


async def test_nothing_to_do_writes_nothing() -> None:
    recorder = Recorder()
    await _run(recorder, [], chunk_size=2)
    assert recorder.written == []


@pytest.mark.parametrize(("chunk_size", "yield_every"), [(0, 1), (1, 0)])
async def test_sizes_below_one_are_refused(chunk_size: int, yield_every: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await _run(Recorder(), [1], chunk_size=chunk_size, yield_every=yield_every)
