"""Alert templates: every template × stage × urgency × marker renders, says what it must, and nothing more.

docs/domain.md §8.3 / §9: reference, stage, commune, urgency, earliest expulsion date when relevant, link;
never a name, an address, an amount or court details. SMS: GSM-7, one segment (160 characters).
"""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import replace
from datetime import date
from importlib.resources import files

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from schemas.notification import FallbackKind
from schemas.procedure import Urgency
from schemas.stages import Stage, stage_label
from schemas.warnings import PARTNER_WARNINGS, warning_texts
from services.notifier.domain.alerts import (
    ALLOWED_VARIABLES,
    MANUAL_ORIENTATION_TAG,
    SMS_MAX_CHARS,
    TEMPLATE_NAMES,
    AlertContent,
    AlertTemplateError,
    AlertTemplates,
    ClosestOffer,
    DigestContent,
    FallbackNotice,
    RenderedEmail,
    SmsTooLongError,
    assignment_reasons,
    check_templates,
    render_digest_email,
    render_digest_sms,
    render_email,
    render_sms,
    sms_stage_label,
    sms_urgency_label,
    to_gsm7,
    urgency_label,
)
from services.notifier.domain.removal import REMOVAL_TEMPLATE_NAMES
from services.notifier.link_requests import NEW_LINK_TEMPLATE_NAMES
from services.notifier.templates import load_templates

PREFIX = "Prévention expulsions 90"
SMS_PREFIX = "Expulsions 90"
LINK_BASE = "https://prevex.example/dossiers"
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
FALLBACKS = (
    None,
    FallbackNotice(FallbackKind.GENERIC_CONTACT),
    FallbackNotice(FallbackKind.DEFAULT_REFERENT, "FSL 90 – Fonds de solidarité pour le logement"),
)
# Words and marks that would betray personal or court data in an alert (docs/domain.md §8.3).
FORBIDDEN = re.compile(r"€|\beuros?\b|\bdette\b|\bloyer\b|\btribunal\b|\bjuge\b|\bRG\b|\brue\b", re.I)

TEMPLATES = load_templates(prefix=PREFIX, sms_prefix=SMS_PREFIX)

refs = st.from_regex(r"(2[AB]|[0-9]{2})-20[0-9]{2}-[0-9]{6}", fullmatch=True)
# Commune names: letters (accents included), spaces, hyphens, apostrophes, as in the COG.
communes = (
    st.text(
        alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzéèêëàâîïôöûüçœABCDEFGHIJKLMNOPQRSTUVWXYZÉÈ -'"),
        min_size=1,
        max_size=45,
    )
    .map(str.strip)
    .filter(bool)
)
dates = st.none() | st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
sending_days = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
BEFORE_ANY = date(2023, 12, 31)
"""A sending day before every generated earliest expulsion date: the date still ahead."""


def _content(
    ref: str,
    stage: Stage,
    commune: str,
    urgency: Urgency,
    earliest: date | None,
    *,
    today: date = BEFORE_ANY,
    **flags: object,
) -> AlertContent:
    return AlertContent(ref, stage, commune, urgency, earliest, f"{LINK_BASE}/{ref}", today, **flags)  # type: ignore[arg-type]


def _all_variants(
    ref: str, commune: str, earliest: date | None, today: date = BEFORE_ANY, warnings: tuple[str, ...] = ()
) -> list[AlertContent]:
    return [
        _content(
            ref,
            stage,
            commune,
            urgency,
            earliest,
            today=today,
            warnings=warnings,
            manual_orientation=manual,
            stage_update=update,
            truce_end=truce_end,
            fallback=fb,
        )
        for stage, urgency, manual, update, truce_end, fb in itertools.product(
            Stage, Urgency, (False, True), (False, True), (False, True), FALLBACKS
        )
    ]


