"""The notifier's statements reach their rows through indexes once its tables hold months of alerts.

Each test fills the schema with 20,000 alerts shaped like production's (three structures per decision, one
in ten a digest line, nearly all expanded and their deliveries sent long ago, a few failed, retrying,
pending, being sent, orphaned), its deliveries having gone through ``pending`` → ``sending`` → ``sent`` so
that the partial indexes hold the dead entries a busy day leaves behind; runs the real intake, planner and
sender statements on it while recording what they send, and reads the generic plan of each (the one
PostgreSQL keeps for a prepared statement): none may read a whole table, on a young table (no statistics
yet: default estimates), on statistics taken while every delivery was pending (a backlog's autoanalyze),
or once analysed. Everything runs in one transaction, rolled back at the end.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from devtools.sms_emulator import decided_event
from schemas import topics
from services.notifier import repository as repo
from services.notifier.intake import record_decisions
from services.notifier.jobs import AlertJob
from services.notifier.latency import first_acceptances
from services.platform.db import Conn
from tests.integration.notifier.conftest import TUESDAY_NOON, World, email_contact
from tests.integration.query_plans import full_scans_of, recorded_statements

pytestmark = pytest.mark.integration

ALERTS = 20_000
BIG_TABLES = {"alert", "delivery", "digest_item", "digest", "inbox"}
NOW = TUESDAY_NOON
STRUCTURES = ("S-A", "S-B", "S-C")
GONE_PID = 2_000_000_000
"""An owner pid no server hands out (above ``PID_MAX_LIMIT``): its session is gone."""

"""Transaction control and the claim's lock: nothing to plan."""


async def fill(conn: Conn, *, stale_statistics: bool = False) -> None:
    """Months of decisions: ``ALERTS`` alerts (a decision's three structures share a procedure; one in ten a
    digest line, on a digest but for the last ten hours'; the last 100 awaiting contacts), an inbox row per
    decision, a delivery per immediate alert. Deliveries are created ``pending``, then claimed (``sending``)
    and recorded in two more passes, as the sender does, leaving dead index entries: most end ``sent``, one
    in a hundred ``failed``, and at the end 300 are due (pending or retrying), 100 retry later, 30 are sent
    under a live lease, 10 were left by a gone session and 10 outlived their lease. ``stale_statistics``:
    the tables are analysed while every delivery is still pending, as an autoanalyze during a backlog
    would leave them."""
    await conn.execute(
        "INSERT INTO inbox (event_id, topic, received_at)"
        " SELECT md5('e' || g)::uuid, $1, $2::timestamptz - make_interval(mins => $3 - g)"
        " FROM generate_series(1, $3 / 3) g",
        topics.ORIENTATION_DECIDED,
        NOW,
        ALERTS,
    )
    await conn.execute(
        "INSERT INTO alert (alert_id, alert_key, correlation_id, procedure_id, procedure_short_ref, assignment_id,"
        " structure_id, stage, urgency, commune, mode, stage_update, state, created_at)"
        " SELECT md5('a' || g)::uuid, 'new:' || md5('s' || g)::uuid, md5('e' || g / 3)::uuid,"
        " md5('p' || g / 3)::uuid, '90-2026-' || lpad((g / 3)::text, 6, '0'), md5('s' || g)::uuid,"
        " ($3::text[])[g % 3 + 1], 'COMMANDEMENT_PAYER', 'NORMAL', 'Belfort',"
        " CASE WHEN g % 10 = 0 THEN 'DIGEST' ELSE 'IMMEDIATE' END, g % 10 = 0,"
        " CASE WHEN g > $2 - 100 THEN 'AWAITING_CONTACTS' ELSE 'EXPANDED' END,"
        " $1::timestamptz - make_interval(mins => $2 - g)"
        " FROM generate_series(1, $2::int) g",
        NOW,
        ALERTS,
        list(STRUCTURES),
    )
    # The last ten hours' digest lines are not on a digest yet (the sequences go on after a truncate: ids
    # and cut-offs are derived from the alert and its time, not from seq).
    await conn.execute(
        "INSERT INTO digest (digest_id, digest_key, structure_id, day)"
        " SELECT md5('g' || alert_id::text)::uuid, 'digest:' || alert_id, structure_id, created_at::date"
        " FROM alert WHERE mode = 'DIGEST' AND state = 'EXPANDED'"
        " AND created_at <= $1::timestamptz - interval '10 hours'",
        NOW,
    )
    await conn.execute(
        "INSERT INTO digest_item (alert_id, structure_id, contact_id, channel, recipient, digest_id, created_at)"
        " SELECT alert_id, structure_id, structure_id || '-1', 'EMAIL', structure_id || '@partner.test',"
        " CASE WHEN created_at <= $1::timestamptz - interval '10 hours' THEN md5('g' || alert_id::text)::uuid END,"
        " created_at FROM alert WHERE mode = 'DIGEST' AND state = 'EXPANDED'",
        NOW,
    )
    await conn.execute(
        "INSERT INTO delivery (delivery_id, idempotency_key, alert_id, procedure_id, structure_id, contact_id,"
        " channel, recipient, next_attempt_at, created_at)"
        " SELECT md5('d' || seq)::uuid, 'delivery:' || seq, alert_id, procedure_id, structure_id,"
        " structure_id || '-1', 'EMAIL', structure_id || '@partner.test', created_at, created_at"
        " FROM alert WHERE mode = 'IMMEDIATE' AND state = 'EXPANDED' ORDER BY seq"
    )
    if stale_statistics:
        await conn.execute(f"ANALYZE {', '.join(BIG_TABLES)}")
    last = await conn.fetchval("SELECT max(seq) FROM delivery")
    await conn.execute(
        "UPDATE delivery SET state = 'sending', attempts = 1, lease_token = md5(delivery_id::text)::uuid,"
        " lease_until = next_attempt_at + interval '2 minutes', owner_pid = pg_backend_pid(),"
        " owner_started = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())"
        " WHERE seq <= $1 - 400",
        last,
    )
    await conn.execute(
        "UPDATE delivery SET state = CASE WHEN seq % 100 = 0 THEN 'failed' ELSE 'sent' END, lease_until = NULL,"
        " lease_token = NULL, sent_at = next_attempt_at WHERE seq <= $1 - 450",
        last,
    )
    # The tail: retrying later, then being sent under a live lease, orphaned by a gone session, leased too long.
    await conn.execute(
        "UPDATE delivery SET state = 'retrying', attempts = 1, next_attempt_at = $2::timestamptz + interval '1 hour'"
        " WHERE seq > $1 - 400 AND seq <= $1 - 300",
        last,
        NOW,
    )
    await conn.execute(
        "UPDATE delivery SET lease_until = $2::timestamptz + interval '2 minutes'"
        " WHERE seq > $1 - 440 AND seq <= $1 - 400",
        last,
        NOW,
    )
    await conn.execute(
        "UPDATE delivery SET owner_pid = $2 WHERE seq > $1 - 440 AND seq <= $1 - 430",
        last,
        GONE_PID,
    )
    await conn.execute(
        "UPDATE delivery SET lease_until = $2::timestamptz - interval '1 minute'"
        " WHERE seq > $1 - 450 AND seq <= $1 - 440",
        last,
        NOW,
    )


