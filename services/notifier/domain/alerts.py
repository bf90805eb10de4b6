"""What an alert says, rendered from Jinja2 templates. Pure: the template texts are given by the caller.

docs/domain.md §8.3 and §9: an alert carries a reference, the stage, the commune, the urgency, the
earliest expulsion date when relevant, and a link to the authenticated space — never a name, an
address, an amount or court details. ``AlertContent`` has no field that could hold them, and the
templates only see the variables ``ALLOWED_VARIABLES`` lists (checked when ``AlertTemplates`` is built).

Three renderings per alert: the email (subject, plain text, HTML with autoescape) and the SMS (GSM-7,
at most 160 characters, one segment). A daily digest groups the low-urgency stage updates of one
contact (``DigestContent``); it says its urgency in words too (the highest in the subject, the count of
each atop the body).

**SMS budget.** The heading, markers, procedure reference and link are kept whole; the link is
``<base>/<token>``, a signed token of fixed length that opens the case in the partner workspace
(``services/platform/links.py``), and the reference is what a partner quotes on the phone. When the text
exceeds 160 characters, what gives way is, in order: a legal warning (``schemas/warnings.py``; added only
when the whole text fits with it), the commune (cut, down to ``SMS_MIN_COMMUNE`` characters, then left
out), the urgency words. If even that does not fit, ``SmsTooLongError`` says so — a configuration problem
(heading or link base too long), which ``check_templates`` reveals at start-up.

**Dates read right.** "Expulsion impossible avant le 01/04/2026" is only true while that day is ahead:
from that day on (``AlertContent.today``, the sending day, which the caller gives) every template says
the expulsion is possible since that date.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Final, NamedTuple

import jinja2
import jinja2.meta

from schemas.assignment import REFUSAL_REASONS, refusal_label
from schemas.notification import FallbackKind
from schemas.procedure import Urgency
from schemas.stages import Stage, stage_label
from schemas.warnings import PARTNER_WARNINGS, warning_texts
from services.platform.links import TOKEN_LENGTH

__all__ = [
    "ALLOWED_VARIABLES",
    "MANUAL_ORIENTATION_TAG",
    "SMS_MAX_CHARS",
    "TEMPLATE_NAMES",
    "AlertContent",
    "AlertTemplateError",
    "AlertTemplates",
    "ClosestOffer",
    "DigestContent",
    "EscalationNotice",
    "FallbackNotice",
    "RefusalNotice",
    "RenderedEmail",
    "SmsTooLongError",
    "assignment_reasons",
    "check_template_sources",
    "check_templates",
    "next_legal_date",
    "one_line",
    "render_digest_email",
    "render_digest_sms",
    "render_email",
    "render_sms",
    "render_templated_email",
    "response_request",
    "sms_stage_label",
    "sms_urgency_label",
    "to_gsm7",
    "urgency_label",
]

MANUAL_ORIENTATION_TAG: Final = "Aucune offre – orientation manuelle requise"
SMS_MAX_CHARS: Final = 160
SMS_MIN_COMMUNE: Final = 4
"""Characters of the commune an SMS keeps at least."""
TEMPLATE_NAMES: Final = (
    "email_subject.txt",
    "email.txt",
    "email.html",
    "sms.txt",
    "digest_subject.txt",
    "digest.txt",
    "digest.html",
    "digest_sms.txt",
)

# Every value a template may read. A template naming anything else is refused when loaded, so no
# template change can start printing a field this module does not hand out.
_ALERT_VARIABLES = frozenset(
    {
        "prefix",
        "ref",
        "stage",
        "commune",
        "urgency",
        "earliest",
        "link",
        "manual_tag",
        "update",
        "truce_end",
        "fallback",
        "expulsion_possible",
        "warnings",
        "urgent",
        "why",
        "offers",
        "others",
        "next_date",
        "respond",
        "closest",
        "refusal",
        "escalation",
    }
)
_DIGEST_VARIABLES = frozenset({"prefix", "day", "items", "count", "link", "fallback", "urgent", "urgency", "urgencies"})
ALLOWED_VARIABLES: Final[Mapping[str, frozenset[str]]] = {
    name: _DIGEST_VARIABLES if name.startswith("digest") else _ALERT_VARIABLES for name in TEMPLATE_NAMES
}

_URGENCY_LABELS = {
    Urgency.LOW: "Urgence faible",
    Urgency.NORMAL: "Urgence normale",
    Urgency.HIGH: "Urgence haute",
    Urgency.CRITICAL: "URGENCE CRITIQUE",
}
_URGENCY_RANK = {urgency: rank for rank, urgency in enumerate(Urgency)}  # LOW < NORMAL < HIGH < CRITICAL
_SMS_URGENCY_LABELS = {
    Urgency.LOW: "Urg. faible",
    Urgency.NORMAL: "Urg. normale",
    Urgency.HIGH: "Urg. haute",
    Urgency.CRITICAL: "TRES URGENT",
}
# HIGH and CRITICAL are said in words first, in the subject and atop the body: a mail client may cut
# the subject's end (where the urgency label is) and colour alone tells nothing to a screen reader.
_URGENT = {
    Urgency.HIGH: {"marker": "URGENT", "note": "dossier d'urgence haute, à traiter en priorité."},
    Urgency.CRITICAL: {"marker": "URGENCE CRITIQUE", "note": "dossier à traiter sans délai."},
}
# Why a structure was asked, in plain French, by the reason codes ``assignment_reasons`` derives from the
# decision. Only the clauses about the case's handling (stage, zone, parc, bailleur) and the charte's
# mandatory referral: a passed clause on the household (debt, resources, composition, allocataire…) would
# tell a bracket of its situation, so it has no code and is never shown.
_WHY = {
    "MANDATORY": "la charte prévoit que votre structure soit saisie à cette étape de la procédure",
    "STAGE": "votre offre couvre cette étape de la procédure",
    "ZONE": "la commune du logement est dans votre zone d'intervention",
    "PARC": "le parc du logement (social ou privé) est celui que couvre votre offre",
    "BAILLEUR": "le bailleur fait partie de ceux que couvre votre offre",
}
_RULE_REASONS = {
    "stages": "STAGE",
    "zone": "ZONE",
    "parc": "PARC",
    "landlord_types": "BAILLEUR",
    "landlord_siren_in": "BAILLEUR",
}
# Why an offer that came closest was excluded (fallback F1, told to the CCAPEX secretariat), by the codes of
# ``schemas.orientation.ExclusionReason``. A clause on the household is one code whose sentence says no
# more than that: which criterion failed would tell a bracket of the household's situation.
_EXCLUDED = {
    "UNAVAILABLE": "l'offre n'est pas disponible à cette date (structure ou offre inactive, suspendue ou hors de"
    " sa période de validité)",
    "REMOVED": "la structure a été retirée de ce dossier par la CCAPEX",
    "ZONE": "la commune du logement est hors de sa zone d'intervention",
    "STAGE": "l'offre ne couvre pas cette étape de la procédure",
    "PARC": "le parc du logement (social ou privé) n'est pas celui que couvre l'offre",
    "BAILLEUR": "le bailleur n'est pas de ceux que couvre l'offre",
    "HOUSEHOLD": "un critère portant sur la situation du ménage n'est pas rempli (à voir dans l'espace sécurisé)",
}
# Stage labels that fit an SMS; "Cdt" is the usual abbreviation of "commandement" among commissaires de justice.
_SMS_STAGE_LABELS = {
    Stage.IMPAYE_CONSTATE: "Impayé constaté",
    Stage.SIGNALEMENT_CAF: "Signalement CAF",
    Stage.SAISINE_CCAPEX_BAILLEUR: "Saisine CCAPEX",
    Stage.COMMANDEMENT_PAYER: "Cdt de payer",
    Stage.ASSIGNATION: "Assignation",
    Stage.DSF_TRANSMIS: "DSF transmis",
    Stage.AUDIENCE: "Audience",
    Stage.DECISION: "Jugement",
    Stage.SIGNIFICATION_DECISION: "Signif. décision",
    Stage.COMMANDEMENT_QUITTER: "Cdt de quitter",
    Stage.DEMANDE_CFP: "Réquisition CFP",
    Stage.DECISION_CFP: "Décision CFP",
    Stage.EXPULSION_REALISEE: "Expulsion faite",
    Stage.PROTOCOLE_COHESION_SOCIALE: "Protocole signé",
    Stage.SURENDETTEMENT_RECEVABLE: "Surendettement",
    Stage.PLAN_APUREMENT: "Plan d'apurement",
    Stage.CLOTURE: "Clôture",
}

# GSM 03.38 basic character set (without the escape table): what one SMS segment carries as is.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_TRANSLITERATIONS = {"’": "'", "–": "-", "—": "-", "«": '"', "»": '"', "œ": "oe", "Œ": "OE", "\u00a0": " ", "…": "."}


@dataclass(frozen=True)
class FallbackNotice:
    """Why this recipient gets the alert instead of the usual one (fallback F3, docs/domain.md §5.5).

    ``unreachable`` is the name of the structure none of whose contacts could be reached: shown to the
    default referent, which must pass the file on; a structure's own generic contact needs no name.
    """

    kind: FallbackKind
    unreachable: str | None = None


@dataclass(frozen=True)
class RefusalNotice:
    """A partner refused the file (told to the CCAPEX secretariat): the refusing structure's name in the
    référentiel and the refusal's reason code (shown as its French label), never the partner's comment."""

    structure: str
    reason_code: str


@dataclass(frozen=True)
class EscalationNotice:
    """An assignment still unanswered after ``working_days`` working days: a reminder to its structure
    (``silent_structure`` None), or the CCAPEX secretariat told which structure has not answered."""

    working_days: int
    silent_structure: str | None = None


class ClosestOffer(NamedTuple):
    """An offer that came close to matching a case no offer matched (fallback F1): its référentiel name, its
    structure's, and the codes of why it was excluded (``schemas.orientation.ExclusionReason``), shown to the
    CCAPEX secretariat as fixed sentences; a code this module does not know is not shown. A named tuple: the
    notifier stores it as a JSON array."""

    offer: str
    structure: str
    exclusions: tuple[str, ...]


@dataclass(frozen=True)
class AlertContent:
    """Everything an alert may show. Adding a field here is a data-protection decision.

    ``stage_update``: the structure already holds the file and is told it moved on (docs/domain.md
    §5.4). ``refusal``: told to the CCAPEX secretariat, the structure that refused the file and why.
    ``escalation``: the file waits for the structure's answer (a reminder, or the secretariat told).
    ``manual_orientation``: fallback F1, no offer matched. ``truce_end``: a "sortie de trêve"
    reminder (docs/domain.md §7), ``earliest_expulsion_date`` being the day the trêve ends.
    ``today``: the day the alert is sent (in the notifier's zone), given by the caller's clock: from
    ``earliest_expulsion_date`` on, the expulsion reads possible since that date. ``warnings``: the codes of
    the legal warnings meant for this structure (``schemas/warnings.py``: fixed sentences, no personal data).
    ``reasons``: why this structure was asked (``assignment_reasons``' codes, shown as fixed sentences).
    ``offers``: the référentiel names of this structure's offers the case was oriented to.
    ``others``: the names of the other structures assigned the case (référentiel names, to coordinate).
    ``respond_by``: the structure is asked to accept or refuse in the workspace before this day (orientation's
    escalation deadline, in working days); ``hearing_date`` and ``commandement_deadline``: the procedure's
    legal dates, which with ``earliest_expulsion_date`` give the next one that matters (``next_legal_date``).
    ``closest``: for fallback F1, the offers that came closest and why each was excluded.
    """

    procedure_short_ref: str
    stage: Stage
    commune: str
    urgency: Urgency
    earliest_expulsion_date: date | None
    link: str
    today: date
    warnings: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    offers: tuple[str, ...] = ()
    others: tuple[str, ...] = ()
    respond_by: date | None = None
    hearing_date: date | None = None
    commandement_deadline: date | None = None
    closest: tuple[ClosestOffer, ...] = ()
    manual_orientation: bool = False
    stage_update: bool = False
    truce_end: bool = False
    fallback: FallbackNotice | None = None
    refusal: RefusalNotice | None = None
    escalation: EscalationNotice | None = None


@dataclass(frozen=True)
class DigestContent:
    """One contact's low-urgency stage updates of one day; ``link`` opens the list of its files."""

    day: date
    items: tuple[AlertContent, ...]
    link: str
    fallback: FallbackNotice | None = None


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class SmsTooLongError(ValueError):
    """The rendered SMS does not fit one GSM-7 segment, even with the commune shortened."""


class AlertTemplateError(ValueError):
    """A template is missing, does not parse, or reads a variable it is not allowed to."""


class AlertTemplates:
    """The French alert templates, compiled once: text ones plain, ``.html`` ones with autoescape.

    ``sources`` maps each of ``TEMPLATE_NAMES`` to its Jinja2 text. Raises ``AlertTemplateError`` when one
    is missing, does not parse, or uses a variable outside ``ALLOWED_VARIABLES``.
    """

    def __init__(self, sources: Mapping[str, str], *, prefix: str, sms_prefix: str) -> None:
        self.prefix = prefix
        self.sms_prefix = sms_prefix
        self._env = jinja2.Environment(
            loader=jinja2.DictLoader(dict(sources)),
            # HTML is escaped (a commune or a structure name may hold "<" or "&"); text is not.
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        check_template_sources(sources, ALLOWED_VARIABLES, "alerts")

    def render(self, name: str, values: Mapping[str, Any]) -> str:
        """Render template ``name`` with ``values``, surrounding whitespace stripped."""
        return self._env.get_template(name).render(values).strip()


def check_template_sources(sources: Mapping[str, str], allowed: Mapping[str, frozenset[str]], what: str) -> None:
    """Raise ``AlertTemplateError`` when a template ``allowed`` names is missing from ``sources``, does not
    parse, or reads a variable outside its set (``what`` says whose, in the message): the one check of every
    kind of message (alerts, removal notices, new links), so that no template can print a field its module
    does not hand out."""
    parser = jinja2.Environment(autoescape=False)  # noqa: S701 (parsed for its variables, never rendered)
    for name, variables in allowed.items():
        if name not in sources:
            raise AlertTemplateError(f"template {name} is missing")
        try:
            used = jinja2.meta.find_undeclared_variables(parser.parse(sources[name]))
        except jinja2.TemplateSyntaxError as error:
            raise AlertTemplateError(f"template {name}, line {error.lineno}: {error.message}") from error
        if extra := used - variables:
            raise AlertTemplateError(f"template {name} reads variables that {what} must not carry: {sorted(extra)}")


def assignment_reasons(matched_rules: Iterable[str], *, mandatory: bool) -> tuple[str, ...]:
    """The reason codes of an assignment, from its ``matched_rules`` (``<offer_id>.<rule>``) and whether
    the charte makes the referral mandatory at this stage: each code once, ``MANDATORY`` first, then in
    the order the clauses were evaluated. Clauses on the household, and rules this module does not know,
    give no code (an alert tells the case's handling, never the household's situation)."""
    codes = ["MANDATORY"] if mandatory else []
    for rule in matched_rules:
        code = _RULE_REASONS.get(rule.rpartition(".")[2])
        if code is not None and code not in codes:
            codes.append(code)
    return tuple(codes)


def urgency_label(urgency: Urgency) -> str:
    """French urgency label shown in emails."""
    return _URGENCY_LABELS[urgency]


def sms_stage_label(stage: Stage) -> str:
    """Short French stage label for SMS."""
    return _SMS_STAGE_LABELS[stage]


def sms_urgency_label(urgency: Urgency) -> str:
    """Short French urgency label for SMS."""
    return _SMS_URGENCY_LABELS[urgency]


def next_legal_date(content: AlertContent) -> str | None:
    """The procedure's next date that matters for the partner, in words true on ``content.today``.

    Among the hearing, the end of the commandement's period and the earliest expulsion date (not in a
    truce-end reminder, whose paragraph says it), the soonest still ahead; when all have passed, the latest,
    worded as past: « Audience prévue le 12/05/2026 » / « … (date passée) », « Fin du délai du commandement
    le 12/05/2026 » / « Délai du commandement expiré le 12/05/2026 », « Expulsion impossible avant le
    01/04/2026 » / « Expulsion possible depuis le 01/04/2026 » (the expulsion is possible from that very day;
    a hearing or the last day of a period is still ahead on its day). ``None`` without any date.
    """
    today = content.today
    dates: list[tuple[date, bool, str]] = []  # (day, still ahead, words)
    if content.hearing_date is not None:
        day, ahead = content.hearing_date, content.hearing_date >= today
        dates.append((day, ahead, f"Audience prévue le {_day(day)}" + ("" if ahead else " (date passée)")))
    if content.commandement_deadline is not None:
        day, ahead = content.commandement_deadline, content.commandement_deadline >= today
        words = "Fin du délai du commandement le" if ahead else "Délai du commandement expiré le"
        dates.append((day, ahead, f"{words} {_day(day)}"))
    if content.earliest_expulsion_date is not None and not content.truce_end:
        day, ahead = content.earliest_expulsion_date, content.earliest_expulsion_date > today
        dates.append((day, ahead, f"Expulsion {'impossible avant' if ahead else 'possible depuis'} le {_day(day)}"))
    upcoming = [entry for entry in dates if entry[1]]
    if upcoming:
        return min(upcoming)[2]
    return max(dates)[2] if dates else None


def response_request(content: AlertContent) -> str | None:
    """What the structure is asked to do, by when: accept or refuse the case in the workspace before
    ``respond_by`` (the day orientation's escalation sends a reminder), worded on ``content.today``;
    ``None`` when the alert asks no answer (no ``respond_by``: a stage update, a notice to the secretariat)."""
    if content.respond_by is None:
        return None
    day = _day(content.respond_by)
    if content.today < content.respond_by:
        return (
            f"Merci d'accepter ou de refuser ce dossier dans l'espace sécurisé avant le {day} : sans réponse à"
            " cette date, une relance vous sera adressée, puis le secrétariat de la CCAPEX sera prévenu."
        )
    return (
        f"Votre réponse était attendue avant le {day} : merci d'accepter ou de refuser ce dossier sans attendre"
        " dans l'espace sécurisé."
    )


@dataclass(frozen=True)
class _Style:
    """How one medium names stages and urgencies, and which heading it carries."""

    stage: Callable[[Stage], str]
    urgency: Callable[[Urgency], str]
    sms: bool


_EMAIL = _Style(stage_label, urgency_label, sms=False)
_SMS = _Style(sms_stage_label, sms_urgency_label, sms=True)


def render_email(content: AlertContent, templates: AlertTemplates) -> RenderedEmail:
    """Subject, plain text and HTML of the email alert."""
    return render_templated_email(templates, "email", _alert_values(content, templates, _EMAIL))


def render_sms(content: AlertContent, templates: AlertTemplates) -> str:
    """The SMS text in GSM-7, at most 160 characters; raises ``SmsTooLongError`` when it cannot fit.

    The heading, markers, reference and link (``<base>/<token>``, which opens the case) are always there.
    What gives way when the text is too long, in this order: the legal warnings (shown only when the whole
    text fits with them), the commune (cut, down to ``SMS_MIN_COMMUNE`` characters, then left out), the
    urgency words. A partner always gets the reference to quote and the link to open.
    """
    if content.warnings:
        with_warnings = _sms_text(templates, _alert_values(content, templates, _SMS))
        if len(with_warnings) <= SMS_MAX_CHARS:
            return with_warnings
        content = replace(content, warnings=())
    values = _alert_values(replace(content, commune=to_gsm7(content.commune)), templates, _SMS)
    while True:
        text = _sms_text(templates, values)
        excess = len(text) - SMS_MAX_CHARS
        if excess <= 0:
            return text
        commune: str | None = values["commune"]
        if commune is not None:
            # Shorten the commune by what is missing (the template's "." follows the cut); below
            # SMS_MIN_COMMUNE characters it tells nothing and goes.
            keep = len(commune) - excess
            values["commune"] = commune[:keep].rstrip() if keep >= SMS_MIN_COMMUNE else None
        elif values["urgency"] is not None:
            values["urgency"] = None
        else:
            raise SmsTooLongError(
                f"SMS of {len(text)} characters exceeds {SMS_MAX_CHARS} even without the commune and the"
                " urgency: shorten the SMS heading or the link base URL"
            )


def _sms_text(templates: AlertTemplates, values: Mapping[str, Any]) -> str:
    return to_gsm7(one_line(templates.render("sms.txt", values)))


def render_digest_email(content: DigestContent, templates: AlertTemplates) -> RenderedEmail:
    """Subject, plain text and HTML of a daily digest of stage updates."""
    return render_templated_email(templates, "digest", _digest_values(content, templates, _EMAIL))


def render_templated_email(templates: AlertTemplates, kind: str, values: Mapping[str, Any]) -> RenderedEmail:
    """The email whose templates are ``<kind>_subject.txt``, ``<kind>.txt`` and ``<kind>.html``, rendered with
    ``values``: a one-line subject, the text and HTML parts (every kind of message: alert, digest, removal
    notice, new link)."""
    return RenderedEmail(
        subject=one_line(templates.render(f"{kind}_subject.txt", values)),
        text=templates.render(f"{kind}.txt", values) + "\n",
        html=templates.render(f"{kind}.html", values) + "\n",
    )


def render_digest_sms(content: DigestContent, templates: AlertTemplates) -> str:
    """The digest as one SMS: how many files moved on, and the link to the list."""
    text = to_gsm7(one_line(templates.render("digest_sms.txt", _digest_values(content, templates, _SMS))))
    if len(text) > SMS_MAX_CHARS:
        raise SmsTooLongError(f"digest SMS of {len(text)} characters exceeds {SMS_MAX_CHARS}")
    return text


def to_gsm7(text: str) -> str:
    """Replace every character outside the GSM-7 basic set: accents dropped, typography simplified."""
    out = []
    for char in text:
        if char in _GSM7:
            out.append(char)
        elif char in _TRANSLITERATIONS:
            out.append(_TRANSLITERATIONS[char])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            out.append(base if base and all(c in _GSM7 for c in base) else "?")
    return "".join(out)


_BOTH = (False, True)  # both values of a flag, in check_templates' product


def check_templates(templates: AlertTemplates, *, link_base_url: str, sample_ref: str = "90-2026-000001") -> None:
    """Render every stage × urgency × marker combination once; raise what would fail at send time.

    Run at start-up so that a heading or link base too long for an SMS stops the service with a clear
    message instead of failing partners' SMS one by one.
    """
    # The longest link an alert carries: the base and a signed token, which are all the same length.
    link = f"{link_base_url.rstrip('/')}/{'A' * TOKEN_LENGTH}"
    fallbacks = (None, FallbackNotice(FallbackKind.DEFAULT_REFERENT, "Structure injoignable"))
    earliest = date(2026, 4, 1)
    # A day before the earliest expulsion date and the day itself: the two wordings of the date.
    for stage, urgency, dated, manual, update, truce_end, fallback, today in itertools.product(
        Stage, Urgency, _BOTH, _BOTH, _BOTH, _BOTH, fallbacks, (date(2026, 3, 1), earliest)
    ):
        content = AlertContent(
            sample_ref, stage, "Saint-Germain-le-Châtelet", urgency, earliest if dated else None, link, today
        )
        content = replace(
            content, manual_orientation=manual, stage_update=update, truce_end=truce_end, fallback=fallback
        )
        everything = replace(
            content,
            reasons=tuple(_WHY),
            offers=("Offre de la structure",) * 4,
            others=("Autre structure",) * 8,
            respond_by=today,
            hearing_date=earliest,
            commandement_deadline=earliest,
            closest=(ClosestOffer("Offre proche", "Structure proche", tuple(_EXCLUDED)),) * 3,
        )
        render_email(everything, templates)
        render_sms(everything, templates)
    # A refusal told to the secretariat, with the longest reason label.
    refusal = RefusalNotice("Structure qui refuse", max(REFUSAL_REASONS, key=lambda code: len(refusal_label(code))))
    render_email(replace(content, refusal=refusal), templates)
    render_sms(replace(content, refusal=refusal), templates)
    for escalation in (EscalationNotice(60), EscalationNotice(60, "Structure qui ne répond pas")):
        render_email(replace(content, escalation=escalation), templates)
        render_sms(replace(content, escalation=escalation), templates)
    # Every warning at once: the email lists them; the SMS renders (without them when they do not fit).
    content = replace(content, warnings=tuple(PARTNER_WARNINGS))
    render_email(content, templates)
    render_sms(content, templates)
    digest = DigestContent(date(2026, 3, 2), (content,), link_base_url)
    render_digest_email(digest, templates)
    render_digest_sms(digest, templates)


def _alert_values(content: AlertContent, templates: AlertTemplates, style: _Style) -> dict[str, Any]:
    return {
        "prefix": templates.sms_prefix if style.sms else templates.prefix,
        "ref": content.procedure_short_ref,
        "stage": style.stage(content.stage),
        "commune": content.commune,
        "urgency": style.urgency(content.urgency),
        "urgent": _URGENT.get(content.urgency),
        "why": [_WHY[code] for code in content.reasons if code in _WHY],
        "offers": list(content.offers),
        "others": list(content.others),
        "next_date": next_legal_date(content),
        "respond": response_request(content),
        "closest": [
            {"offer": c.offer, "structure": c.structure, "why": [_EXCLUDED[x] for x in c.exclusions if x in _EXCLUDED]}
            for c in content.closest
        ],
        "earliest": _day(content.earliest_expulsion_date),
        "expulsion_possible": content.earliest_expulsion_date is not None
        and content.today >= content.earliest_expulsion_date,
        "warnings": warning_texts(content.warnings, sms=style.sms),
        "link": content.link,
        "manual_tag": MANUAL_ORIENTATION_TAG if content.manual_orientation else None,
        "update": content.stage_update,
        "truce_end": content.truce_end,
        "fallback": _fallback_values(content.fallback),
        "refusal": _refusal_values(content.refusal),
        "escalation": None if content.escalation is None else vars(content.escalation),
    }


def _digest_values(content: DigestContent, templates: AlertTemplates, style: _Style) -> dict[str, Any]:
    # A digest says its urgency in words like an alert: the highest of its files in the subject (and its
    # marker first when HIGH or CRITICAL), and how many files of each urgency atop the body, highest first.
    counts = Counter(item.urgency for item in content.items)
    ranked = sorted(counts, key=_URGENCY_RANK.__getitem__, reverse=True)
    highest = ranked[0] if ranked else Urgency.LOW
    return {
        "prefix": templates.sms_prefix if style.sms else templates.prefix,
        "day": _day(content.day),
        "urgent": _URGENT.get(highest),
        "urgency": style.urgency(highest),
        "urgencies": [{"label": urgency_label(u).lower(), "count": counts[u]} for u in ranked],
        "count": len(content.items),
        "items": [_alert_values(item, templates, style) for item in content.items],
        "link": content.link,
        "fallback": _fallback_values(content.fallback),
    }


def _fallback_values(fallback: FallbackNotice | None) -> dict[str, Any] | None:
    if fallback is None:
        return None
    return {"default_referent": fallback.kind is FallbackKind.DEFAULT_REFERENT, "unreachable": fallback.unreachable}


def _refusal_values(refusal: RefusalNotice | None) -> dict[str, str] | None:
    if refusal is None:
        return None
    return {"structure": refusal.structure, "reason": refusal_label(refusal.reason_code)}


def _day(value: date | None) -> str | None:
    return None if value is None else f"{value:%d/%m/%Y}"


def one_line(text: str) -> str:
    """``text`` on one line, its whitespace runs made single spaces: subjects and SMS are single lines, and a
    value holding a line break must not start a new header line."""
    return " ".join(text.split())
