"""Ingest's pipelined Kafka path on a real PostgreSQL: chunks in concurrent transactions decide exactly as
one transaction would (services.platform.pipeline admits a chunk once the previous one holds its locks)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import asyncpg
import pytest

from schemas import topics
from schemas.procedure import ProcedureNotice, ProcedureNotificationEvent
from services.ingest.intake import Intake, IntakeResult, Outcome, Prepared, RawInput
from services.platform.pipeline import Admit, run_pipelined

pytestmark = pytest.mark.integration

CLOCK = date(2026, 6, 20)
S01 = "s01-cj-commandement-payer"
HOLD_S = 0.1  # each transaction stays open this long after its decisions, so the next one overlaps it

Example = Callable[..., bytes]
MakeRaw = Callable[..., RawInput]
Outbox = Callable[[str], Any]


def _inputs(example: Example, make_raw: MakeRaw) -> list[RawInput]:
    """Acts whose outcomes depend on each other: a household's two acts (the second one late), an exact
    re-send, and another household at the same address."""
    neighbour = example(S01, external_ref="CP-2026-0999", tenants=[{"last_name": "Petit", "first_name": "Jean"}])
    payloads = [
        example("s04-cj-assignation"),
        example("s04-cj-commandement-payer-late"),
        example("s04-cj-assignation"),
        example(S01),
        neighbour,
    ]
    return [make_raw(payload, offset=offset) for offset, payload in enumerate(payloads)]


async def _pipelined(pool: asyncpg.Pool, intake: Intake, inputs: Sequence[RawInput]) -> list[IntakeResult]:
    results: dict[int | None, IntakeResult] = {}
    open_transactions = [0, 0]  # now, most at once

    async def write(prepared: list[Prepared], admit_next: Admit) -> None:
        async with pool.acquire() as conn, conn.transaction():
            open_transactions[0] += 1
            open_transactions[1] = max(open_transactions)
            try:
                [result] = await intake.record(conn, prepared, clock=CLOCK, on_locked=admit_next)
                results[prepared[0].raw.kafka_offset] = result
                await asyncio.sleep(HOLD_S)
            finally:
                open_transactions[0] -= 1

    await run_pipelined(
        inputs, prepare=functools.partial(intake.prepare, clock=CLOCK), write=write, chunk_size=1, yield_every=1
    )
    assert open_transactions[1] > 1, "the chunks' transactions never overlapped: the test would prove nothing"
    return [results[raw.kafka_offset] for raw in inputs]


async def _notices(outbox: Outbox) -> list[ProcedureNotice]:
    values = await outbox(topics.PROCEDURE_NOTIFICATION)
    return [ProcedureNotificationEvent.model_validate_json(value).payload for value in values]


async def test_overlapping_chunks_link_deduplicate_and_flag_as_one_transaction_would(
    pool: asyncpg.Pool, intake: Intake, make_raw: MakeRaw, example: Example, outbox: Outbox
) -> None:
    results = await _pipelined(pool, intake, _inputs(example, make_raw))

    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.DUPLICATE_IGNORED,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
    ]
    assignation, late, durand, neighbour = await _notices(outbox)
    assert late.procedure_id == assignation.procedure_id
    assert late.is_late
    assert "LATE_EARLIER_STAGE" in late.notification.warnings
    assert neighbour.procedure_id != durand.procedure_id
    assert neighbour.link_low_confidence
    assert await pool.fetchval("SELECT count(*) FROM procedure") == 3
    assert await pool.fetchval("SELECT count(*) FROM duplicate_count") == 1


async def test_a_redelivered_batch_skips_the_chunks_already_committed(
    pool: asyncpg.Pool, intake: Intake, make_raw: MakeRaw, example: Example, outbox: Outbox
) -> None:
    inputs = _inputs(example, make_raw)
    await _pipelined(pool, intake, inputs[:2])  # a first delivery that committed two chunks, then failed
    results = await _pipelined(pool, intake, inputs)
    assert [r.outcome for r in results[:2]] == [Outcome.ALREADY_PROCESSED] * 2
    assert len(await _notices(outbox)) == 4
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound") == len(inputs)