@pytest.mark.parametrize("statistics", ["none", "stale", "fresh"])
async def test_a_decision_batch_and_a_send_round_read_no_table_whole(world: World, statistics: str) -> None:
    async with world.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await fill(conn, stale_statistics=statistics == "stale")
            if statistics == "fresh":
                await conn.execute(f"ANALYZE {', '.join(BIG_TABLES)}")
            await world.structure("S-NEW", email_contact("S-NEW-1", "s-new@partner.test"))
            with recorded_statements(conn) as statements:
                await record_decisions(conn, [decided_event("90-2026-999999", ["S-NEW"])], topics.ORIENTATION_DECIDED)
                await world.dispatcher.expand_alerts(conn)
                await world.dispatcher.plan_digests(conn)
                async with conn.transaction():
                    orphaned = await conn.fetch(
                        "SELECT delivery_id FROM delivery WHERE state = 'sending'"
                        " AND (lease_until < $1 OR owner_pid = $2)",
                        NOW,
                        GONE_PID,
                    )
                    jobs = (await repo.claim_deliveries(conn, limit=32, lease_s=120, now=NOW)).jobs
                sent, retried, failed, released = jobs[0], jobs[1], jobs[2], jobs[3]
                await repo.mark_sent(conn, [repo.SentRow(sent.delivery_id, sent.lease_token, "smtp", None)], NOW)
                assert isinstance(sent, AlertJob)
                await first_acceptances(conn, [(sent.alert.alert_id, NOW)])
                await repo.mark_retrying(
                    conn, retried, provider="smtp", error="451", next_attempt_at=NOW + timedelta(minutes=1)
                )
                await repo.mark_failed(conn, failed, provider="smtp", error="550")
                await repo.release(conn, released)
            # Orphaned rows first (the gone session's and the expired leases), then the oldest due ones.
            assert len(orphaned) == 20
            assert {job.delivery_id for job in jobs[:20]} == {row["delivery_id"] for row in orphaned}
            assert len(jobs) == 32
            assert await full_scans_of(conn, statements, BIG_TABLES) == {}
        finally:
            await transaction.rollback()