def _check_text_only_carries(text: str, content: AlertContent, *, day: date | None = None, count: int = 0) -> None:
    """No word of a court or a debt, and every number is part of the reference, a date, the link or the
    heading: an amount, a street number or a court file number would show up as a stray number."""
    text = html.unescape(text)
    assert not FORBIDDEN.search(text), FORBIDDEN.search(text)
    legal = (content.earliest_expulsion_date, content.hearing_date, content.commandement_deadline, content.respond_by)
    dates = [d for d in (*legal, day) if d is not None]
    allowed = " ".join([content.procedure_short_ref, content.link, PREFIX, SMS_PREFIX, 'charset="utf-8"'])
    allowed += " ".join(f"{d:%d/%m/%Y}" for d in dates) + f" {count}"
    if content.truce_end:
        allowed += " 31 mars"  # the legal end of the trêve hivernale, the same for every file
    # The fixed sentences of legal warnings ("6 semaines", "29 juillet 2023"), never a value of the file.
    allowed += " ".join([*warning_texts(content.warnings), *warning_texts(content.warnings, sms=True)])
    # A heading's level (<h1>) is markup, not a number the reader sees.
    stray = [number for number in re.findall(r"\d+", re.sub(r"</?h[1-6]\b", "", text)) if number not in allowed]
    assert not stray, f"numbers that are no reference, date or link: {stray}"


WHY = {
    "MANDATORY": "la charte prévoit que votre structure soit saisie à cette étape de la procédure",
    "STAGE": "votre offre couvre cette étape de la procédure",
    "ZONE": "la commune du logement est dans votre zone d'intervention",
    "PARC": "le parc du logement (social ou privé) est celui que couvre votre offre",
    "BAILLEUR": "le bailleur fait partie de ceux que couvre votre offre",
}
"""What a partner reads for each reason code, word for word."""
EXCLUDED = {
    "UNAVAILABLE": "l'offre n'est pas disponible à cette date (structure ou offre inactive, suspendue ou hors de"
    " sa période de validité)",
    "REMOVED": "la structure a été retirée de ce dossier par la CCAPEX",
    "ZONE": "la commune du logement est hors de sa zone d'intervention",
    "STAGE": "l'offre ne couvre pas cette étape de la procédure",
    "PARC": "le parc du logement (social ou privé) n'est pas celui que couvre l'offre",
    "BAILLEUR": "le bailleur n'est pas de ceux que couvre l'offre",
    "HOUSEHOLD": "un critère portant sur la situation du ménage n'est pas rempli (à voir dans l'espace sécurisé)",
}
"""What the CCAPEX secretariat reads for each exclusion of an offer that came closest (F1), word for word."""


