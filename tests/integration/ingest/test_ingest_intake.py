"""Ingest's intake on a real PostgreSQL: storage, dedup, corrections, linking, rejections, batching.

What is checked here is what needs the database: rows and events written, revisions and procedures read
back in a later batch, advisory locks, Kafka positions. The decisions themselves, one batch at a time,
are unit-tested without it (tests/unit/ingest/test_ingest_procedures.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import asyncpg
import pytest

from schemas import topics
from schemas.procedure import ProcedureNotice, ProcedureNotificationEvent
from services.ingest.domain.rejections import RejectionCode, RejectionError
from services.ingest.intake import Intake, Outcome, Refusal

pytestmark = pytest.mark.integration

CJ = "12345678900011"
BAILLEUR = "99990000100015"
S01 = "s01-cj-commandement-payer"

Example = Callable[..., bytes]
MakeRaw = Callable[..., Any]
Process = Callable[..., Any]
Outbox = Callable[[str], Any]


async def _notices(outbox: Outbox) -> list[ProcedureNotice]:
    values = await outbox(topics.PROCEDURE_NOTIFICATION)
    return [ProcedureNotificationEvent.model_validate_json(value).payload for value in values]


def _cloture(example: Example, ref: str = "CL-2026-0001") -> bytes:
    return example(S01, stage="CLOTURE", external_ref=ref, act_date="2026-05-15", cloture={"reason": "DETTE_SOLDEE"})


async def test_accepted_act_is_stored_linked_and_published(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    [result] = await process(make_raw(example(S01)))
    assert result.outcome is Outcome.ACCEPTED
    [notice] = await _notices(outbox)
    assert (notice.revision, notice.is_late, notice.stage_advanced) == (1, False, True)
    assert notice.procedure_short_ref.startswith("90-2026-")
    assert notice.notification.derived.commandement_deadline == date(2026, 4, 13)
    assert result.receipt is not None
    assert result.receipt.procedure_short_ref == notice.procedure_short_ref
    assert result.receipt.notification_id == notice.notification.notification_id
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound WHERE outcome = 'ACCEPTED'") == 1
    assert await pool.fetchval("SELECT current_stage FROM procedure") == "COMMANDEMENT_PAYER"


async def test_exact_duplicate_is_counted_answered_like_the_original_and_not_published_again(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox
) -> None:
    payload = example(S01)
    [first] = await process(make_raw(payload))
    # The same act again, in a later batch and twice within one batch.
    again = await process(make_raw(payload), make_raw(payload))
    assert [r.outcome for r in again] == [Outcome.DUPLICATE_IGNORED] * 2
    assert {r.receipt for r in again} == {first.receipt}
    assert len(await outbox(topics.PROCEDURE_NOTIFICATION)) == 1
    counts = [json.loads(v)["payload"]["duplicate_count"] for v in await outbox(topics.INGEST_DUPLICATE)]
    assert counts == [1, 2]


async def test_changed_payload_under_the_same_act_is_a_correction(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox
) -> None:
    results = await process(make_raw(example(S01)), make_raw(example(S01, debt__amount=2460)))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.CORRECTION]
    notices = await _notices(outbox)
    assert [(n.revision, n.is_correction) for n in notices] == [(1, False), (2, True)]
    assert notices[0].procedure_id == notices[1].procedure_id
    # The correction itself re-sent: answered with revision 2.
    [again] = await process(make_raw(example(S01, debt__amount=2460)))
    assert again.outcome is Outcome.DUPLICATE_IGNORED
    assert again.receipt is not None
    assert (again.receipt.outcome, again.receipt.revision) == (Outcome.CORRECTION, 2)


async def test_earlier_stage_arriving_late_links_to_the_procedure_and_is_flagged(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    """S-04: the assignation creates the procedure; the older commandement links to it as late."""
    results = await process(make_raw(example("s04-cj-assignation")))
    results += await process(make_raw(example("s04-cj-commandement-payer-late")))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    first, late = await _notices(outbox)
    assert late.procedure_id == first.procedure_id
    assert (late.is_late, late.stage_advanced) == (True, False)
    assert "LATE_EARLIER_STAGE" in late.notification.warnings
    assert await pool.fetchval("SELECT current_stage FROM procedure") == "ASSIGNATION"


async def test_same_address_other_household_is_not_merged_but_flagged(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    neighbour = example(S01, external_ref="CP-2026-0999", tenants=[{"last_name": "Petit", "first_name": "Jean"}])
    await process(make_raw(example(S01)), make_raw(neighbour))
    first, second = await _notices(outbox)
    assert second.procedure_id != first.procedure_id
    assert (first.link_low_confidence, second.link_low_confidence) == (False, True)
    assert "LINK_LOW_CONFIDENCE" in second.notification.warnings
    candidate = await pool.fetchval(
        "SELECT link_candidate_procedure_id FROM procedure_stage_event WHERE notification_id = $1",
        second.notification.notification_id,
    )
    assert candidate == first.procedure_id


async def test_a_ranked_act_after_cloture_reopens_the_procedure(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    await process(make_raw(example("s04-cj-assignation")))
    cloture = example("s04-cj-assignation", stage="CLOTURE", external_ref="CL-1", cloture={"reason": "DETTE_SOLDEE"})
    await process(make_raw(cloture))
    assert await pool.fetchval("SELECT status FROM procedure") == "CLOSED"
    # A new impayé months later: a commandement, ranked below the assignation the procedure had reached.
    new_commandement = example("s04-cj-commandement-payer-late", external_ref="CP-2026-9000", act_date="2026-06-02")
    await process(make_raw(new_commandement))
    assignation, closing, reopening = await _notices(outbox)
    assert assignation.procedure_id == closing.procedure_id == reopening.procedure_id
    assert not closing.stage_advanced
    assert (reopening.reopened, reopening.stage_advanced, reopening.is_late) == (True, True, False)
    assert "REOPENED" in reopening.notification.warnings
    row = await pool.fetchrow("SELECT status, current_stage, reopened_count FROM procedure")
    assert row is not None
    assert tuple(row) == ("OPEN", "COMMANDEMENT_PAYER", 1)


async def test_an_earlier_saisine_bounds_the_earliest_assignation_date(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox
) -> None:
    """docs/domain.md §2.5: for a bailleur social, no assignation before 2 months after its CCAPEX saisine."""
    household_of_s02: dict[str, Any] = {
        "act_date": "2026-05-10",
        "tenants": [{"last_name": "Bernard", "first_name": "Inès"}],
        "dwelling__address": {"line1": "3 rue des Tilleuls", "postal_code": "90300", "commune_insee": "90075"},
        "landlord": {"type": "BAILLEUR_SOCIAL", "siren": "999900001"},
    }
    # Alone, the commandement is bounded by its own 6 weeks; the saisine comes next, then another act.
    await process(make_raw(example(S01, external_ref="CP-2026-0510", **household_of_s02)))
    await process(make_raw(example("s02-bailleur-saisine-ccapex"), BAILLEUR))
    await process(make_raw(example(S01, external_ref="CP-2026-0511", **household_of_s02)))
    alone, saisine, after = await _notices(outbox)
    assert alone.notification.derived.earliest_assignation_date == date(2026, 6, 21)  # 10 May + 6 weeks
    assert saisine.procedure_id == alone.procedure_id == after.procedure_id
    assert after.notification.derived.earliest_assignation_date == date(2026, 7, 4)  # 4 May + 2 months


@pytest.mark.parametrize(
    ("name", "emitter", "code"),
    [
        ("s07-cj-address-missing", CJ, "ADDRESS_MISSING"),
        ("s08-bailleur-debt-negative", BAILLEUR, "DEBT_NEGATIVE"),
        ("s08-bailleur-amount-invalid", BAILLEUR, "AMOUNT_INVALID"),
        (S01, "99999999900099", "EMITTER_UNKNOWN"),
        (S01, BAILLEUR, "EMITTER_MISMATCH"),
    ],
)
async def test_rejection_is_stored_and_published_with_its_code(
    *,
    process: Process,
    make_raw: MakeRaw,
    example: Example,
    outbox: Outbox,
    pool: asyncpg.Pool,
    name: str,
    emitter: str,
    code: str,
) -> None:
    [result] = await process(make_raw(example(name), emitter))
    assert result.outcome is Outcome.REJECTED
    [value] = await outbox(topics.INGEST_REJECTED)
    payload = json.loads(value)["payload"]
    assert code in [error["code"] for error in payload["errors"]]
    assert payload["external_ref"] == json.loads(example(name))["external_ref"]
    assert payload["rejection_id"] == str(result.rejection.rejection_id)
    assert await pool.fetchval("SELECT count(*) FROM rejection") == 1
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound WHERE outcome = 'REJECTED' AND payload <> ''") == 1
    # Random ids, hashes and timestamps may hold "2400" by chance: the check reads every other field.
    event = json.loads(value)
    for volatile in ("event_id", "correlation_id", "causation_id", "occurred_at"):
        event.pop(volatile)
    for volatile in ("rejection_id", "payload_sha256", "received_at"):
        event["payload"].pop(volatile)
    for personal in ("Durand", "Mulhouse", "2400"):
        assert personal not in json.dumps(event, ensure_ascii=False)


@pytest.mark.parametrize(
    "payload", [b"\xff{not json", b'{"format": "prevex.cj-act/1", "x": "\\u0000"}', b"[]", b"", b'"\\ud800"']
)
async def test_malformed_bytes_are_kept_and_rejected(
    process: Process, make_raw: MakeRaw, pool: asyncpg.Pool, payload: bytes
) -> None:
    [result] = await process(make_raw(payload))
    assert result.outcome is Outcome.REJECTED
    assert result.rejection.errors[0].code == "SCHEMA_INVALID"
    assert await pool.fetchval("SELECT payload FROM raw_inbound") == payload


@pytest.mark.parametrize("key", [None, "", "x" * 300, "a\x00b"])
async def test_any_kafka_key_ends_as_a_publishable_rejection(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox, key: str | None
) -> None:
    [result] = await process(make_raw(example(S01), key))
    assert result.outcome is Outcome.REJECTED
    [value] = await outbox(topics.INGEST_REJECTED)
    emitter_id = json.loads(value)["payload"]["emitter_id"]
    assert 0 < len(emitter_id) <= 64
    assert "\x00" not in emitter_id


async def test_an_adapter_refusal_is_stored_and_rejected(
    process: Process, make_raw: MakeRaw, pool: asyncpg.Pool
) -> None:
    refusal = Refusal(RejectionError(RejectionCode.SCHEMA_INVALID.value, "csv.line", "bad line"), "TH-1")
    [result] = await process(make_raw(b"a;b;c", BAILLEUR, refusal=refusal, source_line=7))
    assert result.outcome is Outcome.REJECTED
    assert result.rejection.external_ref == "TH-1"
    assert await pool.fetchval("SELECT source_line FROM raw_inbound") == 7


async def test_redelivered_kafka_record_is_processed_once(
    process: Process, make_raw: MakeRaw, example: Example, outbox: Outbox, pool: asyncpg.Pool
) -> None:
    payload = example(S01)
    assert [r.outcome for r in await process(make_raw(payload, offset=7))] == [Outcome.ACCEPTED]
    assert [r.outcome for r in await process(make_raw(payload, offset=7))] == [Outcome.ALREADY_PROCESSED]
    assert len(await outbox(topics.PROCEDURE_NOTIFICATION)) == 1
    assert await pool.fetchval("SELECT count(*) FROM duplicate_count") == 0


async def test_concurrent_batches_of_one_household_make_one_procedure(
    pool: asyncpg.Pool, intake: Intake, make_raw: MakeRaw, example: Example
) -> None:
    """The advisory locks serialise two transactions on the same household instead of racing to create it."""
    started = asyncio.Event()

    async def batch(payload: bytes, *, first: bool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await intake.process(conn, [make_raw(payload)], clock=date(2026, 6, 3))
            if first:
                started.set()
                await asyncio.sleep(0.2)  # hold the locks while the other transaction starts

    first = asyncio.create_task(batch(example("s04-cj-assignation"), first=True))
    await started.wait()
    await batch(example("s04-cj-commandement-payer-late"), first=False)
    await first
    assert await pool.fetchval("SELECT count(*) FROM procedure") == 1
    assert await pool.fetchval("SELECT count(*) FROM procedure_stage_event WHERE is_late") == 1
