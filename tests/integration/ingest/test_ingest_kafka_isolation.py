"""Ingest's Kafka intake (the real ``bootstrap.build`` wiring) on a broker and a database of its own, with
hostile records: keys and headers that are not text, and a record whose processing raises. Every record
is stored, then accepted or rejected with a code; the consumer group never commits past an unstored one."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from structlog.testing import capture_logs

from schemas import topics
from schemas.procedure import ProcedureNotification
from services.ingest import intake as intake_module
from services.ingest.bootstrap import GROUP_ID, build
from services.ingest.cli import EXIT_OK, run
from services.ingest.domain import procedures as procedures_module

# The functions procedures and intake import, which the tests patch where they are used.
from services.ingest.domain.linking import with_saisine as real_with_saisine
from services.ingest.domain.normalise import normalise as real_normalise
from services.ingest.intake import INTERNAL_ERROR, SCHEMA
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

EMITTERS_FILE = Path(__file__).resolve().parents[3] / "deploy" / "emitters" / "emitters.yaml"
CJ = b"12345678900011"
BINARY = b"\x00\xff\x80"
WAIT_S = 90.0
"""Upper bound of every wait: a guard against hanging, not a performance assertion."""

Header = tuple[str, bytes | None]


@dataclass
class RunningIngest:
    service: Any  # tests/integration/conftest.py InProcess
    producer: AIOKafkaProducer

    @property
    def pool(self) -> asyncpg.Pool:
        pool: asyncpg.Pool = self.service.pool
        return pool

    @property
    def settings(self) -> IngestSettings:
        settings: IngestSettings = self.service.settings
        return settings

    async def publish(self, records: list[tuple[bytes | None, bytes, list[Header]]]) -> list[int]:
        """Publish on partition 0 of the CJ raw topic; the offsets the broker gave the records."""
        futures = [
            await self.producer.send(topics.RAW_CJ, value, key=key, partition=0, headers=headers)
            for key, value, headers in records
        ]
        return [metadata.offset for metadata in await asyncio.gather(*futures)]

    async def outcomes(self, offsets: list[int]) -> dict[int, asyncpg.Record]:
        """The raw rows stored for ``offsets``, waited for (the database has no feed: polled)."""
        async with asyncio.timeout(WAIT_S):
            rows = await self._rows(offsets)
            while len(rows) < len(offsets):
                await asyncio.sleep(0.05)
                rows = await self._rows(offsets)
        return rows

    async def _rows(self, offsets: list[int]) -> dict[int, asyncpg.Record]:
        found = await self.pool.fetch(
            "SELECT r.kafka_offset, r.outcome, r.kafka_key, r.kafka_headers, r.emitter_key, j.errors"
            " FROM raw_inbound r LEFT JOIN rejection j USING (raw_id)"
            " WHERE r.kafka_topic = $1 AND r.kafka_partition = 0 AND r.kafka_offset = ANY($2::bigint[])",
            topics.RAW_CJ,
            offsets,
        )
        return {row["kafka_offset"]: row for row in found}

    async def committed(self) -> int:
        committed: int = await self.service.committed(GROUP_ID, topics.RAW_CJ)
        return committed

    async def assert_nothing_committed_unstored(self, first: int) -> None:
        """Every offset from ``first`` up to the group's committed offset has its raw row."""
        committed = await self.committed()
        stored = await self._rows(list(range(first, committed)))
        assert sorted(stored) == list(range(first, committed))


@pytest.fixture(scope="module")
async def ingest(serve_in_process: Callable[..., Any]) -> AsyncIterator[RunningIngest]:
    async with serve_in_process(
        build, IngestSettings, SCHEMA, emitters_path=EMITTERS_FILE, http_enabled=False
    ) as service:
        producer = AIOKafkaProducer(bootstrap_servers=service.bootstrap_servers, acks="all", linger_ms=5)
        await producer.start()
        try:
            yield RunningIngest(service, producer)
        finally:
            await producer.stop()