@settings(max_examples=8, deadline=None)
@given(
    ref=refs,
    commune=communes,
    earliest=dates,
    today=sending_days,
    warned=st.booleans(),
    reasons=st.lists(st.sampled_from(sorted(WHY)), unique=True).map(tuple),
    offers=st.lists(communes, max_size=2).map(tuple),
    others=st.lists(communes, max_size=3).map(tuple),
    respond_by=dates,
    closest=st.lists(
        st.builds(
            ClosestOffer, communes, communes, st.lists(st.sampled_from(sorted(EXCLUDED)), unique=True).map(tuple)
        ),
        max_size=3,
    ).map(tuple),
)
def test_every_template_stage_urgency_and_marker_renders_the_required_content_and_nothing_else(
    ref: str,
    commune: str,
    earliest: date | None,
    today: date,
    *,
    warned: bool,
    reasons: tuple[str, ...],
    offers: tuple[str, ...],
    others: tuple[str, ...],
    respond_by: date | None,
    closest: tuple[ClosestOffer, ...],
) -> None:
    passed = earliest is not None and today >= earliest
    warnings = tuple(PARTNER_WARNINGS) if warned else ()
    for variant in _all_variants(ref, commune, earliest, today, warnings):
        content = replace(variant, reasons=reasons, offers=offers, others=others, respond_by=respond_by)
        content = replace(content, closest=closest if content.manual_orientation else ())
        email = render_email(content, TEMPLATES)
        for part in (email.subject, email.text, email.html):
            _check_text_only_carries(part, content)
        assert "\n" not in email.subject
        assert ref in email.subject
        assert urgency_label(content.urgency) in email.subject
        for body, shown in ((email.text, str), (email.html, lambda value: str(escape(value)))):
            assert ref in body
            assert shown(stage_label(content.stage)) in body
            assert shown(commune) in body
            assert content.link in body
            assert urgency_label(content.urgency) in body
            if earliest:
                assert f"{earliest:%d/%m/%Y}" in body
            assert (MANUAL_ORIENTATION_TAG in body) == content.manual_orientation
            assert ("REPLI" in body.upper()) == (content.fallback is not None)
            assert ("La trêve hivernale prend fin le 31 mars" in body) == (content.truce_end and not passed)
            assert ("La trêve hivernale a pris fin le 31 mars" in body) == (content.truce_end and passed)
            dated = earliest is not None and not content.truce_end
            assert ("Expulsion impossible avant le" in body) == (dated and not passed)
            assert ("Expulsion possible depuis le" in body) == (dated and passed)
            for sentence in warning_texts(warnings):
                assert shown(sentence) in body
            assert ("Pourquoi votre structure" in body) == bool(reasons or offers)
            for code, sentence in WHY.items():
                assert (shown(sentence) in body) == (code in reasons)
            for name in offers:
                assert shown(f"offre concernée : {name}") in body
            assert ("Ce qui est attendu" in body) == (respond_by is not None)
            if respond_by is not None:
                answered = "avant le" if today < respond_by else "était attendue avant le"
                assert f"{answered} {respond_by:%d/%m/%Y}" in html.unescape(body)
            assert ("Offres les plus proches" in body) == bool(content.closest)
            for offer in content.closest:
                assert shown(f"{offer.offer} ({offer.structure})") in body
                for code in offer.exclusions:
                    assert shown(EXCLUDED[code]) in body
            assert ("Autres structures saisies pour ce dossier" in body) == bool(others)
            for name in others:
                assert shown(name) in body
        assert ("Fin de trêve – " in email.subject) == content.truce_end
        _check_urgency_said_in_words_first(email, content.urgency)
        _check_html_says_what_the_text_says(email)

        sms = render_sms(content, TEMPLATES)
        assert len(sms) <= SMS_MAX_CHARS
        assert set(sms) <= GSM7_BASIC
        assert content.link in sms  # the link carries the reference
        assert to_gsm7(sms_stage_label(content.stage)) in sms
        if earliest:
            assert f"{earliest:%d/%m/%Y}" in sms
        assert ("Fin de treve" in sms) == (content.truce_end and not passed)
        assert ("Treve finie" in sms) == (content.truce_end and passed)
        assert ("Expulsion pas avant" in sms) == (earliest is not None and not content.truce_end and not passed)
        assert ("Expulsion possible dès" in sms) == (earliest is not None and not content.truce_end and passed)
        _check_text_only_carries(sms, content)


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _check_html_says_what_the_text_says(email: RenderedEmail) -> None:
    """Every line of the plain-text part is in the HTML part: its words in the page's text (case and
    spacing aside: the text shouts what the HTML makes bold), its links as the anchors' addresses. List
    markers ("- ") and a list title's " :" are the HTML's bullets and headings; "--" is the signature's."""
    shown = _normal(html.unescape(re.sub(r"<[^>]+>", " ", email.html)))
    hrefs = {html.unescape(href) for href in re.findall(r'href="([^"]+)"', email.html)}
    for raw in email.text.splitlines():
        line = raw.strip().removeprefix("- ").removesuffix(" :")
        if not line or line == "--":
            continue
        if linked := re.fullmatch(r"(.*) : (https?://\S+)", line):
            label, line = linked[1], linked[2]
            assert _normal(label) in shown, label
        if re.fullmatch(r"https?://\S+", line):
            assert line in hrefs, line
        else:
            assert _normal(line) in shown, line


URGENT_MARKERS = {Urgency.HIGH: "URGENT", Urgency.CRITICAL: "URGENCE CRITIQUE"}


