"""Which of ingest's non-blocking warnings reach partners, which partners, and the sentence they read.

Ingest attaches warning codes to an accepted act (``ProcedureNotification.warnings``). Some change what
a partner does — an assignation whose notice to the préfet came less than 6 weeks before the hearing may
be declared irrecevable (loi 89-462 art. 24 III), which the Département's social worker preparing the
diagnostic and the point-justice must know. Those are listed in ``PARTNER_WARNINGS`` with their audience
(structure typologies, or offers) and their French sentence; orientation puts on each assignment of
``orientation.decided`` the codes meant for that structure, the notifier prints the sentences.

The others (data quality, procedure linking) stay for ops, in ``OPS_WARNINGS``: a test checks that every
code ingest can emit is in exactly one of the two. Sentences are fixed texts: no personal data can reach
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from schemas.referential import StructureTypology

__all__ = ["OPS_WARNINGS", "PARTNER_WARNINGS", "PartnerWarning", "partner_warnings", "warning_texts"]


@dataclass(frozen=True)
class PartnerWarning:
    """A warning partners are told: ``sentence`` in emails, ``sms`` (GSM-7, short) in an SMS when it fits.

    A structure is concerned when its typology is in ``typologies`` or it was matched on one of
    ``offer_ids`` (a référentiel may name a specific offer, e.g. a departement's legal-aid permanence).
    """

    code: str
    sentence: str
    sms: str
    typologies: frozenset[StructureTypology]
    offer_ids: frozenset[str] = frozenset()

    def concerns(self, typology: StructureTypology, offer_ids: Iterable[str]) -> bool:
        """Whether a structure of ``typology`` assigned on ``offer_ids`` is told."""
        return typology in self.typologies or not self.offer_ids.isdisjoint(offer_ids)


_LEGAL_ADVICE = frozenset(
    {StructureTypology.DEPARTEMENT_SERVICE_SOCIAL, StructureTypology.CDAD_POINT_JUSTICE, StructureTypology.ADIL}
)

PARTNER_WARNINGS: Final[Mapping[str, PartnerWarning]] = {
    warning.code: warning
    for warning in (
        # Loi 89-462 art. 24 III (2023 wording): the préfet is notified at least 6 weeks before the hearing,
        # otherwise the assignation is irrecevable. The DSF (Département) and legal advice must say so.
        PartnerWarning(
            code="PREFECT_NOTICE_LT_6_WEEKS",
            sentence="Notification au préfet moins de 6 semaines avant l'audience : irrecevabilité possible",
            sms="Prefet avise <6 sem. avant audience: irrecevabilite possible.",
            typologies=_LEGAL_ADVICE,
        ),
        # Loi 89-462 art. 24 I: 6 weeks to pay for leases since 29 July 2023, 2 months for older ones; with
        # no lease date, the shorter deadline was assumed and may be wrong in the tenant's favour.
        PartnerWarning(
            code="LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W",
            sentence=(
                "Date du bail inconnue : délai du commandement compté à 6 semaines (2 mois si le bail est"
                " antérieur au 29 juillet 2023)"
            ),
            sms="Bail sans date: delai de 6 sem. suppose (2 mois si bail avant 29/07/2023).",
            typologies=_LEGAL_ADVICE,
        ),
        # Signalement thresholds (2 months of debt or 2 × monthly rent): below them the CCAPEX was
        # signalled although it need not have been; its secretariat decides whether to follow it up.
        PartnerWarning(
            code="CP_BELOW_CCAPEX_THRESHOLD",
            sentence="Commandement sous le seuil de signalement à la CCAPEX : signalement non obligatoire",
            sms="Sous le seuil de signalement CCAPEX.",
            typologies=frozenset({StructureTypology.PREFECTURE_CCAPEX}),
        ),
    )
}

OPS_WARNINGS: Final = frozenset(
    {
        # Data quality: the emitter's data to check, nothing a partner acts on.
        "POSTAL_CODE_COMMUNE_MISMATCH",
        "DEBT_ZERO",
        "AMOUNT_COERCED",
        # Procedure linking: late and out-of-order acts, reopened procedures, uncertain links.
        "LATE_EARLIER_STAGE",
        "STAGE_SKIPPED",
        "LINK_LOW_CONFIDENCE",
        "REOPENED",
    }
)


def partner_warnings(codes: Iterable[str], typology: StructureTypology, offer_ids: Iterable[str]) -> list[str]:
    """The codes among ``codes`` a structure of ``typology`` assigned on ``offer_ids`` is told, each once,
    in the order of ``PARTNER_WARNINGS``; ops-only and unknown codes are never told."""
    offers = frozenset(offer_ids)
    present = set(codes)
    return [
        code for code, warning in PARTNER_WARNINGS.items() if code in present and warning.concerns(typology, offers)
    ]


def warning_texts(codes: Iterable[str], *, sms: bool = False) -> tuple[str, ...]:
    """The sentences of ``codes`` (the SMS forms when ``sms``); a code this version does not know is skipped
    (a newer orientation may send it)."""
    known = (PARTNER_WARNINGS[code] for code in codes if code in PARTNER_WARNINGS)
    return tuple(warning.sms if sms else warning.sentence for warning in known)