def _act(example: Callable[..., bytes], ref: str, *, commune: str = "90010") -> bytes:
    return example(
        "s01-cj-commandement-payer",
        external_ref=ref,
        tenants=[{"last_name": f"Hostile{ref}", "first_name": "T"}],
        dwelling__address={"line1": f"{ref} rue du Flux", "postal_code": "90000", "commune_insee": commune},
    )


def _codes(row: asyncpg.Record) -> list[tuple[str, str | None]]:
    return [(error["code"], error["field"]) for error in row["errors"]]


async def test_odd_keys_and_headers_lose_nothing(ingest: RunningIngest, example: Callable[..., bytes]) -> None:
    run_id = uuid.uuid4().hex[:6]
    binary_headers: list[Header] = [("x-bin", BINARY)]
    records: list[tuple[bytes | None, bytes, list[Header]]] = [
        (CJ, _act(example, f"BIN-{run_id}-{n}"), binary_headers) for n in range(5)
    ]
    records += [(CJ, _act(example, f"OK-{run_id}-{n}"), []) for n in range(10)]
    records.append((CJ, _act(example, f"NULL-{run_id}"), [("x-null", None)]))
    records.append((b"\xff\xfe" + CJ, _act(example, f"KEY-{run_id}"), []))
    records.append((CJ, _act(example, f"BAD-{run_id}", commune="99999"), binary_headers))

    offsets = await ingest.publish(records)
    rows = await ingest.outcomes(offsets)

    *valid, binary_key, invalid = [rows[offset] for offset in offsets]
    assert [row["outcome"] for row in valid] == ["ACCEPTED"] * 16
    assert valid[0]["kafka_headers"] == [{"name": "x-bin", "base64": "AP+A"}]  # kept as received
    assert valid[15]["kafka_headers"] == [{"name": "x-null", "value": None}]
    assert valid[5]["kafka_headers"] is None
    assert valid[5]["kafka_key"] is None
    assert binary_key["outcome"] == "REJECTED"
    assert bytes(binary_key["kafka_key"]) == b"\xff\xfe" + CJ
    assert _codes(binary_key) == [("EMITTER_UNKNOWN", None), ("KAFKA_KEY_NOT_TEXT", None)]
    assert invalid["outcome"] == "REJECTED"
    assert ("KAFKA_HEADER_NOT_TEXT", "headers.x-bin") in _codes(invalid)
    assert ("COMMUNE_UNKNOWN", "dwelling.address.commune_insee") in _codes(invalid)
    await ingest.assert_nothing_committed_unstored(offsets[0])


async def test_a_record_whose_processing_raises_is_rejected_and_the_batch_goes_on(
    ingest: RunningIngest, example: Callable[..., bytes], tmp_path: Path
) -> None:
    run_id = uuid.uuid4().hex[:6]
    poison_ref = f"POISON-{run_id}"
    refs = [f"ISO-{run_id}-{n}" for n in range(4)] + [poison_ref] + [f"ISO-{run_id}-{n}" for n in range(4, 9)]

    def with_saisine(record: ProcedureNotification, *args: Any, **kwargs: Any) -> ProcedureNotification:
        # Raises inside the transaction (after the raw rows were prepared), for the marked act only.
        if record.source.external_ref == poison_ref:
            raise ArithmeticError("a bug reached by one act")
        return real_with_saisine(record, *args, **kwargs)

    with mock.patch.object(procedures_module, "with_saisine", with_saisine), capture_logs() as logs:
        offsets = await ingest.publish([(CJ, _act(example, ref), []) for ref in refs])
        rows = await ingest.outcomes(offsets)

    outcomes = [rows[offset]["outcome"] for offset in offsets]
    assert outcomes == ["ACCEPTED"] * 4 + ["REJECTED"] + ["ACCEPTED"] * 5
    poisoned = rows[offsets[4]]
    assert _codes(poisoned) == [(INTERNAL_ERROR, None)]
    set_aside = [line for line in logs if line["event"] == "record_set_aside"]
    assert [line["offset"] for line in set_aside] == [offsets[4]]  # logged once, not on every try
    assert "ArithmeticError at test_ingest_kafka_isolation.py" in set_aside[0]["error"]
    assert not [line for line in logs if line.get("log_level") == "error" and line is not set_aside[0]]
    await ingest.assert_nothing_committed_unstored(offsets[0])

    # Once the code is fixed, ops re-submit the stored payload as it was, and it is accepted.
    rejection_id = await ingest.pool.fetchval(
        "SELECT rejection_id FROM rejection JOIN raw_inbound USING (raw_id) WHERE kafka_offset = $1", offsets[4]
    )
    out = io.StringIO()
    code = await run(["rejections", "resubmit", str(rejection_id), "--stored"], settings=ingest.settings, out=out)
    assert code == EXIT_OK, out.getvalue()
    resubmitted = await ingest.pool.fetchrow(
        "SELECT outcome, channel FROM raw_inbound WHERE corrects_rejection_id = $1", rejection_id
    )
    assert resubmitted is not None
    assert (resubmitted["outcome"], resubmitted["channel"]) == ("ACCEPTED", "cli:resubmit")