def _check_urgency_said_in_words_first(email: RenderedEmail, urgency: Urgency) -> None:
    """HIGH and CRITICAL open the subject (after the heading) and the body, in words; the others do not."""
    marker = URGENT_MARKERS.get(urgency)
    subject_start = email.subject.removeprefix(f"[{PREFIX}] ")
    text_start = email.text.splitlines()[0]
    # The first paragraph after the page's heading, tags removed.
    html_start = re.sub(r"<[^>]+>", "", email.html.split("</h1>\n", 1)[1].split("\n", 1)[0])
    if marker is None:
        assert not subject_start.startswith(("URGENT", "URGENCE"))
        assert text_start == "Bonjour,"
        assert html_start == "Bonjour,"
    else:
        assert subject_start.startswith(f"{marker} – ")
        assert text_start.startswith(f"{marker} : ")
        assert html.unescape(html_start) == text_start


@pytest.mark.parametrize(
    ("urgency", "subject", "first_line"),
    [
        (Urgency.LOW, "[Prévention expulsions 90] Dossier 90-2026-000001", "Bonjour,"),
        (Urgency.NORMAL, "[Prévention expulsions 90] Dossier 90-2026-000001", "Bonjour,"),
        (
            Urgency.HIGH,
            "[Prévention expulsions 90] URGENT – Dossier 90-2026-000001",
            "URGENT : dossier d'urgence haute, à traiter en priorité.",
        ),
        (
            Urgency.CRITICAL,
            "[Prévention expulsions 90] URGENCE CRITIQUE – Dossier 90-2026-000001",
            "URGENCE CRITIQUE : dossier à traiter sans délai.",
        ),
    ],
)
def test_high_and_critical_urgency_open_the_subject_and_the_body_in_words(
    urgency: Urgency, subject: str, first_line: str
) -> None:
    content = _content("90-2026-000001", Stage.COMMANDEMENT_QUITTER, "Belfort", urgency, None)
    email = render_email(content, TEMPLATES)
    assert email.subject.startswith(subject)
    assert email.text.splitlines()[0] == first_line
    after_heading = html.unescape(email.html.split("</h1>\n", 1)[1].split("\n", 1)[0])
    marker = URGENT_MARKERS.get(urgency)
    # In words and in bold, never by colour alone.
    expected = (
        f"<p><strong>{marker} :</strong>{first_line.removeprefix(marker + ' :')}</p>" if marker else "<p>Bonjour,</p>"
    )
    assert after_heading == expected


@settings(max_examples=20, deadline=None)
@given(ref=refs, commune=communes, earliest=dates, size=st.integers(1, 17))
def test_digest_templates_list_every_file_and_fit_an_sms(
    ref: str, commune: str, earliest: date | None, size: int
) -> None:
    items = tuple(
        replace(_content(ref, stage, commune, Urgency.LOW, earliest), stage_update=True) for stage in list(Stage)[:size]
    )
    for fallback in FALLBACKS:
        digest = DigestContent(date(2026, 3, 2), items, LINK_BASE, fallback)
        email = render_digest_email(digest, TEMPLATES)
        assert "02/03/2026" in email.subject
        assert email.text.count(f"{LINK_BASE}/{ref}") == len(items)
        assert email.html.count(f'href="{LINK_BASE}/{ref}"') == len(items)
        for item in items:
            assert stage_label(item.stage) in email.text
        _check_html_says_what_the_text_says(email)
        sms = render_digest_sms(digest, TEMPLATES)
        assert len(sms) <= SMS_MAX_CHARS
        assert set(sms) <= GSM7_BASIC
        assert f"{len(items)} dossier" in sms
        assert "). Urg. faible. " in sms  # the highest urgency of its files, in words
        assert LINK_BASE in sms
        for part in (email.subject, email.text, email.html):
            _check_text_only_carries(part, items[0], day=digest.day, count=len(items))
        assert not FORBIDDEN.search(sms)


