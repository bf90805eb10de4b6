"""The Kafka path end to end: anything published ends as one kept outcome, even across a SIGKILL.

"Exactly once" here means, for every raw record published: it is stored once (one ``raw_inbound`` row per
Kafka position), decided once (one ``procedure_stage_event`` row, one ``rejection`` row or one more
duplicate count), and yields one outgoing event (one ``event_id``). The relay is at-least-once towards the
broker (a crash between the broker's acknowledgement and deleting the row publishes it again), so a topic
may carry copies of an event, always with the same ``event_id``: counted by ``event_id``, every input
appears exactly once on the output topics, and consumers dedupe copies through their inbox.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import topics

if TYPE_CHECKING:
    from tests.e2e.ingest.conftest import IngestService, TopicLog

pytestmark = pytest.mark.e2e

CJ, TERRITOIRE_HABITAT = b"12345678900011", b"99990000100015"
OUTCOMES = {"ACCEPTED", "CORRECTION", "DUPLICATE_IGNORED", "REJECTED"}
STREAM = 2_000
KILL_AFTER = 300  # raw rows stored when the process is killed: well into the stream, far from its end


async def _counts(pool: asyncpg.Pool) -> tuple[int, int]:
    """(raw rows stored, decisions recorded): a decision is a stage event, a rejection or a duplicate count,
    each written with its outgoing event in one transaction (the relay deletes outbox rows once published)."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM raw_inbound) AS raw,"
        " (SELECT count(*) FROM procedure_stage_event) + (SELECT count(*) FROM rejection)"
        " + (SELECT coalesce(sum(count), 0) FROM duplicate_count) AS decided"
    )
    assert row is not None
    return row["raw"], row["decided"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(
        st.tuples(
            st.sampled_from([topics.RAW_CJ, topics.RAW_BAILLEUR]),
            st.sampled_from([CJ, TERRITOIRE_HABITAT, b"00000000000000", b"", None]),
            st.binary(max_size=400) | st.sampled_from([b"{}", b"[]", b"null", b'{"format": "prevex.cj-act/1"}']),
        ),
        min_size=1,
        max_size=8,
    )
)
async def test_any_record_on_a_raw_topic_ends_as_one_kept_outcome(
    records: list[tuple[str, bytes | None, bytes]],
    ingest_service: IngestService,
    ingest_db: asyncpg.Pool,
    publish: Callable[..., Any],
    wait_for_raw: Callable[[int], Any],
) -> None:
    raw_before, decided_before = await _counts(ingest_db)
    for topic, key, value in records:
        await publish(topic, [(key, value)])
    await wait_for_raw(raw_before + len(records))
    assert await _counts(ingest_db) == (raw_before + len(records), decided_before + len(records))
    outcomes = await ingest_db.fetch("SELECT DISTINCT outcome FROM raw_inbound")
    assert {row["outcome"] for row in outcomes} <= OUTCOMES  # decided, never left PENDING
    assert ingest_service.processes.running("ingest")


def _stream(example: Callable[..., bytes]) -> list[tuple[str, bytes, bytes, bool]]:
    """2,000 acts, half from a CJ, half from a bailleur, one in seven invalid: ``(topic, key, payload, valid)``."""
    stream = []
    for i in range(STREAM):
        valid = i % 7 != 0
        changes: dict[str, Any] = {
            "external_ref": f"KILL-{i}",
            "tenants": [{"last_name": f"Flux{i}", "first_name": "T"}],
        }
        if i % 2:
            changes["procedure_ref"] = None
            changes["debt"] = {"amount": 1500 if valid else -1, "as_of": "2026-04-30"}  # DEBT_NEGATIVE
            changes["dwelling__address"] = {
                "line1": f"{i} rue des Tilleuls",
                "postal_code": "90300",
                "commune_insee": "90075",
            }
            payload = example("s02-bailleur-saisine-ccapex", **changes)
            stream.append((topics.RAW_BAILLEUR, TERRITOIRE_HABITAT, payload, valid))
        else:
            commune = "90010" if valid else "99999"  # COMMUNE_UNKNOWN
            changes["dwelling__address"] = {
                "line1": f"{i} rue du Flux",
                "postal_code": "90000",
                "commune_insee": commune,
            }
            stream.append((topics.RAW_CJ, CJ, example("s01-cj-commandement-payer", **changes), valid))
    return stream


