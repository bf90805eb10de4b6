"""Dates in the past read right in every template, and legal warnings reach the partners meant to read them.

Issue 12 items 1–2: « Expulsion impossible avant le 01/04/2026 » is only true while that day is ahead — from
the day itself on, every template says the expulsion is possible since then; the warnings ingest attaches to
an act go to the structures of ``schemas/warnings.py``'s audience, as fixed sentences, in an SMS only when it
still fits one segment.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from devtools.sms_emulator import decided_event
from schemas.orientation import OrientationDecidedEvent
from schemas.procedure import Urgency
from schemas.referential import StructureTypology
from schemas.stages import Stage
from schemas.warnings import OPS_WARNINGS, PARTNER_WARNINGS, PartnerWarning, partner_warnings, warning_texts
from services.ingest.domain.rejections import WarningCode
from services.notifier.domain.alerts import (
    SMS_MAX_CHARS,
    AlertContent,
    DigestContent,
    next_legal_date,
    render_digest_email,
    render_digest_sms,
    render_email,
    render_sms,
    response_request,
    to_gsm7,
)
from services.notifier.templates import load_templates

TEMPLATES = load_templates(prefix="Prévention expulsions 90", sms_prefix="Expulsions 90")
LINK = "https://prevex.example/d/" + "A" * 20
PREFECT = "PREFECT_NOTICE_LT_6_WEEKS"
PREFECT_SENTENCE = "Notification au préfet moins de 6 semaines avant l'audience : irrecevabilité possible"
PREFECT_SMS = "Prefet avise <6 sem. avant audience: irrecevabilite possible."
THRESHOLD = "CP_BELOW_CCAPEX_THRESHOLD"
THRESHOLD_SMS = "Sous le seuil de signalement CCAPEX."
EARLIEST = date(2026, 6, 15)
# The day before (the date still ahead), the day itself and the day after (the expulsion possible).
SIDES = [(EARLIEST - timedelta(days=1), False), (EARLIEST, True), (EARLIEST + timedelta(days=1), True)]


def _alert(today: date, **changes: object) -> AlertContent:
    content = AlertContent(
        "90-2026-000001", Stage.COMMANDEMENT_QUITTER, "Belfort", Urgency.NORMAL, EARLIEST, LINK, today
    )
    return replace(content, **changes)  # type: ignore[arg-type]


def _plain(rendered_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered_html))


# --- dates ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("today", "passed"), SIDES)
def test_the_email_says_impossible_before_the_day_and_possible_from_it(today: date, passed: bool) -> None:
    email = render_email(_alert(today), TEMPLATES)
    for body in (email.text, _plain(email.html)):
        assert ("Expulsion impossible avant le 15/06/2026" in body) != passed
        assert ("Expulsion possible depuis le 15/06/2026" in body) == passed


@pytest.mark.parametrize(("today", "passed"), SIDES)
def test_the_sms_says_impossible_before_the_day_and_possible_from_it(today: date, passed: bool) -> None:
    sms = render_sms(_alert(today), TEMPLATES)
    assert ("Expulsion pas avant 15/06/2026." in sms) != passed
    assert ("Expulsion possible dès 15/06/2026." in sms) == passed


@pytest.mark.parametrize(("today", "passed"), SIDES)
def test_the_digest_says_impossible_before_the_day_and_possible_from_it(today: date, passed: bool) -> None:
    digest = DigestContent(today, (_alert(today, stage_update=True),), "https://prevex.example/d")
    email = render_digest_email(digest, TEMPLATES)
    for body in (email.text, _plain(email.html)):
        assert ("expulsion impossible avant le 15/06/2026" in body) != passed
        assert ("expulsion possible depuis le 15/06/2026" in body) == passed
    # The digest SMS carries a count, its day and a link, no expulsion date: nothing in it can go stale.
    undated = replace(digest, items=(_alert(today, stage_update=True, earliest_expulsion_date=None),))
    assert render_digest_sms(digest, TEMPLATES) == render_digest_sms(undated, TEMPLATES)


@pytest.mark.parametrize(
    ("today", "passed"),
    [(date(2026, 3, 31), False), (date(2026, 4, 1), True), (date(2026, 4, 2), True)],
)
def test_the_truce_end_reminder_says_the_truce_ended_from_the_first_of_april(today: date, passed: bool) -> None:
    content = _alert(today, earliest_expulsion_date=date(2026, 4, 1), truce_end=True, stage_update=True)
    email = render_email(content, TEMPLATES)
    ahead = "La trêve hivernale prend fin le 31 mars : l'expulsion est possible à partir du 01/04/2026."
    since = "La trêve hivernale a pris fin le 31 mars : l'expulsion est possible depuis le 01/04/2026."
    for body in (email.text, _plain(email.html)):
        assert (ahead in body) != passed
        assert (since in body) == passed
        assert "Expulsion impossible avant" not in body
    sms = render_sms(content, TEMPLATES)
    assert ("Fin de treve: expulsion dès 01/04/2026." in sms) != passed
    assert ("Treve finie: expulsion dès 01/04/2026." in sms) == passed


# --- warnings: who is told ----------------------------------------------------------------------------


def test_every_warning_ingest_emits_is_either_told_to_partners_or_kept_for_ops() -> None:
    assert set(PARTNER_WARNINGS).isdisjoint(OPS_WARNINGS)
    assert set(PARTNER_WARNINGS) | OPS_WARNINGS == {code.value for code in WarningCode}


@pytest.mark.parametrize(
    ("typology", "told"),
    [
        (StructureTypology.DEPARTEMENT_SERVICE_SOCIAL, [PREFECT]),
        (StructureTypology.CDAD_POINT_JUSTICE, [PREFECT]),
        (StructureTypology.ADIL, [PREFECT]),
        (StructureTypology.FSL, []),
        (StructureTypology.CAF_MSA, []),
        (StructureTypology.CCAS, []),
        (StructureTypology.SIAO, []),
    ],
)
def test_the_prefect_notice_warning_goes_to_the_diagnostic_and_legal_advice_only(
    typology: StructureTypology, told: list[str]
) -> None:
    codes = [PREFECT, "POSTAL_CODE_COMMUNE_MISMATCH", "LATE_EARLIER_STAGE", "NOT_A_CODE"]
    assert partner_warnings(codes, typology, ["ANY-OFFER"]) == told


def test_ops_warnings_reach_no_partner_of_any_kind() -> None:
    for typology in StructureTypology:
        assert partner_warnings(sorted(OPS_WARNINGS), typology, []) == []


def test_a_warning_may_name_offers_and_is_told_once_in_table_order() -> None:
    by_offer = PartnerWarning("X", "Phrase", "Sms", frozenset(), offer_ids=frozenset({"PJ90-INFO"}))
    assert by_offer.concerns(StructureTypology.AUTRE, ["PJ90-INFO"])
    assert not by_offer.concerns(StructureTypology.AUTRE, ["FSL90-MAINTIEN"])
    codes = ["LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W", PREFECT, PREFECT]
    assert partner_warnings(codes, StructureTypology.CDAD_POINT_JUSTICE, []) == [
        PREFECT,
        "LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W",
    ]


def test_warning_sentences_are_fixed_texts_and_the_sms_forms_are_gsm7() -> None:
    assert warning_texts([PREFECT]) == (PREFECT_SENTENCE,)
    assert warning_texts([PREFECT, "FROM_A_NEWER_ORIENTATION"], sms=True) == (PREFECT_SMS,)
    for warning in PARTNER_WARNINGS.values():
        assert to_gsm7(warning.sms) == warning.sms
        assert len(warning.sms) < SMS_MAX_CHARS // 2
        assert not re.search(r"€|\bdette\b|\bloyer\b|\brue\b|\bM(me|\.)", warning.sentence)


# --- what is expected, by when: the next legal date and the answer's deadline ---------------------------

HEARING = date(2026, 5, 12)
DEADLINE = date(2026, 4, 20)


@pytest.mark.parametrize(
    ("today", "dates", "shown"),
    [
        # One date: ahead on its day for a hearing or a period's last day, possible from its day for an expulsion.
        (HEARING, {"hearing_date": HEARING, "earliest_expulsion_date": None}, "Audience prévue le 12/05/2026"),
        (
            HEARING + timedelta(days=1),
            {"hearing_date": HEARING, "earliest_expulsion_date": None},
            "Audience prévue le 12/05/2026 (date passée)",
        ),
        (
            DEADLINE,
            {"commandement_deadline": DEADLINE, "earliest_expulsion_date": None},
            "Fin du délai du commandement le 20/04/2026",
        ),
        (
            DEADLINE + timedelta(days=1),
            {"commandement_deadline": DEADLINE, "earliest_expulsion_date": None},
            "Délai du commandement expiré le 20/04/2026",
        ),
        (EARLIEST - timedelta(days=1), {}, "Expulsion impossible avant le 15/06/2026"),
        (EARLIEST, {}, "Expulsion possible depuis le 15/06/2026"),
        # Several: the soonest still ahead; all passed, the latest.
        (
            date(2026, 4, 1),
            {"hearing_date": HEARING, "commandement_deadline": DEADLINE},
            "Fin du délai du commandement le 20/04/2026",
        ),
        (
            date(2026, 5, 1),
            {"hearing_date": HEARING, "commandement_deadline": DEADLINE},
            "Audience prévue le 12/05/2026",
        ),
        (date(2026, 5, 13), {"hearing_date": HEARING}, "Expulsion impossible avant le 15/06/2026"),
        (
            date(2026, 7, 1),
            {"hearing_date": HEARING, "commandement_deadline": DEADLINE},
            "Expulsion possible depuis le 15/06/2026",
        ),
        (
            date(2026, 5, 13),
            {"hearing_date": HEARING, "earliest_expulsion_date": None},
            "Audience prévue le 12/05/2026 (date passée)",
        ),
        # A truce-end reminder says its date in its own paragraph.
        (date(2026, 5, 1), {"hearing_date": HEARING, "truce_end": True}, "Audience prévue le 12/05/2026"),
        (date(2026, 5, 1), {"earliest_expulsion_date": None}, None),
    ],
)
def test_the_next_legal_date_is_the_soonest_ahead_or_the_latest_passed(
    today: date, dates: dict[str, object], shown: str | None
) -> None:
    content = _alert(today, **dates)
    assert next_legal_date(content) == shown
    email = render_email(content, TEMPLATES)
    if shown is not None:
        assert f"\n{shown}\n" in email.text
        assert f"<li>{shown}</li>" in email.html


@pytest.mark.parametrize(
    ("today", "sentence"),
    [
        (
            date(2026, 3, 6),
            "Merci d'accepter ou de refuser ce dossier dans l'espace sécurisé avant le 09/03/2026 : sans réponse à"
            " cette date, une relance vous sera adressée, puis le secrétariat de la CCAPEX sera prévenu.",
        ),
        # Sent late (a retried or deferred delivery): the day has come, the request says so.
        (
            date(2026, 3, 9),
            "Votre réponse était attendue avant le 09/03/2026 : merci d'accepter ou de refuser ce dossier sans"
            " attendre dans l'espace sécurisé.",
        ),
    ],
)
def test_the_answer_is_asked_before_the_escalation_day_in_text_and_html(today: date, sentence: str) -> None:
    content = _alert(today, respond_by=date(2026, 3, 9))
    assert response_request(content) == sentence
    email = render_email(content, TEMPLATES)
    assert f"Ce qui est attendu :\n{sentence}\n" in email.text
    assert f"<h2>Ce qui est attendu</h2>\n<p>{sentence}</p>" in html.unescape(email.html)
    # Without a deadline (a stage update, a notice to the secretariat) nothing is asked.
    assert response_request(replace(content, respond_by=None)) is None
    assert "attendu" not in render_email(replace(content, respond_by=None), TEMPLATES).text
    # The SMS has no room for it.
    assert render_sms(content, TEMPLATES) == render_sms(replace(content, respond_by=None), TEMPLATES)


# --- warnings: what is shown --------------------------------------------------------------------------


def test_the_email_lists_the_warnings_in_text_and_html() -> None:
    content = _alert(EARLIEST, stage=Stage.ASSIGNATION, warnings=(PREFECT,))
    email = render_email(content, TEMPLATES)
    assert f"Point d'attention :\n- {PREFECT_SENTENCE}" in email.text
    assert f"<li>{PREFECT_SENTENCE}</li>" in html.unescape(email.html)
    plain = render_email(replace(content, warnings=()), TEMPLATES)
    assert "attention" not in plain.text
    assert "attention" not in plain.html


def test_the_sms_carries_a_warning_when_it_still_fits() -> None:
    content = _alert(EARLIEST - timedelta(days=1), stage=Stage.COMMANDEMENT_PAYER, earliest_expulsion_date=None)
    sms = render_sms(replace(content, warnings=(THRESHOLD,)), TEMPLATES)
    assert sms == f"Expulsions 90: 90-2026-000001, Cdt de payer, Belfort. Urg. normale. {THRESHOLD_SMS} {LINK}"
    assert len(sms) <= SMS_MAX_CHARS
    # The préfet's sentence is longer: beside the reference and the link it no longer fits one segment.
    prefect = replace(content, stage=Stage.ASSIGNATION, warnings=(PREFECT,))
    assert render_sms(prefect, TEMPLATES) == render_sms(replace(prefect, warnings=()), TEMPLATES)


def test_an_sms_the_warning_would_overflow_stays_as_it_is() -> None:
    commune = "Saint-Germain-le-Châtelet-et-les-Environs-Lointains"
    content = _alert(EARLIEST, stage=Stage.ASSIGNATION, commune=commune, urgency=Urgency.CRITICAL)
    warned = render_sms(replace(content, warnings=tuple(PARTNER_WARNINGS)), TEMPLATES)
    assert warned == render_sms(content, TEMPLATES)
    assert "Prefet" not in warned


def test_no_sms_with_warnings_exceeds_one_segment_in_the_worst_cases() -> None:
    for stage in Stage:
        for urgency in Urgency:
            for commune in ("Bue", "Belfort", "Saint-Germain-le-Châtelet"):
                for codes in ((PREFECT,), tuple(PARTNER_WARNINGS)):
                    content = _alert(EARLIEST, stage=stage, urgency=urgency, commune=commune, warnings=codes)
                    for flags in ({}, {"manual_orientation": True, "stage_update": True}):
                        sms = render_sms(replace(content, **flags), TEMPLATES)  # type: ignore[arg-type]
                        assert len(sms) <= SMS_MAX_CHARS
                        assert to_gsm7(sms) == sms


# --- the decided event: schema 1.1 carries them, 1.0 still reads ---------------------------------------


def _decided_json(schema_version: str, **assignment: object) -> str:
    event = decided_event("90-2026-000001", ["CD90"], stage=Stage.ASSIGNATION)
    data = event.model_dump(mode="json")
    data["schema_version"] = schema_version
    data["payload"]["assignments"][0] = {**data["payload"]["assignments"][0], **assignment}
    return json.dumps(data)


def test_a_1_0_decided_event_without_warnings_still_decodes_with_none() -> None:
    raw = json.loads(_decided_json("1.0"))
    del raw["payload"]["assignments"][0]["warnings"]
    event = OrientationDecidedEvent.model_validate_json(json.dumps(raw))
    assert event.schema_version == "1.0"
    assert event.payload.assignments[0].warnings == []


def test_decided_events_are_written_at_1_2_with_each_assignments_warnings() -> None:
    event = decided_event("90-2026-000001", ["CD90", "FSL90"], warnings={"CD90": [PREFECT]})
    assert event.schema_version == OrientationDecidedEvent.SCHEMA_VERSION == "1.2"
    decoded = OrientationDecidedEvent.model_validate_json(event.model_dump_json())
    assert [a.warnings for a in decoded.payload.assignments] == [[PREFECT], []]


@pytest.mark.parametrize(
    ("schema_version", "assignment"),
    [
        ("2.0", {}),  # a major version this code does not read
        ("1.1", {"warnings": "PREFECT_NOTICE_LT_6_WEEKS"}),  # not a list
        ("1.1", {"warnings": ["préfet < 6 semaines"]}),  # free text instead of a code
        ("1.1", {"warnings": [PREFECT] * 17}),  # oversized
    ],
)
def test_a_malformed_decided_event_is_refused(schema_version: str, assignment: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        OrientationDecidedEvent.model_validate_json(_decided_json(schema_version, **assignment))