@pytest.mark.parametrize(
    ("urgencies", "subject", "first_line"),
    [
        (
            (Urgency.LOW, Urgency.NORMAL, Urgency.NORMAL),
            "[Prévention expulsions 90] Mises à jour du 04/03/2026 – 3 dossiers (Urgence normale)",
            "Urgence : 2 dossiers en urgence normale, 1 dossier en urgence faible.",
        ),
        (
            (Urgency.LOW,),
            "[Prévention expulsions 90] Mises à jour du 04/03/2026 – 1 dossier (Urgence faible)",
            "Urgence : 1 dossier en urgence faible.",
        ),
        # Routing keeps HIGH and CRITICAL out of digests; should one come, it is said first, like an alert.
        (
            (Urgency.NORMAL, Urgency.CRITICAL),
            "[Prévention expulsions 90] URGENCE CRITIQUE – Mises à jour du 04/03/2026 – 2 dossiers (URGENCE CRITIQUE)",
            "URGENCE CRITIQUE : 1 dossier en urgence critique, 1 dossier en urgence normale.",
        ),
    ],
)
def test_a_digest_says_its_urgency_in_words_in_the_subject_and_first(
    urgencies: tuple[Urgency, ...], subject: str, first_line: str
) -> None:
    items = tuple(
        replace(_content(f"90-2026-00000{n}", Stage.COMMANDEMENT_PAYER, "Belfort", urgency, None), stage_update=True)
        for n, urgency in enumerate(urgencies, start=1)
    )
    email = render_digest_email(DigestContent(date(2026, 3, 4), items, LINK_BASE), TEMPLATES)
    assert email.subject == subject
    assert email.text.splitlines()[0] == first_line
    after_heading = html.unescape(re.sub(r"<[^>]+>", "", email.html.split("</h1>\n", 1)[1].split("\n", 1)[0]))
    assert after_heading == first_line


def test_templates_only_read_the_allowed_variables() -> None:
    # An alert can only show what AlertContent hands out: a template naming anything else is refused.
    assert set(ALLOWED_VARIABLES) == set(TEMPLATE_NAMES)
    sources = dict.fromkeys(TEMPLATE_NAMES, "{{ prefix }}")
    sources["email.txt"] = "{{ prefix }} {{ tenant_name }}"
    with pytest.raises(AlertTemplateError, match=r"email\.txt reads variables that alerts must not carry.*tenant_name"):
        AlertTemplates(sources, prefix=PREFIX, sms_prefix=SMS_PREFIX)


def test_a_missing_or_broken_template_is_refused_when_loaded() -> None:
    sources = dict.fromkeys(TEMPLATE_NAMES, "{{ prefix }}")
    with pytest.raises(AlertTemplateError, match=r"sms\.txt is missing"):
        AlertTemplates({k: v for k, v in sources.items() if k != "sms.txt"}, prefix=PREFIX, sms_prefix=SMS_PREFIX)
    with pytest.raises(AlertTemplateError, match=r"email\.html, line 1"):
        AlertTemplates({**sources, "email.html": "{% if %}"}, prefix=PREFIX, sms_prefix=SMS_PREFIX)


def test_packaged_templates_are_all_shipped() -> None:
    folder = files("services.notifier") / "templates"
    # The removal notice's templates are checked by domain/removal.py (tests/unit/notifier/test_notifier_removal.py),
    # the new link's by link_requests.py (tests/unit/notifier/test_notifier_new_link.py).
    assert {entry.name for entry in folder.iterdir()} == {
        *TEMPLATE_NAMES,
        *REMOVAL_TEMPLATE_NAMES,
        *NEW_LINK_TEMPLATE_NAMES,
    }


def test_html_escapes_values_and_text_keeps_them() -> None:
    content = _content("90-2026-000001", Stage.ASSIGNATION, "<b>Belfort</b> & co", Urgency.HIGH, None)
    email = render_email(content, TEMPLATES)
    assert "&lt;b&gt;Belfort&lt;/b&gt; &amp; co" in email.html
    assert "<b>Belfort" not in email.html
    assert "<b>Belfort</b> & co" in email.text
    notice = FallbackNotice(FallbackKind.DEFAULT_REFERENT, "Association <Sud> & Cie")
    assert "« Association &lt;Sud&gt; &amp; Cie »" in render_email(replace(content, fallback=notice), TEMPLATES).html


