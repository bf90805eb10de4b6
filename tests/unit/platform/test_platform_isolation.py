"""Isolating a poison record in a failed batch (services.platform.isolation), and the tolerant reading of
Kafka keys and headers (services.platform.kafka), without a broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeAlias

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from structlog.testing import capture_logs

from services.platform import isolation
from services.platform.isolation import TransientError, failure_summary, handle_isolating, is_transient
from services.platform.kafka import header_entries, key_text, undecodable_headers

# aiokafka ships no type information (pyproject's mypy overrides): the alias documents what the records hold.
Record: TypeAlias = ConsumerRecord[bytes, bytes]


def _record(offset: int, *, key: bytes | None = b"k", headers: Sequence[tuple[str, bytes | None]] = ()) -> Record:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=str(offset).encode(),
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=tuple(headers),
    )


class _Handler:
    """Handles batches, raising ``error`` for any batch holding an offset of ``poison`` (``times`` times each)."""

    def __init__(self, poison: dict[int, int], error: Exception | None = None) -> None:
        self.poison = poison
        self.error = error or ValueError("bug")
        self.handled: list[int] = []
        self.set_aside: list[int] = []

    async def __call__(self, records: Sequence[Record]) -> None:
        failing = [r.offset for r in records if self.poison.get(r.offset, 0) > 0]
        if failing:
            if len(records) == 1:
                self.poison[failing[0]] -= 1
            raise self.error
        self.handled += [r.offset for r in records]

    async def park(self, record: Record, _: BaseException) -> None:
        self.set_aside.append(record.offset)


async def test_the_failing_record_is_set_aside_and_the_others_handled_in_order() -> None:
    handler = _Handler({5: 99, 9: 99})
    with capture_logs() as logs:
        await handle_isolating([_record(n) for n in range(12)], handler, handler.park)
    assert handler.handled == [n for n in range(12) if n not in {5, 9}]
    assert handler.set_aside == [5, 9]
    assert [line["offset"] for line in logs if line["event"] == "record_set_aside"] == [5, 9]
    assert [line["event"] for line in logs if line["log_level"] == "warning"] == ["batch_failed_isolating"]


async def test_a_record_that_passes_on_a_retry_is_not_set_aside() -> None:
    handler = _Handler({3: 2})  # fails alone twice, passes on the third and last try
    await handle_isolating([_record(n) for n in range(6)], handler, handler.park)
    assert sorted(handler.handled) == list(range(6))
    assert handler.set_aside == []


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("PostgreSQL down"),
        TimeoutError(),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.InterfaceError("pool is closing"),
        TransientError("stored by another consumer meanwhile"),
    ],
)
async def test_a_transient_failure_propagates_for_the_whole_batch_to_come_again(error: Exception) -> None:
    handler = _Handler({2: 99}, error)
    assert is_transient(error)
    with pytest.raises(type(error)):
        await handle_isolating([_record(n) for n in range(4)], handler, handler.park, rewind_pause_s=0)
    assert handler.handled == []
    assert handler.set_aside == []


async def test_a_batch_pauses_before_it_rewinds(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)  # the module isolation pauses with
    handler = _Handler({1: 99}, ConnectionResetError())
    with pytest.raises(ConnectionResetError):
        await handle_isolating([_record(n) for n in range(3)], handler, handler.park)
    assert pauses == [isolation.REWIND_PAUSE_S]

    async def broken_park(record: Record, error: BaseException) -> None:
        raise RuntimeError("dead_letter unavailable")

    pauses.clear()
    with pytest.raises(RuntimeError):  # setting aside failed: the batch comes again, after the same pause
        await handle_isolating([_record(0)], _Handler({0: 99}), broken_park)
    assert pauses == [isolation.REWIND_PAUSE_S]


def test_bugs_and_bad_data_are_not_transient() -> None:
    for error in (ValueError(), OverflowError(), KeyError(), asyncpg.exceptions.DataError("out of range")):
        assert not is_transient(error)


def test_keys_and_headers_are_read_whatever_bytes_they_hold() -> None:
    record = _record(
        0, key=b"\xff1234", headers=[("x-bin", b"\x00\xff\x80"), ("x-null", None), ("x-nul", b"a\x00b"), ("ok", b"v")]
    )
    assert key_text(record) == "\ufffd1234"
    assert key_text(_record(0, key=None)) is None
    assert undecodable_headers(record) == ["x-bin", "x-null", "x-nul"]
    assert header_entries(record) == [
        {"name": "x-bin", "base64": "AP+A"},
        {"name": "x-null", "value": None},
        {"name": "x-nul", "base64": "YQBi"},
        {"name": "ok", "value": "v"},
    ]
    assert header_entries(_record(0)) is None
    assert header_entries(_record(0, headers=[("a\x00", b"v")])) == [{"name": "a\ufffd", "value": "v"}]


def test_a_failure_is_summarised_by_where_it_happened_never_by_its_message() -> None:
    def parse(text: str) -> int:
        return int(text)  # raises with the text in its message

    try:
        parse("Dupont 12 rue des Lilas")
    except ValueError as error:
        summary = failure_summary(error)
    assert summary.startswith("ValueError at test_platform_isolation.py:")
    assert summary.endswith(" in parse")
    assert "Dupont" not in summary