def _external_ref(event: dict[str, Any]) -> str | None:
    """The stream's reference an output event is about, if it is one of the stream's."""
    payload = event["payload"]
    ref = (
        payload["notification"]["source"]["external_ref"] if "notification" in payload else payload.get("external_ref")
    )
    return ref if isinstance(ref, str) and ref.startswith("KILL-") else None


def _of_stream(event: dict[str, Any]) -> bool:
    return _external_ref(event) is not None


async def test_sigkill_in_the_middle_of_a_stream_loses_and_repeats_nothing(
    *,
    ingest_service: IngestService,
    ingest_db: asyncpg.Pool,
    publish: Callable[..., Any],
    wait_for_raw: Callable[[int], Any],
    example: Callable[..., bytes],
    outputs: TopicLog,
) -> None:
    stream = _stream(example)
    valid = {f"KILL-{i}" for i, (*_, ok) in enumerate(stream) if ok}
    raw_before, decided_before = await _counts(ingest_db)
    for topic in (topics.RAW_CJ, topics.RAW_BAILLEUR):
        await publish(topic, [(key, payload) for t, key, payload, _ in stream if t == topic])

    await wait_for_raw(raw_before + KILL_AFTER)
    ingest_service.kill()
    processed_at_kill = (await _counts(ingest_db))[0] - raw_before
    assert KILL_AFTER <= processed_at_kill < STREAM, "the process must die in the middle of the stream"
    ingest_service.start()
    await wait_for_raw(raw_before + STREAM)

    def distinct_events() -> list[dict[str, Any]]:
        outcome_topics = (topics.PROCEDURE_NOTIFICATION, topics.INGEST_REJECTED)
        return [event for topic in outcome_topics for event in outputs.distinct(topic, _of_stream)]

    await outputs.wait(lambda: len(distinct_events()) >= STREAM, f"{STREAM} distinct outcome events")

    # Stored once, decided once, one outgoing event each.
    assert await _counts(ingest_db) == (raw_before + STREAM, decided_before + STREAM)
    rows = await ingest_db.fetch(
        "SELECT kafka_topic, kafka_partition, kafka_offset, outcome FROM raw_inbound"
        " WHERE position('KILL-'::bytea IN payload) > 0"
    )
    assert len({(r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in rows}) == len(rows) == STREAM
    assert Counter(r["outcome"] for r in rows) == {"ACCEPTED": len(valid), "REJECTED": STREAM - len(valid)}
    events = await ingest_db.fetch(
        "SELECT record -> 'source' ->> 'external_ref' AS ref, revision FROM procedure_stage_event"
        " WHERE record -> 'source' ->> 'external_ref' LIKE 'KILL-%'"
    )
    assert sorted(r["ref"] for r in events) == sorted(valid)  # one stage event per valid act, no second one
    assert {r["revision"] for r in events} == {1}
    rejected = await ingest_db.fetchval("SELECT count(*) FROM rejection WHERE external_ref LIKE 'KILL-%'")
    assert rejected == STREAM - len(valid)

    # On the topics: one event id per input (copies of an event, same id, are the relay's at-least-once).
    by_input = Counter(_external_ref(event) for event in distinct_events())
    assert set(by_input) == {f"KILL-{i}" for i in range(STREAM)}
    assert set(by_input.values()) == {1}
    assert {_external_ref(e) for e in outputs.distinct(topics.PROCEDURE_NOTIFICATION, _of_stream)} == valid
    assert not outputs.distinct(topics.INGEST_DUPLICATE, lambda e: e["payload"]["external_ref"].startswith("KILL-"))