def test_a_line_break_in_a_value_cannot_add_a_header_line() -> None:
    content = _content("90-2026-000001", Stage.ASSIGNATION, "Belfort\nBcc: x@y.test", Urgency.HIGH, None)
    assert "\n" not in render_email(content, TEMPLATES).subject
    assert "\n" not in render_sms(content, TEMPLATES)


def test_s06_alert_shows_the_winter_truce_date_and_normal_urgency() -> None:
    content = _content("90-2025-000042", Stage.COMMANDEMENT_QUITTER, "Belfort", Urgency.NORMAL, date(2026, 4, 1))
    email = render_email(content, TEMPLATES)
    assert email.subject == (
        "[Prévention expulsions 90] Dossier 90-2025-000042 – Commandement de quitter les lieux – Belfort"
        " (Urgence normale)"
    )
    assert "Expulsion impossible avant le 01/04/2026" in email.text
    assert render_sms(content, TEMPLATES) == (
        "Expulsions 90: 90-2025-000042, Cdt de quitter, Belfort. Urg. normale. Expulsion pas avant 01/04/2026."
        " https://prevex.example/dossiers/90-2025-000042"
    )


@pytest.mark.parametrize(
    ("stage_update", "intro"),
    [
        (True, "Rappel : un dossier que suit votre structure arrive à la sortie de la trêve hivernale."),
        (
            False,
            "Un dossier de prévention des expulsions locatives vous est orienté à l'approche de la sortie de la"
            " trêve hivernale.",
        ),
    ],
)
def test_s06_truce_end_reminder_says_when_expulsion_becomes_possible(stage_update: bool, intro: str) -> None:
    content = _content("90-2025-000042", Stage.COMMANDEMENT_QUITTER, "Belfort", Urgency.NORMAL, date(2026, 4, 1))
    content = replace(content, stage_update=stage_update, truce_end=True)
    email = render_email(content, TEMPLATES)
    assert email.subject == (
        "[Prévention expulsions 90] Fin de trêve – Dossier 90-2025-000042 – Commandement de quitter les lieux"
        " – Belfort (Urgence normale)"
    )
    paragraph = (
        "La trêve hivernale prend fin le 31 mars : l'expulsion est possible à partir du 01/04/2026. Merci de"
        " vérifier que les démarches de maintien dans les lieux ou de relogement sont engagées."
    )
    for body in (email.text, html.unescape(re.sub(r"<[^>]+>", "", email.html))):
        assert intro in body
        assert paragraph in body
        assert "Expulsion impossible avant" not in body
        assert "franchi une nouvelle étape" not in body
    assert render_sms(content, TEMPLATES) == (
        "Expulsions 90: 90-2025-000042, Cdt de quitter, Belfort. Urg. normale. Fin de treve: expulsion dès"
        " 01/04/2026."
        " https://prevex.example/dossiers/90-2025-000042"
    )


def test_every_truce_end_sms_fits_one_segment_with_its_marker_and_date() -> None:
    # The reminder's marker and date are the longest SMS: every stage × urgency × marker still fits one
    # segment, the commune giving way and nothing else.
    commune = "Saint-Germain-le-Châtelet-et-les-Environs-Lointains"
    for content in _all_variants("90-2026-000001", commune, date(2026, 4, 1)):
        sms = render_sms(replace(content, truce_end=True), TEMPLATES)
        assert len(sms) <= SMS_MAX_CHARS
        assert set(sms) <= GSM7_BASIC
        assert "Fin de treve: expulsion dès 01/04/2026." in sms
        assert sms.endswith(content.link)


def test_sms_transliterates_what_gsm7_lacks() -> None:
    assert to_gsm7("Clôture – Œuvre «Saint-Étienne» ’") == 'Cloture - OEuvre "Saint-Étienne" \''
    assert to_gsm7("Châtenois-les-Forges") == "Chatenois-les-Forges"
    assert to_gsm7("日本") == "??"


