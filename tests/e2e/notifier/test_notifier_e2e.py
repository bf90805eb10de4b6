"""The notifier as a real process: scenarios S-01…S-08 (alert part), retries, fallbacks, and a SIGKILL mid-run.

Decisions are built as orientation publishes them for each scenario of docs/domain.md §9 (structures of the
expected assignments, stage, urgency, commune, earliest expulsion date), over the seed référentiel's
contacts; S-07 and S-08 are rejected by ingest and produce no decision at all, so the exact count of
emails below also says that nothing else was sent.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest

from devtools.sms_emulator import Reply, decided_event, truce_end_event
from schemas import topics
from schemas.orientation import AssignmentKind
from schemas.procedure import Urgency
from schemas.stages import Stage

if TYPE_CHECKING:
    from tests.e2e.notifier.conftest import NotifierWorld

pytestmark = pytest.mark.e2e

BELFORT, OFFEMONT, VALDOIE, GIROMAGNY = (
    ("90010", "Belfort"),
    ("90075", "Offemont"),
    ("90099", "Valdoie"),
    ("90052", "Giromagny"),
)
CCAS, CDAD, CD90 = "accueil@ccas-belfort.test", "point-justice@cdad90.test", "prevention.expulsions@cd90.test"
CAF, FSL, TH, CCAPEX = (
    "prevention.impayes@caf90.test",
    "fsl@cd90.test",
    "protocole@territoire-habitat.test",
    "ccapex90@pref.test",
)
# What the household data of the scenarios look like; none of it may reach an alert or a log.
PERSONAL = ("Durand", "Léa", "Mulhouse", "Martin", "Jaurès", "2400", "2 400", "1500", "3100", "Tribunal")


def _text(mail: Any) -> str:
    parts = [part.get_content() for part in mail.message.walk() if part.get_content_maintype() == "text"]
    return str(mail.message["Subject"]) + "\n" + "\n".join(parts)


async def test_scenarios_alert_the_expected_recipients_once_each(notifier_world: NotifierWorld) -> None:
    world = notifier_world
    s01_procedure, s01_assignments = uuid.uuid4(), [uuid.uuid4() for _ in range(3)]
    s01 = ["CCAS-BELFORT", "CDAD90", "CD90"]
    s01_again: dict[str, Any] = {"procedure_id": s01_procedure, "assignment_ids": s01_assignments, "commune": BELFORT}
    events = [
        decided_event("90-2026-000001", s01, stage=Stage.COMMANDEMENT_PAYER, **s01_again),
        decided_event(
            "90-2026-000002",
            ["CD90", "CAF90", "FSL90"],
            stage=Stage.SAISINE_CCAPEX_BAILLEUR,
            urgency=Urgency.LOW,
            commune=OFFEMONT,
        ),
        # S-03, second step: the corrected act re-runs orientation onto the same structures → stage updates.
        decided_event(
            "90-2026-000001",
            s01,
            stage=Stage.COMMANDEMENT_PAYER,
            kind=AssignmentKind.STAGE_UPDATE,
            is_correction=True,
            **s01_again,
        ),
        # S-04: CD90 holds one assignment for both of its offers (DSF mandatory + ACCOMP).
        decided_event("90-2026-000003", ["CD90", "CDAD90", "FSL90"], stage=Stage.ASSIGNATION, commune=VALDOIE),
        decided_event(
            "90-2026-000004",
            ["CCAPEX90"],
            stage=Stage.IMPAYE_CONSTATE,
            urgency=Urgency.LOW,
            commune=GIROMAGNY,
            fallback_used=True,
        ),
        decided_event(
            "90-2026-000005",
            ["CCAS-BELFORT", "CD90", "TH90"],
            stage=Stage.COMMANDEMENT_QUITTER,
            commune=BELFORT,
            earliest=date(2026, 4, 1),
        ),
    ]
    await world.publish(topics.ORIENTATION_DECIDED, [(str(e.payload.procedure_id), e) for e in events])
    # The same decision delivered again (a consumer that restarted before committing) changes nothing.
    await world.publish(topics.ORIENTATION_DECIDED, [(str(s01_procedure), events[0])])

    expected = {
        "90-2026-000001": {CCAS, CDAD, CD90},
        "90-2026-000002": {CD90, CAF, FSL},
        "90-2026-000003": {CD90, CDAD, FSL},
        "90-2026-000004": {CCAPEX},
        "90-2026-000005": {CCAS, CD90, TH},
    }
    await world.smtp.wait_for(13, timeout=90)
    await world.settled()
    scenario_mails = [m for m in world.smtp.messages if "Dossier 90-2026-00000" in str(m.message["Subject"])]
    got = Counter((ref, rcpt) for m in scenario_mails for rcpt in m.rcpt_tos for ref in expected if ref in _text(m))
    assert got == Counter((ref, rcpt) for ref, rcpts in expected.items() for rcpt in rcpts)

    for mail in scenario_mails:
        text = _text(mail)
        ref = next(r for r in expected if r in text)
        # A signed token opens the case (random characters: left out of the personal-data check).
        text, links = re.subn(r"http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]{20}", "", text)
        assert links >= 1
        assert len(mail.rcpt_tos) == 1
        # An automated message (RFC 3834: no out-of-office reply), answered to the CCAPEX secretariat.
        assert mail.message["Auto-Submitted"] == "auto-generated"
        assert mail.message["Reply-To"] == "ccapex90@pref.test"
        assert re.fullmatch(r"<[0-9a-f-]{36}@prevex\.test>", str(mail.message["Message-ID"]))
        for personal in PERSONAL:
            assert personal not in text
        assert ("Aucune offre – orientation manuelle requise" in text) == (ref == "90-2026-000004")
        assert ("Expulsion impossible avant le 01/04/2026" in text) == (ref == "90-2026-000005")
        urgency = "Urgence faible" if ref in {"90-2026-000002", "90-2026-000004"} else "Urgence normale"
        assert f"({urgency})" in str(mail.message["Subject"])

    sent = await world.receipts(topics.NOTIFICATION_SENT, until=lambda receipts: len(receipts) >= 13)
    assert Counter(r["procedure_short_ref"] for r in sent) == {ref: len(rcpts) for ref, rcpts in expected.items()}
    assert all(r["channel"] == "EMAIL" and r["provider"] == "smtp" and r["attempt_count"] == 1 for r in sent)


async def test_retries_and_fallbacks_end_to_end(notifier_world: NotifierWorld) -> None:
    world = notifier_world
    world.replies.script("flaky@e2e.test", "451 4.3.0 Try again later", "451 4.3.0 Try again later")
    world.replies.script("bounce@e2e.test", "550 5.1.1 Recipient address rejected")
    world.sms.script("+33612000001", Reply.server_error(), Reply.server_error(), Reply.server_error())
    world.sms.script("+33612000002", Reply.invalid())
    cases = {
        "90-2026-000101": "E2E-FLAKY",
        "90-2026-000102": "E2E-BOUNCE",
        "90-2026-000103": "E2E-SMS-OK",
        "90-2026-000104": "E2E-SMS-BAD",
        "90-2026-000105": "E2E-EMPTY",
    }
    events = [decided_event(ref, [structure], stage=Stage.ASSIGNATION) for ref, structure in cases.items()]
    await world.publish(topics.ORIENTATION_DECIDED, [(str(e.payload.procedure_id), e) for e in events])
    undeliverable = await world.receipts(topics.NOTIFICATION_UNDELIVERABLE, until=lambda receipts: len(receipts) >= 3)
    await world.settled()

    # 451 twice, then accepted: exactly one email.
    assert len(world.mails_to("flaky@e2e.test")) == 1
    assert world.replies.refused["flaky@e2e.test"] == 2
    # 550: nothing to the named contact, a fallback to the structure's generic mailbox (besides its own alert).
    assert world.mails_to("bounce@e2e.test") == []
    generic = [str(m.message["Subject"]) for m in world.mails_to("bounce-generic@e2e.test")]
    assert sorted(s.startswith("[Prévention expulsions 90] Repli") for s in generic) == [False, True]
    # SMS provider 500 ×3 then 200: exactly one SMS.
    assert [s.recipient for s in world.sms.received] == ["+33612000001"]
    assert world.sms.attempts("+33612000001") == 4
    # Invalid number, and a structure without any contact: the default referent, told whom it stands for.
    fallbacks = {
        ref: m for m in world.mails_to(CCAPEX) for ref in ("90-2026-000104", "90-2026-000105") if ref in _text(m)
    }
    assert "Structure de test E2E-SMS-BAD" in _text(fallbacks["90-2026-000104"])
    assert "Structure de test E2E-EMPTY" in _text(fallbacks["90-2026-000105"])

    by_structure = {r["structure_id"]: r for r in undeliverable}
    assert by_structure["E2E-BOUNCE"]["fallback"] == {"kind": "GENERIC_CONTACT", "structure_id": "E2E-BOUNCE"}
    assert by_structure["E2E-BOUNCE"]["error"]["code"] == "SMTP_PERMANENT:550"
    assert by_structure["E2E-SMS-BAD"]["fallback"] == {"kind": "DEFAULT_REFERENT", "structure_id": "CCAPEX90"}
    assert (by_structure["E2E-SMS-BAD"]["provider"], by_structure["E2E-SMS-BAD"]["error"]["code"]) == (
        "ovh",
        "INVALID_NUMBER",
    )
    assert by_structure["E2E-EMPTY"]["cause"] == "NO_DELIVERABLE_CONTACT"
    sent = await world.receipts(
        topics.NOTIFICATION_SENT, until=lambda receipts: any(r["structure_id"] == "E2E-SMS-OK" for r in receipts)
    )
    [sms_sent] = [r for r in sent if r["structure_id"] == "E2E-SMS-OK"]
    assert (sms_sent["channel"], sms_sent["provider"], sms_sent["attempt_count"]) == ("SMS", "ovh", 4)


async def test_a_truce_end_reminder_sends_one_email_per_structure_with_its_wording(
    notifier_world: NotifierWorld,
) -> None:
    # S-06 on 1 March: CD90 holds the file (commandement de quitter during the trêve), the SIAO is added.
    world = notifier_world
    last = decided_event(
        "90-2026-000201", ["CD90"], stage=Stage.COMMANDEMENT_QUITTER, commune=BELFORT, earliest=date(2026, 4, 1)
    )
    reminder = truce_end_event(last, ["SIAO90"], truce_ends=date(2026, 4, 1))
    republished = reminder.model_copy(update={"event_id": uuid.uuid4()})
    key = str(last.payload.procedure_id)
    await world.publish(topics.ORIENTATION_DECIDED, [(key, last), (key, reminder), (key, republished)])
    await world.consumed(republished.event_id)  # one partition: the earlier two were recorded before it
    await world.settled()

    mails = [m for m in world.smtp.messages if "90-2026-000201" in _text(m)]
    subjects = sorted((rcpt, str(m.message["Subject"]).split(" Dossier ")[0]) for m in mails for rcpt in m.rcpt_tos)
    assert subjects == [
        ("coordination@siao90.test", "[Prévention expulsions 90] Fin de trêve –"),
        (CD90, "[Prévention expulsions 90]"),
        (CD90, "[Prévention expulsions 90] Fin de trêve –"),
    ]
    for mail in mails:
        text = _text(mail)
        truce_end = "Fin de trêve" in str(mail.message["Subject"])
        assert (
            "La trêve hivernale prend fin le 31 mars : l'expulsion est possible à partir du 01/04/2026" in text
        ) == (truce_end)
        assert ("Expulsion impossible avant le 01/04/2026" in text) != truce_end
        for personal in PERSONAL:
            assert personal not in text


async def test_sigkill_mid_run_sends_every_alert_once_but_the_leased_ones(notifier_world: NotifierWorld) -> None:
    """500 alerts; SIGKILL while they are being sent; restart. Every alert arrives; duplicates only among the
    deliveries that were leased (``sending``) at the time of the kill, which the claim size bounds."""
    world = notifier_world
    address, total = "kill@e2e.test", 500
    world.replies.slow_address = address  # a few ms per message, so that the kill falls mid-run
    events = [decided_event(f"90-2026-{9000 + n:06d}", ["E2E-KILL"]) for n in range(total)]
    await world.publish(topics.ORIENTATION_DECIDED, [(str(e.payload.procedure_id), e) for e in events])
    while len(world.mails_to(address)) < 100:
        await world.smtp.wait_for(len(world.smtp.messages) + 1, timeout=60)
    world.services.kill("notifier")
    world.replies.slow_address = None  # the kill has fallen: the rest may go at the sink's pace
    in_flight = await world.db.fetchval(
        "SELECT count(*) FROM delivery WHERE state = 'sending' AND structure_id = 'E2E-KILL'"
    )
    arrived_at_kill = len(world.mails_to(address))
    assert arrived_at_kill < total, "the kill must fall while alerts are being sent"

    world.services.start("notifier")
    await world.settled(timeout_s=120)
    mails = world.mails_to(address)
    ids = Counter(m.message["Message-ID"] for m in mails)
    assert len(ids) == total, "every alert arrives"
    duplicates = len(mails) - total
    assert duplicates <= in_flight <= 4 * 8, (duplicates, in_flight)
    assert (
        await world.db.fetchval("SELECT count(*) FROM delivery WHERE structure_id = 'E2E-KILL' AND state = 'sent'")
        == total
    )


def test_notifier_log_is_json_without_addresses_numbers_or_bodies(notifier_world: NotifierWorld) -> None:
    log_text = notifier_world.services.log_path("notifier").read_text("utf-8")
    lines = [json.loads(line) for line in log_text.splitlines() if line.strip()]
    assert any(line.get("event") == "alert_undeliverable" for line in lines)
    for secret in ("@e2e.test", "@cd90.test", "@pref.test", "ccas-belfort", "+33612", "33612000", "Bonjour"):
        assert secret not in log_text, secret