async def test_a_validation_that_raises_rejects_that_input_alone_on_every_path(
    process: Callable[..., Any], make_raw: Callable[..., Any], example: Callable[..., bytes]
) -> None:

    def normalise(document: bytes, **kwargs: Any) -> Any:
        if b"RAISES" in document:
            raise OverflowError("date value out of range")
        return real_normalise(document, **kwargs)

    inputs = [make_raw(_act(example, ref), offset=n) for n, ref in enumerate(["V-1", "RAISES-2", "V-3"])]
    with mock.patch.object(intake_module, "normalise", normalise), capture_logs() as logs:
        results = await process(*inputs)

    assert [result.outcome.value for result in results] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert results[1].rejection is not None
    assert [error.code for error in results[1].rejection.errors] == [INTERNAL_ERROR]
    errors = [line for line in logs if line["log_level"] == "error"]
    assert [line["event"] for line in errors] == ["raw_input_internal_error"]
    assert "date value out of range" not in str(errors)  # the message may quote the input: not logged


async def test_a_record_that_cannot_even_be_stored_rejected_is_parked(
    ingest: RunningIngest, example: Callable[..., bytes]
) -> None:
    run_id = uuid.uuid4().hex[:6]
    poison_ref = f"UNSTORABLE-{run_id}"

    def with_saisine(record: ProcedureNotification, *args: Any, **kwargs: Any) -> ProcedureNotification:
        if record.source.external_ref == poison_ref:
            raise ArithmeticError("a bug reached by one act")
        return real_with_saisine(record, *args, **kwargs)

    async def record_internal_error(*_: Any, **__: Any) -> Any:
        raise UnicodeError("the rejection cannot be stored either")

    with (
        mock.patch.object(procedures_module, "with_saisine", with_saisine),
        mock.patch.object(intake_module.Intake, "record_internal_error", record_internal_error),
    ):
        offsets = await ingest.publish([(CJ, _act(example, ref), []) for ref in (f"P-{run_id}", poison_ref)])
        await ingest.outcomes(offsets[:1])
        async with asyncio.timeout(WAIT_S):
            parked = await ingest.pool.fetchrow('SELECT error FROM dead_letter WHERE "offset" = $1', offsets[1])
            while parked is None:
                await asyncio.sleep(0.05)
                parked = await ingest.pool.fetchrow('SELECT error FROM dead_letter WHERE "offset" = $1', offsets[1])

    assert parked["error"].startswith("processing failed: UnicodeError at test_ingest_kafka_isolation.py:")
    async with asyncio.timeout(WAIT_S):  # committed once the handler returned: the batch is not retried
        committed = await ingest.committed()
        while committed <= offsets[1]:
            await asyncio.sleep(0.05)
            committed = await ingest.committed()
