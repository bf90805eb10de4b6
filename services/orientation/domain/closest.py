"""The offers that came closest when no offer matched (fallback F1), as the CCAPEX secretariat's alert shows them.

``orientation.unmatched`` lists every offer with every failed clause, for ops and the audit; an alert is
read by the secretariat in its mailbox, so it gets the few offers that came closest, by référentiel name,
with only the *kind* of each failed clause (``schemas.orientation.ExclusionReason``): the case's handling
(zone, stage, parc, landlord, availability, a CCAPEX removal), or « a household criterion » without saying
which — "debt above ceiling" would tell a bracket of the household's situation.

The kinds are read from the rejection texts of ``eligibility`` (each starts with the fact it judged:
``zone …``, ``stage … ∉ …``, ``offer suspended since …``) and ``matching.removed_reason``; a text this module
does not know counts as a household criterion, the kind that tells the least.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from schemas.orientation import ClosestOffer, ExclusionReason
from services.orientation.domain.matching import Rejected, removed_reason
from services.orientation.domain.referential import Referential

__all__ = ["CLOSEST_OFFERS", "closest_offers", "exclusion_reasons"]

CLOSEST_OFFERS: Final = 3
"""How many offers an F1 alert lists."""

# The fact each rejection text starts with (eligibility's clause subjects and availability texts).
_BY_SUBJECT = {
    "structure": ExclusionReason.UNAVAILABLE,
    "offer": ExclusionReason.UNAVAILABLE,
    "eligibility": ExclusionReason.UNAVAILABLE,
    "zone": ExclusionReason.ZONE,
    "stage": ExclusionReason.STAGE,
    "parc": ExclusionReason.PARC,
    "landlord_type": ExclusionReason.BAILLEUR,
    "landlord_siren": ExclusionReason.BAILLEUR,
}
_SUBJECT = re.compile(r"[a-z_]+")
# removed_reason's wording around the structure id, to recognise it whatever the id.
_REMOVED = re.compile(".+".join(map(re.escape, removed_reason("\0").split("\0"))))


def exclusion_reasons(reasons: Iterable[str]) -> list[ExclusionReason]:
    """The kinds of an offer's rejection texts, each once, in the order first met."""
    kinds: list[ExclusionReason] = []
    for text in reasons:
        if _REMOVED.fullmatch(text):
            kind = ExclusionReason.REMOVED
        else:
            subject = _SUBJECT.match(text)
            kind = _BY_SUBJECT.get(subject[0] if subject else "", ExclusionReason.HOUSEHOLD)
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def closest_offers(
    rejected: Sequence[Rejected], referential: Referential, *, limit: int = CLOSEST_OFFERS
) -> list[ClosestOffer]:
    """Up to ``limit`` rejected offers, closest first: available ones before those not available (inactive,
    suspended, out of their dates), then by how few clauses failed, then in référentiel order."""
    offers = {offer.id: offer for offer in referential.offers}
    structures = referential.structures_by_id()
    ranked = []
    for position, rejection in enumerate(rejected):
        offer = offers.get(rejection.offer_id)
        if offer is None or not rejection.reasons:
            continue
        kinds = exclusion_reasons(rejection.reasons)
        ranked.append(((ExclusionReason.UNAVAILABLE in kinds, len(rejection.reasons), position), offer, kinds))
    ranked.sort(key=lambda entry: entry[0])
    return [
        ClosestOffer(
            offer_id=offer.id,
            offer_name=offer.nom,
            structure_id=offer.structure_id,
            structure_name=structures[offer.structure_id].nom,
            excluded_by=kinds,
        )
        for _, offer, kinds in ranked[:limit]
    ]