def test_a_long_commune_is_shortened_in_the_sms_but_not_in_the_email() -> None:
    commune = "Saint-Germain-le-Châtelet-et-les-Environs-Lointains"
    content = _content("90-2026-000001", Stage.SIGNALEMENT_CAF, commune, Urgency.CRITICAL, date(2026, 4, 1))
    sms = render_sms(content, TEMPLATES)
    assert len(sms) == SMS_MAX_CHARS
    assert "Saint-Ger" in sms
    assert "Lointains" not in sms
    assert "TRES URGENT" in sms
    assert commune in render_email(content, TEMPLATES).text


def test_the_reference_and_the_link_stay_when_the_commune_then_the_urgency_give_way() -> None:
    # The longest markers: the commune goes first, then the urgency words; the reference and link never.
    content = _content("90-2026-000001", Stage.SIGNIFICATION_DECISION, "Belfort", Urgency.CRITICAL, date(2026, 4, 1))
    content = replace(content, stage_update=True, fallback=FALLBACKS[2], manual_orientation=True)
    assert render_sms(content, TEMPLATES) == (
        "Expulsions 90 (repli) (MAJ): 90-2026-000001, Signif. décision. Expulsion pas avant 01/04/2026. A orienter."
        " https://prevex.example/dossiers/90-2026-000001"
    )
    shorter = replace(content, stage=Stage.AUDIENCE)
    assert render_sms(shorter, TEMPLATES) == (
        "Expulsions 90 (repli) (MAJ): 90-2026-000001, Audience. TRES URGENT. Expulsion pas avant 01/04/2026. A"
        " orienter. https://prevex.example/dossiers/90-2026-000001"
    )


def test_every_sms_variant_carries_the_reference_and_ends_with_the_link() -> None:
    commune = "Saint-Germain-le-Châtelet"
    dropped_urgency = 0  # among the marked variants
    for content in _all_variants("90-2026-000001", commune, date(2026, 4, 1)):
        sms = render_sms(content, TEMPLATES)
        assert len(sms) <= SMS_MAX_CHARS
        assert "90-2026-000001, " in sms
        assert sms.endswith(f" {content.link}")
        plain = content.fallback is None and not content.manual_orientation and not content.stage_update
        if plain:
            # A partner's own first alert always names the commune (cut at worst) and the urgency.
            assert "Sain" in sms
            assert to_gsm7(sms_urgency_label(content.urgency)) in sms
        else:
            dropped_urgency += to_gsm7(sms_urgency_label(content.urgency)) not in sms
    # The urgency gives way only beside the markers of a fallback, an update or an F1 orientation.
    assert dropped_urgency > 0


def _with_sms_prefix(sms_prefix: str) -> AlertTemplates:
    sources = {name: (files("services.notifier") / "templates" / name).read_text("utf-8") for name in TEMPLATE_NAMES}
    return AlertTemplates(sources, prefix=PREFIX, sms_prefix=sms_prefix)


def test_an_sms_that_cannot_fit_is_a_clear_error_at_render_time() -> None:
    long_heading = _with_sms_prefix("Prévention des expulsions locatives du Territoire de Belfort")
    content = _content("90-2026-000001", Stage.COMMANDEMENT_QUITTER, "Belfort", Urgency.NORMAL, date(2026, 4, 1))
    with pytest.raises(SmsTooLongError, match=r"SMS of \d+ characters exceeds 160 .* shorten the SMS heading"):
        render_sms(content, long_heading)
    with pytest.raises(SmsTooLongError):
        check_templates(long_heading, link_base_url=LINK_BASE)


def test_the_packaged_templates_pass_the_startup_check() -> None:
    # With the default base, whose signed-token link (25 + 20 characters) is as long as the old reference link.
    check_templates(TEMPLATES, link_base_url="https://prevex.example/d")


