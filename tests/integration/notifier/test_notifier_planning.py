"""The planner loop's rounds (issue 16): what one round costs PostgreSQL, and when the loop runs the next.

A round that read a short batch is the last until a NOTIFY or the idle poll: alerts recorded meanwhile announce
themselves, and what the round left waits — for its structure, or for the default referent — and is taken up
by the poll. The day's digests are looked for with one statement, locked only when some are due.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

import pytest

from schemas.orientation import AssignmentKind
from schemas.procedure import Urgency
from services.notifier import repository as repo
from services.notifier.loops import forever
from services.platform.runtime import Runtime
from tests.integration.query_plans import recorded_statements

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import ContactBuilders, World

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")


async def _alerts_by_state(world: World) -> dict[str, int]:
    rows = await world.pool.fetch("SELECT state, count(*) AS n FROM alert GROUP BY state")
    return {row["state"]: row["n"] for row in rows}


async def test_a_full_batch_runs_the_next_round_at_once_and_a_short_one_is_the_last(
    world: World, contacts: type[ContactBuilders]
) -> None:
    world.configure(expand_batch=2)
    for structure_id in ("S-A", "S-B", "S-C"):
        await world.structure(structure_id, contacts.email(f"{structure_id}-1", f"{structure_id}@partner.test"))
    await world.decide("S-A", "S-B", "S-C")
    async with world.pool.acquire() as conn:
        assert await world.dispatcher.plan(conn) is True  # two of three: more may wait
        assert await world.dispatcher.plan(conn) is False  # the third, in a short batch: nothing left
    assert await _alerts_by_state(world) == {"EXPANDED": 3}
    assert len(await world.deliveries()) == 3


async def test_a_full_batch_waiting_for_the_default_referent_is_not_read_again_at_once(world: World) -> None:
    # No default referent (the référentiel has not named one yet), and a structure without any contact.
    await world.pool.execute("UPDATE structure_directory SET is_default_referent = false")
    await world.structure("EMPTY90")
    world.configure(expand_batch=1)
    await world.decide("EMPTY90")
    async with world.pool.acquire() as conn:
        assert await world.dispatcher.plan(conn) is False
    assert await _alerts_by_state(world) == {"AWAITING_CONTACTS": 1}


async def test_an_alert_waiting_for_its_structure_is_expanded_by_the_idle_poll(
    world: World, contacts: type[ContactBuilders]
) -> None:
    rounds: asyncio.Queue[None] = asyncio.Queue()

    async def step(rt: Runtime) -> bool:  # the bootstrap's planner step, telling each round's end
        async with rt.pool.acquire() as conn:
            more = await world.dispatcher.plan(conn)
        rounds.put_nowait(None)
        return more

    runtime = cast("Runtime", SimpleNamespace(pool=world.pool))
    await world.decide("LATE90")  # unknown: waited for during contact_wait_s (300 s)
    loop = asyncio.create_task(forever("planner", step, 0.05, wake_on=repo.ALERTS_CHANNEL)(runtime))
    try:
        # The référentiel record comes later and wakes no planner: the poll finds the alert ready.
        await world.structure("LATE90", contacts.email("LATE90-1", "late@partner.test"))
        async with asyncio.timeout(30):
            while not await world.deliveries():
                await rounds.get()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    [delivery] = await world.deliveries()
    assert (delivery["structure_id"], delivery["recipient"]) == ("LATE90", "late@partner.test")


async def test_a_decision_is_planned_in_one_transaction_of_three_statements_and_one_digest_probe(
    world: World,
) -> None:
    await world.decide("CCAPEX90", ref="90-2026-000001")
    async with world.pool.acquire() as conn:
        await world.dispatcher.plan(conn)  # the connection's first use of each statement and type
        await world.decide("CCAPEX90", ref="90-2026-000002")
        with recorded_statements(conn) as statements:
            assert await world.dispatcher.plan(conn) is False
    kinds = [statement.split(None, 1)[0].rstrip(";") for statement in statements]
    # The batch, the structures and the default referent, what they became (deliveries, digest items, the
    # alerts marked expanded, the sender's NOTIFY) — then whether a digest is due (12:00: past 08:30).
    assert kinds == ["BEGIN", "SELECT", "SELECT", "WITH", "COMMIT", "SELECT"]
    assert len(await world.deliveries()) == 2


async def test_the_digest_probe_locks_nothing_on_a_day_planned_and_lets_the_digests_due_be_planned(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("CD90", contacts.email("CD90-PREVENTION", "prevention@cd90.test"))
    world.clock.now = datetime(2026, 3, 3, 15, 0, tzinfo=PARIS)
    await world.decide("CD90", kind=AssignmentKind.STAGE_UPDATE, urgency=Urgency.LOW)
    async with world.pool.acquire() as conn:
        await world.dispatcher.plan(conn)  # a digest line, for tomorrow's digest
        world.clock.now = datetime(2026, 3, 4, 8, 30, tzinfo=PARIS)
        assert await world.dispatcher.plan_digests(conn) == 1
        with recorded_statements(conn) as statements:
            assert await world.dispatcher.plan_digests(conn) == 0
    assert [statement.split(None, 1)[0] for statement in statements] == ["SELECT"]  # no BEGIN: no lock taken
    [digest] = await world.deliveries()
    assert (digest["recipient"], digest["digest_id"] is not None) == ("prevention@cd90.test", True)
