"""Alerts to partners on real PostgreSQL, SMTP and the SMS provider emulator: exactly once, retries within
their budget, fallback F3 with its receipts, quiet hours, daily digests, per-procedure order, leases.

The dispatcher's clock is the test's: retries become due by moving it, never by sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from devtools import PostgresEndpoint
from devtools.sms_emulator import Reply, decided_event, truce_end_event
from schemas import topics
from schemas.notification import Channel
from schemas.orientation import AssignmentKind, DecisionTrigger
from schemas.procedure import Urgency
from schemas.stages import Stage
from services.notifier import repository as repo

if TYPE_CHECKING:
    from tests.integration.notifier.conftest import ContactBuilders, World

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
MOBILE = "+33600000001"
SENT, FAILED, UNDELIVERABLE = topics.NOTIFICATION_SENT, topics.NOTIFICATION_FAILED, topics.NOTIFICATION_UNDELIVERABLE


def _text(mail: Any) -> str:
    parts = [part.get_content() for part in mail.message.walk() if part.get_content_maintype() == "text"]
    return str(mail.message["Subject"]) + "\n" + "\n".join(parts)


async def test_a_decision_alerts_every_enabled_contact_once_with_a_sent_receipt(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure(
        "FSL90",
        contacts.email("FSL90-REFERENT", "referent@fsl90.test", generic=False),
        contacts.email("FSL90-MAIL", "fsl@cd90.test"),
    )
    await world.structure("MED", contacts.sms("MED-PERM", MOBILE))
    decided = await world.decide("FSL90", "MED", ref="90-2026-000007")
    await world.run()

    assert sorted(r for mail in world.smtp.messages for r in mail.rcpt_tos) == ["fsl@cd90.test", "referent@fsl90.test"]
    [sms] = world.sms.received
    assert sms.recipient == MOBILE
    # The link carries a signed token for the assignment, not the reference (services/platform/links.py).
    assert re.fullmatch(r".* https://prevex\.example/d/[A-Za-z0-9_-]{20}", sms.text)
    sent = await world.receipts(SENT)
    assert sorted((r["structure_id"], r["contact_id"], r["channel"], r["provider"]) for r in sent) == [
        ("FSL90", "FSL90-MAIL", "EMAIL", "smtp"),
        ("FSL90", "FSL90-REFERENT", "EMAIL", "smtp"),
        ("MED", "MED-PERM", "SMS", "ovh"),
    ]
    assert all(r["attempt_count"] == 1 and r["provider_message_id"] for r in sent)
    assert {r["assignment_id"] for r in sent} == {str(a.assignment_id) for a in decided.payload.assignments}
    assert [d["state"] for d in await world.deliveries()] == ["sent"] * 3


async def test_a_redelivered_or_republished_decision_sends_nothing_twice(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "fsl@cd90.test"))
    decided = await world.decide("FSL90")
    await world.run()
    assert await world.record(decided) == 0  # the same event again: the inbox knows it
    republished = decided.model_copy(update={"event_id": uuid.uuid4()})
    assert await world.record(republished) == 0  # same assignment under a new event id: the alert key knows it
    await world.run()
    assert len(world.smtp.messages) == 1


async def test_a_correction_re_running_the_same_structures_alerts_nobody(
    world: World, contacts: type[ContactBuilders]
) -> None:
    # S-03, second step: the corrected notice is oriented to the same structures, which already hold it.
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "fsl@cd90.test"))
    await world.decide("FSL90", kind=AssignmentKind.STAGE_UPDATE, is_correction=True, urgency=Urgency.CRITICAL)
    await world.run()
    assert world.smtp.messages == []
    assert await world.pool.fetchval("SELECT count(*) FROM alert") == 0


async def test_a_ccapex_override_alerts_only_the_structure_it_added(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "fsl@cd90.test"))
    await world.structure("CD90", contacts.email("CD90-PREVENTION", "prevention.expulsions@cd90.test"))
    decided = decided_event("90-2026-000042", ["FSL90", "CD90"], urgency=Urgency.HIGH)
    repeated, added = decided.payload.assignments
    payload = decided.payload.model_copy(
        update={
            "trigger": DecisionTrigger.CCAPEX_OVERRIDE,
            "assignments": [repeated.model_copy(update={"kind": AssignmentKind.STAGE_UPDATE}), added],
        }
    )
    assert await world.record(decided.model_copy(update={"payload": payload})) == 1
    await world.run()
    assert [rcpt for mail in world.smtp.messages for rcpt in mail.rcpt_tos] == ["prevention.expulsions@cd90.test"]


async def test_a_truce_end_reminder_alerts_holders_and_added_structures_at_once_exactly_once(
    world: World, contacts: type[ContactBuilders]
) -> None:
    # S-06: the procedure moved on to the commandement de quitter (a NORMAL stage update, for the digest);
    # on 1 March orientation repeats that decision for the end of the trêve and adds the SIAO.
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "fsl@cd90.test"))
    await world.structure("SIAO90", contacts.email("SIAO90-COORDINATION", "coordination@siao90.test"))
    first = await world.decide("FSL90", ref="90-2025-000042", stage=Stage.ASSIGNATION)
    same_file: dict[str, Any] = {
        "procedure_id": first.payload.procedure_id,
        "assignment_ids": [a.assignment_id for a in first.payload.assignments],
    }
    moved_on = await world.decide(
        "FSL90", ref="90-2025-000042", stage=Stage.COMMANDEMENT_QUITTER, kind=AssignmentKind.STAGE_UPDATE, **same_file
    )
    reminder = truce_end_event(moved_on, ["SIAO90"], truce_ends=date(2026, 4, 1))
    assert await world.record(reminder) == 2
    assert await world.record(reminder.model_copy(update={"event_id": uuid.uuid4()})) == 0  # republished

    held, added = reminder.payload.assignments
    rows = await world.pool.fetch(
        "SELECT alert_key, structure_id, mode, stage_update, truce_end FROM alert ORDER BY seq"
    )
    assert [tuple(r) for r in rows] == [
        (f"new:{held.assignment_id}", "FSL90", "IMMEDIATE", False, False),
        (f"update:{held.assignment_id}:{moved_on.payload.notification_id}", "FSL90", "DIGEST", True, False),
        (f"truce-end:{held.assignment_id}:2026-04-01", "FSL90", "IMMEDIATE", True, True),
        (f"truce-end:{added.assignment_id}:2026-04-01", "SIAO90", "IMMEDIATE", False, True),
    ]

    await world.run()  # the stage update waits for tomorrow's digest; the reminders go now
    [_, to_holder] = world.mails_to("fsl@cd90.test")
    [to_added] = world.mails_to("coordination@siao90.test")
    for mail, intro in (
        (to_holder, "Rappel : un dossier que suit votre structure arrive à la sortie de la trêve hivernale."),
        (to_added, "vous est orienté à l'approche de la sortie de la trêve hivernale."),
    ):
        assert str(mail.message["Subject"]).startswith(
            "[Prévention expulsions 90] Fin de trêve – Dossier 90-2025-000042"
        )
        assert intro in _text(mail)
        assert "l'expulsion est possible à partir du 01/04/2026" in _text(mail)


async def test_smtp_451_twice_then_accepted_sends_exactly_one_email(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "flaky@fsl90.test"))
    world.smtp_replies.script("flaky@fsl90.test", "451 4.3.0 Try again later", "451 4.3.0 Try again later")
    await world.decide("FSL90")
    await world.run()

    assert len(world.mails_to("flaky@fsl90.test")) == 1
    failed = await world.receipts(FAILED)
    assert [(r["attempt_count"], r["will_retry"], r["error"]["code"]) for r in failed] == [
        (1, True, "SMTP_TRANSIENT:451"),
        (2, True, "SMTP_TRANSIENT:451"),
    ]
    [sent] = await world.receipts(SENT)
    assert sent["attempt_count"] == 3
    assert await world.receipts(UNDELIVERABLE) == []


async def test_smtp_550_falls_back_to_the_generic_contact_and_says_so(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure(
        "FSL90",
        contacts.email("FSL90-REFERENT", "bounce@fsl90.test", generic=False),
        contacts.email("FSL90-MAIL", "fsl@cd90.test"),
    )
    world.smtp_replies.script("bounce@fsl90.test", "550 5.1.1 <bounce@fsl90.test>: Recipient address rejected")
    await world.decide("FSL90")
    await world.run()

    assert world.mails_to("bounce@fsl90.test") == []
    to_generic = world.mails_to("fsl@cd90.test")
    assert len(to_generic) == 2  # its own alert, and the fallback for the referent that bounced
    [fallback_mail] = [m for m in to_generic if "Repli" in str(m.message["Subject"])]
    assert "le contact habituel de votre structure n'a pas pu être joint" in _text(fallback_mail)
    [undeliverable] = await world.receipts(UNDELIVERABLE)
    assert undeliverable["cause"] == "DELIVERY_FAILED"
    assert (undeliverable["contact_id"], undeliverable["attempt_count"]) == ("FSL90-REFERENT", 1)
    assert undeliverable["error"]["code"] == "SMTP_PERMANENT:550"
    assert undeliverable["error"]["message"] == "5.1.1 <[email]>: Recipient address rejected"
    assert undeliverable["fallback"] == {"kind": "GENERIC_CONTACT", "structure_id": "FSL90"}
    failed = await world.receipts(FAILED)
    assert [(r["contact_id"], r["will_retry"]) for r in failed] == [("FSL90-REFERENT", False)]


async def test_sms_provider_500_three_times_then_200_sends_exactly_one_sms(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("MED", contacts.sms("MED-PERM", MOBILE))
    world.sms.script(MOBILE, Reply.server_error(), Reply.server_error(), Reply.server_error())
    await world.decide("MED")
    await world.run()

    assert world.sms.attempts(MOBILE) == 4
    assert len(world.sms.received) == 1
    [sent] = await world.receipts(SENT)
    assert (sent["channel"], sent["provider"], sent["attempt_count"]) == ("SMS", "ovh", 4)
    assert sent["provider_message_id"] == world.sms.received[0].message_id
    assert [r["error"]["code"] for r in await world.receipts(FAILED)] == ["HTTP_TRANSIENT:500"] * 3


@pytest.mark.parametrize("provider", ["ovh", "brevo"])
async def test_an_invalid_number_falls_back_to_the_default_referent(
    world: World, contacts: type[ContactBuilders], provider: str
) -> None:
    world.configure(
        sms_provider=provider, brevo_endpoint=world.sms.brevo_endpoint, brevo_api_key=world.sms.brevo_api_key
    )
    await world.structure("MED", contacts.sms("MED-PERM", MOBILE))  # SMS only, no generic contact
    world.sms.script(MOBILE, Reply.invalid())
    await world.decide("MED", ref="90-2026-000099")
    await world.run()

    assert world.sms.received == []
    assert world.sms.attempts(MOBILE) == 1  # permanent: not retried
    [mail] = world.mails_to("ccapex90@pref.test")
    text = _text(mail)
    assert "Repli" in str(mail.message["Subject"])
    assert "la structure « Structure MED » n'a pu être jointe" in text
    assert "90-2026-000099" in text
    [undeliverable] = await world.receipts(UNDELIVERABLE)
    assert (undeliverable["channel"], undeliverable["provider"], undeliverable["error"]["code"]) == (
        "SMS",
        provider,
        "INVALID_NUMBER",
    )
    assert undeliverable["fallback"] == {"kind": "DEFAULT_REFERENT", "structure_id": "CCAPEX90"}
    [sent] = await world.receipts(SENT)
    assert (sent["structure_id"], sent["contact_id"]) == ("CCAPEX90", "CCAPEX90-SECRETARIAT")


async def test_transient_errors_are_retried_within_the_budget_then_fall_back(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "down@fsl90.test"))
    world.smtp_replies.script("down@fsl90.test", *["421 4.3.2 Service shutting down"] * 20)
    start = world.clock.now
    await world.decide("FSL90")
    await world.run()

    failed = await world.receipts(FAILED)
    assert [r["attempt_count"] for r in failed] == list(range(1, 9))
    assert [r["will_retry"] for r in failed] == [True] * 7 + [False]
    last_retry = max(datetime.fromisoformat(r["next_attempt_at"]) for r in failed if r["will_retry"])
    assert last_retry - start <= timedelta(seconds=world.settings.retry_window_s)
    waits = [
        datetime.fromisoformat(later["next_attempt_at"]) - datetime.fromisoformat(earlier["next_attempt_at"])
        for earlier, later in itertools.pairwise(failed[:7])
    ]
    assert waits == sorted(waits), "exponential backoff: waits grow"
    [undeliverable] = await world.receipts(UNDELIVERABLE)
    assert undeliverable["attempt_count"] == 8
    assert undeliverable["fallback"] == {"kind": "DEFAULT_REFERENT", "structure_id": "CCAPEX90"}
    assert len(world.mails_to("ccapex90@pref.test")) == 1


async def test_a_provider_that_hangs_is_a_timeout_and_retried(world: World, contacts: type[ContactBuilders]) -> None:
    await world.structure("MED", contacts.sms("MED-PERM", MOBILE))
    world.sms.script(MOBILE, Reply.hang(1.5))
    await world.decide("MED")
    await world.run()
    assert [r["error"]["code"] for r in await world.receipts(FAILED)] == ["TIMEOUT"]
    assert len(world.sms.received) == 1


async def test_a_structure_without_deliverable_contact_alerts_the_default_referent(world: World) -> None:
    await world.structure("EMPTY90")  # known, but no contact
    await world.decide("EMPTY90", ref="90-2026-000555")
    await world.run()

    [mail] = world.mails_to("ccapex90@pref.test")
    assert "la structure « Structure EMPTY90 » n'a pu être jointe" in _text(mail)
    # No workspace token: it would sign the default referent in as EMPTY90.
    assert not re.search(r"/d/[A-Za-z0-9_-]{20}", _text(mail))
    assert "https://prevex.example/d" in _text(mail)
    [undeliverable] = await world.receipts(UNDELIVERABLE)
    assert undeliverable == undeliverable | {
        "cause": "NO_DELIVERABLE_CONTACT",
        "delivery_id": None,
        "contact_id": None,
        "channel": None,
        "provider": None,
        "attempt_count": 0,
        "structure_id": "EMPTY90",
        "fallback": {"kind": "DEFAULT_REFERENT", "structure_id": "CCAPEX90"},
    }


async def test_an_unknown_structure_is_waited_for_then_handed_to_the_default_referent(world: World) -> None:
    world.configure(expand_batch=1)
    await world.decide("NOT-YET-KNOWN")
    await world.decide("CCAPEX90", ref="90-2026-000321")
    await world.step()
    # Waiting for the référentiel record, without holding back the alert recorded after it.
    [mail] = world.smtp.messages
    assert "90-2026-000321" in _text(mail)
    world.smtp.clear()
    # Its age is measured by the database clock that stamped it: make it as old as the wait.
    await world.pool.execute(
        "UPDATE alert SET created_at = created_at - make_interval(secs => $1)", world.settings.contact_wait_s
    )
    await world.run()
    assert len(world.mails_to("ccapex90@pref.test")) == 1
    [undeliverable] = await world.receipts(UNDELIVERABLE)
    assert undeliverable["cause"] == "NO_DELIVERABLE_CONTACT"


async def test_sms_wait_for_the_end_of_quiet_hours_unless_critical(
    world: World, contacts: type[ContactBuilders]
) -> None:
    world.clock.now = datetime(2026, 3, 7, 21, 0, tzinfo=PARIS).astimezone(UTC)  # Saturday 21:00
    await world.structure("MED", contacts.sms("MED-PERM", MOBILE, quiet=("19:00", "09:00")))
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "fsl@cd90.test"))
    await world.decide("MED", "FSL90", urgency=Urgency.HIGH)
    await world.decide("MED", urgency=Urgency.CRITICAL, ref="90-2026-000666")
    await world.step()

    assert len(world.smtp.messages) == 1  # email has no quiet hours
    [critical] = world.sms.received  # CRITICAL goes at once
    assert "TRES URGENT" in critical.text
    waiting = [d for d in await world.deliveries() if d["state"] == "pending"]
    # The contact's own window (until 09:00) and Sunday: Monday 09:00 in Paris.
    assert [d["next_attempt_at"] for d in waiting] == [datetime(2026, 3, 9, 9, 0, tzinfo=PARIS)]
    await world.run()
    assert len(world.sms.received) == 2
    assert world.clock.now == datetime(2026, 3, 9, 9, 0, tzinfo=PARIS)


async def test_low_urgency_stage_updates_go_into_one_daily_digest_per_contact(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("CD90", contacts.email("CD90-PREVENTION", "prevention.expulsions@cd90.test"))
    world.clock.now = datetime(2026, 3, 3, 15, 0, tzinfo=PARIS).astimezone(UTC)
    update = AssignmentKind.STAGE_UPDATE
    await world.decide("CD90", kind=update, urgency=Urgency.NORMAL, ref="90-2026-000011", stage=Stage.ASSIGNATION)
    await world.decide("CD90", kind=update, urgency=Urgency.LOW, ref="90-2026-000012", stage=Stage.DSF_TRANSMIS)
    await world.decide("CD90", kind=update, urgency=Urgency.HIGH, ref="90-2026-000013", stage=Stage.DEMANDE_CFP)
    await world.run()
    [immediate] = world.smtp.messages  # HIGH: at once, as a stage update
    assert "Mise à jour" in str(immediate.message["Subject"])
    assert "90-2026-000013" in _text(immediate)

    world.clock.now = datetime(2026, 3, 4, 8, 29, tzinfo=PARIS).astimezone(UTC)
    await world.run()
    assert len(world.smtp.messages) == 1  # not before the digest time
    world.clock.now = datetime(2026, 3, 4, 8, 30, tzinfo=PARIS).astimezone(UTC)
    await world.run()
    await world.run()  # planning twice changes nothing
    [_, digest] = world.smtp.messages
    text = _text(digest)
    assert "Mises à jour du 04/03/2026 – 2 dossiers" in str(digest.message["Subject"])
    assert "90-2026-000011" in text
    assert "90-2026-000012" in text
    assert "90-2026-000013" not in text
    sent = await world.receipts(SENT)
    digest_receipts = [r for r in sent if r["procedure_short_ref"] in {"90-2026-000011", "90-2026-000012"}]
    assert len(digest_receipts) == 2
    assert len({r["delivery_id"] for r in digest_receipts}) == 1


async def test_one_structure_receives_a_procedure_in_order_never_two_at_once(world: World) -> None:
    # Two deliveries of one procedure to one structure, one of another procedure, one of the same procedure to
    # another structure: P's second delivery to CCAPEX90 is not claimable while its first is being sent; the
    # other procedure and the other structure are.
    procedure_p, procedure_q = uuid.uuid4(), uuid.uuid4()
    now = world.clock.now
    alert = await world.decide("CCAPEX90", procedure_id=procedure_p)
    alert_id = await world.pool.fetchval("SELECT alert_id FROM alert")
    rows = [
        repo.NewDelivery(f"k{i}", structure, "C", Channel.EMAIL, f"r{i}@x.test", now, alert_id=alert_id, procedure_id=p)
        for i, (structure, p) in enumerate(
            (("CCAPEX90", procedure_p), ("CCAPEX90", procedure_p), ("CCAPEX90", procedure_q), ("DEPT90", procedure_p))
        )
    ]
    async with world.pool.acquire() as conn:
        await world.pool.execute("UPDATE alert SET state = 'EXPANDED'")
        await repo.insert_deliveries(conn, rows)
        async with conn.transaction():
            first = await repo.claim_deliveries(conn, limit=1, lease_s=30, now=now)
        async with conn.transaction():
            second = await repo.claim_deliveries(conn, limit=10, lease_s=30, now=now)
        async with conn.transaction():
            third = await repo.claim_deliveries(conn, limit=10, lease_s=30, now=now)
    assert [j.recipient for j in first.jobs] == ["r0@x.test"]
    # P is busy at CCAPEX90: its second delivery there waits; DEPT90's about P goes meanwhile. The short claim
    # says which group it held back: the sender claims again once that group's delivery is recorded.
    assert sorted(j.recipient for j in second.jobs) == ["r2@x.test", "r3@x.test"]
    assert second.blocked == {(procedure_p, "CCAPEX90")}
    assert third == repo.Claim([], frozenset({(procedure_p, "CCAPEX90")}))
    assert alert.payload.procedure_id == procedure_p


async def test_a_crashed_send_is_claimed_again_after_its_lease_and_a_late_start_is_given_back(world: World) -> None:
    await world.decide("CCAPEX90")
    async with world.pool.acquire() as conn:
        await world.dispatcher.expand_alerts(conn)
        async with conn.transaction():
            [leased] = (await repo.claim_deliveries(conn, limit=5, lease_s=30, now=world.clock.now)).jobs
        # The process "dies" here: no outcome is recorded. Before the lease ends nobody else may take it.
        async with conn.transaction():
            assert (await repo.claim_deliveries(conn, limit=5, lease_s=30, now=world.clock.now)).jobs == []
    world.clock.advance(seconds=31)
    report = await world.dispatcher.send_due(world.pool)
    assert (report.claimed, report.sent) == (1, 1)
    [row] = await world.deliveries()
    assert (row["state"], row["attempts"]) == ("sent", 2)
    assert row["delivery_id"] == leased.delivery_id

    # A lease too short to hold a whole send: the delivery is given back untouched, not attempted.
    await world.decide("CCAPEX90", ref="90-2026-000002")
    world.configure(send_lease_s=6, send_timeout_s=5)  # at +2 s a 5 s send would outlive the 6 s lease
    async with world.pool.acquire() as conn:
        await world.dispatcher.expand_alerts(conn)
    claimed_at = world.clock.now
    world.clock = SlowClaimClock(claimed_at, later=claimed_at + timedelta(seconds=2))
    report = await world.dispatcher.send_due(world.pool)
    assert report.released == 1
    last = await world.pool.fetchrow(
        "SELECT state, attempts FROM delivery WHERE alert_id IS NOT NULL ORDER BY seq DESC"
    )
    assert last is not None
    # Given back due at once, untouched: the short lease started no send and left no attempt behind. The
    # round's claim was short, so it claims no more; the release's NOTIFY wakes the loop for the next round
    # (test_notifier_sender_loop).
    assert (report.claimed, report.sent, report.more) == (1, 0, False)
    assert (last["state"], last["attempts"]) == ("pending", 0)
    assert len(world.smtp.messages) == 1


async def test_a_delivery_whose_claiming_session_died_is_taken_back_before_its_lease_ends(
    world: World, pg_server: PostgresEndpoint
) -> None:
    await world.decide("CCAPEX90")
    async with world.pool.acquire() as conn:
        await world.dispatcher.expand_alerts(conn)
        url = pg_server.database_url(await conn.fetchval("SELECT current_database()"))
    # Another notifier process: its own database session claims, and then dies before recording anything.
    other = await asyncpg.connect(url, server_settings={"search_path": "notifier"})
    async with other.transaction():
        [leased] = (await repo.claim_deliveries(other, limit=5, lease_s=600, now=world.clock.now)).jobs
    pid = await other.fetchval("SELECT pg_backend_pid()")
    # While that session lives, its delivery is its own: nothing is claimed.
    assert (await world.dispatcher.send_due(world.pool)).claimed == 0
    await world.pool.execute("SELECT pg_terminate_backend($1)", pid)  # what the kernel does to a killed process
    async with asyncio.timeout(10):
        while await world.pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):  # noqa: ASYNC110 (a server state: no event to wait on)
            await asyncio.sleep(0.05)
    # The same instant on the business clock, 600 s of lease left: a running notifier looks for a dead one's
    # deliveries every orphan_check_s (1 s of real time) and sends it again. The bound is a guard, not a timing.
    async with asyncio.timeout(30):
        while (report := await world.dispatcher.send_due(world.pool)).claimed == 0:  # noqa: ASYNC110 (polls a dispatcher)
            await asyncio.sleep(0.1)
    assert (report.claimed, report.sent) == (1, 1)
    [row] = await world.deliveries()
    assert (row["delivery_id"], row["state"], row["attempts"]) == (leased.delivery_id, "sent", 2)
    assert len(world.smtp.messages) == 1
    await other.close()


class SlowClaimClock:
    """Reads ``at`` for the claim, then ``later``: as if the claimed delivery waited before its turn."""

    def __init__(self, at: datetime, *, later: datetime) -> None:
        self.now, self._later = at, later

    def __call__(self) -> datetime:
        now, self.now = self.now, self._later
        return now


async def test_concurrent_dispatchers_never_send_a_delivery_twice(world: World) -> None:
    for n in range(40):
        await world.decide("CCAPEX90", ref=f"90-2026-{n:06d}")
    async with world.pool.acquire() as conn:
        await world.dispatcher.expand_alerts(conn)
    other = world.another_dispatcher()
    while True:
        reports = await asyncio.gather(world.dispatcher.send_due(world.pool), other.send_due(world.pool))
        if not any(r.claimed for r in reports):
            break
    ids = [mail.message["Message-ID"] for mail in world.smtp.messages]
    assert len(ids) == 40
    assert len(set(ids)) == 40


async def test_receipts_and_logs_carry_no_address_no_number_and_no_body(
    world: World, contacts: type[ContactBuilders], capsys: pytest.CaptureFixture[str]
) -> None:
    await world.structure("MED", contacts.sms("MED-PERM", MOBILE))
    await world.structure(
        "FSL90",
        contacts.email("FSL90-REFERENT", "bounce@fsl90.test", generic=False),
        contacts.email("FSL90-MAIL", "fsl@cd90.test"),
    )
    world.smtp_replies.script("bounce@fsl90.test", "550 5.1.1 <bounce@fsl90.test> unknown")
    world.sms.script(MOBILE, Reply.invalid())
    await world.decide("MED", "FSL90", earliest=date(2026, 4, 1))
    await world.run()

    values = [json.loads(r["value"]) for r in await world.pool.fetch("SELECT value FROM outbox")]
    assert len(values) >= 6
    dumped = json.dumps(values) + capsys.readouterr().out
    for secret in (
        "bounce@fsl90.test",
        "fsl@cd90.test",
        "ccapex90@pref.test",
        MOBILE,
        "600000001",
        "Bonjour",
        "Dossier",
    ):
        assert secret not in dumped


async def test_a_clean_stop_finishes_the_sends_under_way_and_gives_the_others_back(
    world: World, contacts: type[ContactBuilders]
) -> None:
    world.configure(send_concurrency=2)
    numbers = [f"+3361100{n:04d}" for n in range(10)]
    for n, number in enumerate(numbers):
        await world.structure(f"MED{n}", contacts.sms(f"MED{n}-PERM", number))
        world.sms.script(number, Reply(delay_s=0.3))  # accepted, slowly
    for n in range(10):
        await world.decide(f"MED{n}", ref=f"90-2026-{n:06d}")
    async with world.pool.acquire() as conn:
        await world.dispatcher.expand_alerts(conn)
    sending = asyncio.create_task(world.dispatcher.send_due(world.pool))
    while not any(world.sms.attempts(number) for number in numbers):  # noqa: ASYNC110 (the emulator's thread)
        await asyncio.sleep(0.01)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending

    rows = await world.deliveries()
    states = sorted((r["state"], r["attempts"]) for r in rows)
    sent = [r for r in rows if r["state"] == "sent"]
    assert 1 <= len(sent) <= 2  # the sends under way were finished and recorded
    assert len(world.sms.received) == len(sent)
    assert states.count(("pending", 0)) == 10 - len(sent)  # the others are due again at once, untouched
    await world.run()
    assert sorted(s.recipient for s in world.sms.received) == numbers


async def test_warnings_reach_only_the_assignments_told_and_past_dates_read_possible(
    world: World, contacts: type[ContactBuilders]
) -> None:
    # Sent on 2 April: the earliest expulsion date (1 April) has passed.
    world.clock.now = datetime(2026, 4, 2, 10, 0, tzinfo=PARIS).astimezone(UTC)
    await world.structure("CD90", contacts.email("CD90-MAIL", "prevention.expulsions@cd90.test"))
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "fsl@cd90.test"))
    await world.structure("MED", contacts.sms("MED-PERM", MOBILE))
    told = ["PREFECT_NOTICE_LT_6_WEEKS"]
    await world.decide("CD90", "FSL90", stage=Stage.ASSIGNATION, earliest=date(2026, 4, 1), warnings={"CD90": told})
    # Beside the reference and the link, an SMS has room for the shortest warning without a date, not with
    # one (the SMS then stays as it is).
    short = ["CP_BELOW_CCAPEX_THRESHOLD"]
    await world.decide("MED", ref="90-2026-000002", stage=Stage.ASSIGNATION, warnings={"MED": short})
    await world.decide(
        "MED", ref="90-2026-000003", stage=Stage.ASSIGNATION, earliest=date(2026, 4, 1), warnings={"MED": short}
    )
    await world.run()

    sentence = "Notification au préfet moins de 6 semaines avant l'audience : irrecevabilité possible"
    [cd90] = world.mails_to("prevention.expulsions@cd90.test")
    [fsl] = world.mails_to("fsl@cd90.test")
    assert sentence in _text(cd90)
    assert "préfet" not in _text(fsl)
    for mail in (cd90, fsl):
        assert "Expulsion possible depuis le 01/04/2026" in _text(mail)
        assert "Expulsion impossible avant" not in _text(mail)
    undated, dated = sorted((sms.text for sms in world.sms.received), key=lambda text: "01/04/2026" in text)
    assert "90-2026-000002, Assignation, Belfort. Urg. normale. Sous le seuil de signalement CCAPEX. " in undated
    assert "CCAPEX" not in dated
    assert "Expulsion possible dès 01/04/2026." in dated
    assert max(len(undated), len(dated)) <= 160


async def test_why_you_comes_from_the_matched_rules_and_never_names_a_household_clause(
    world: World, contacts: type[ContactBuilders]
) -> None:
    await world.structure("CCAS-BELFORT", contacts.email("CCAS-MAIL", "accueil@ccas-belfort.test"))
    await world.structure("FSL90", contacts.email("FSL90-MAIL", "fsl@cd90.test"))
    event = decided_event("90-2026-000001", ["CCAS-BELFORT", "FSL90"], stage=Stage.COMMANDEMENT_PAYER)
    ccas, fsl = event.payload.assignments
    assignments = [
        ccas.model_copy(update={"mandatory": True, "matched_rules": ["CCAS-B-ACC.stages", "CCAS-B-ACC.zone"]}),
        fsl.model_copy(update={"matched_rules": ["FSL90-MAINTIEN.debt_max", "FSL90-MAINTIEN.resources_max"]}),
    ]
    await world.record(
        event.model_copy(update={"payload": event.payload.model_copy(update={"assignments": assignments})})
    )
    await world.run()

    [ccas_mail] = world.mails_to("accueil@ccas-belfort.test")
    [fsl_mail] = world.mails_to("fsl@cd90.test")
    assert (
        "Pourquoi votre structure :\n"
        "- la charte prévoit que votre structure soit saisie à cette étape de la procédure\n"
        "- votre offre couvre cette étape de la procédure\n"
        "- la commune du logement est dans votre zone d'intervention\n"
    ) in _text(ccas_mail)
    # Matched only on household clauses (a debt ceiling, a resources ceiling): nothing of them is told.
    assert "Pourquoi" not in _text(fsl_mail)
    # Each is told who else was asked, by the référentiel's name (an id until the référentiel names it).
    assert "Autres structures saisies pour ce dossier :\n- Structure FSL90\n" in _text(ccas_mail)
    assert "Autres structures saisies pour ce dossier :\n- Structure CCAS-BELFORT\n" in _text(fsl_mail)
    stored = await world.pool.fetch("SELECT structure_id, reasons, others FROM alert ORDER BY structure_id")
    assert [(r["structure_id"], r["reasons"], r["others"]) for r in stored] == [
        ("CCAS-BELFORT", ["MANDATORY", "STAGE", "ZONE"], ["FSL90"]),
        ("FSL90", [], ["CCAS-BELFORT"]),
    ]


async def test_every_claim_is_planned_for_its_own_values_not_from_a_plan_made_on_an_empty_table(world: World) -> None:
    # PostgreSQL keeps one plan of a prepared statement from its sixth execution, made on the table as it was:
    # empty soon after start, it sorted every due row of a later backlog before the LIMIT. Claims plan afresh.
    async with world.pool.acquire() as conn:
        for _ in range(8):
            async with conn.transaction():
                assert (await repo.claim_deliveries(conn, limit=4, lease_s=30, now=world.clock.now)).jobs == []
        plans = await conn.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'WITH due AS%'"
        )
        setting = await conn.fetchval("SHOW plan_cache_mode")
    assert len(plans) == 2  # the orphaned rows' statement and the due rows'
    # custom_plans counts this connection's earlier claims too (the pool is the session's).
    assert all(row["generic_plans"] == 0 and row["custom_plans"] >= 8 for row in plans), plans
    assert setting == "auto"  # only for the claim's own transaction