def test_the_startup_check_covers_the_truce_end_sms() -> None:
    # A heading two characters longer still fits every other SMS, not the reminder's longer marker and date.
    templates = _with_sms_prefix("Expulsions T-90")
    for content in _all_variants("90-2026-000001", "Belfort", date(2026, 4, 1)):
        if not content.truce_end:
            render_sms(content, templates)
    with pytest.raises(SmsTooLongError):
        check_templates(templates, link_base_url=LINK_BASE)


def test_alert_content_has_no_field_for_personal_data() -> None:
    # Adding a field to AlertContent is a data-protection decision: this list changes with it, knowingly.
    assert list(AlertContent.__dataclass_fields__) == [
        "procedure_short_ref",
        "stage",
        "commune",
        "urgency",
        "earliest_expulsion_date",
        "link",
        "today",
        "warnings",
        "reasons",  # codes of fixed sentences on the case's handling: no household clause has one
        "offers",  # référentiel names of the structure's offers: no personal data
        "others",  # référentiel names of the other assigned structures: no personal data
        "respond_by",  # orientation's escalation deadline: a date of the case's handling
        "hearing_date",  # the procedure's legal dates, which the issue asks partners to be told
        "commandement_deadline",
        "closest",  # F1: référentiel names and exclusion codes (one code for any household criterion)
        "manual_orientation",
        "stage_update",
        "truce_end",
        "fallback",
        "refusal",  # the refusing structure's name and a reason code: no personal data
        "escalation",  # working days waited and, for the secretariat, the silent structure's name
    ]


@pytest.mark.parametrize(
    ("rules", "mandatory", "codes"),
    [
        ((), False, ()),
        ((), True, ("MANDATORY",)),
        (("CCAS-B.stages", "CCAS-B.zone", "CCAS-B.parc"), False, ("STAGE", "ZONE", "PARC")),
        # Two offers of one structure: each reason once, in evaluation order, MANDATORY first.
        (
            ("A.zone", "A.stages", "B.stages", "B.landlord_types", "B.landlord_siren_in"),
            True,
            ("MANDATORY", "ZONE", "STAGE", "BAILLEUR"),
        ),
        # Household clauses tell a bracket of the household's situation: never a reason shown.
        (("FSL.debt_max", "FSL.resources_max", "FSL.compositions", "FSL.allocataire", "FSL.children_min"), False, ()),
        (("FSL.months_of_rent_min", "BDF.requires_surendettement", "FSL.debt_min"), False, ()),
        # A rule this notifier does not know (a newer orientation) is left out, not guessed.
        (("X.some_future_rule", "no-dot-at-all", ""), False, ()),
    ],
)
def test_assignment_reasons_keep_only_the_case_handling_clauses(
    rules: tuple[str, ...], mandatory: bool, codes: tuple[str, ...]
) -> None:
    assert assignment_reasons(rules, mandatory=mandatory) == codes


def test_why_you_reads_in_plain_french_in_both_parts_and_not_in_the_sms() -> None:
    content = replace(
        _content("90-2026-000001", Stage.ASSIGNATION, "Belfort", Urgency.NORMAL, None),
        reasons=("MANDATORY", "ZONE"),
    )
    email = render_email(content, TEMPLATES)
    assert (
        "Pourquoi votre structure :\n- la charte prévoit que votre structure soit saisie à cette étape de la"
        " procédure\n- la commune du logement est dans votre zone d'intervention\n"
    ) in email.text
    assert "<h2>Pourquoi votre structure</h2>" in email.html
    assert "<li>la commune du logement est dans votre zone d&#39;intervention</li>" in email.html
    # 160 characters have no room for it: the SMS is the one without reasons.
    assert render_sms(content, TEMPLATES) == render_sms(replace(content, reasons=()), TEMPLATES)


def test_an_unknown_stored_reason_code_is_not_shown() -> None:
    content = replace(
        _content("90-2026-000001", Stage.ASSIGNATION, "Belfort", Urgency.NORMAL, None), reasons=("NOT_A_CODE",)
    )
    email = render_email(content, TEMPLATES)
    assert "Pourquoi" not in email.text
    assert "NOT_A_CODE" not in email.text + email.html
