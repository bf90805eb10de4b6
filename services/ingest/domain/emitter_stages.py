"""Which stages an emitter type may send, within the formats it may author.

A format lists the stages it can carry (``SourceRecord.STAGES``) and ``FORMAT_EMITTER_TYPES`` who may
author it; for most emitter types that is the whole answer. The préfecture writes the act format but is
the source of two acts only: it receives the réquisition of the concours de la force publique
(``DEMANDE_CFP``, art. L.431-2 CPCE: the 2-month decision period runs from its reception) and it takes
the decision (``DECISION_CFP``, art. L.153-1 CPCE). Every other act of the format is a commissaire de
justice's; the préfecture only holds copies of them, so it may not send them
(``STAGE_NOT_ALLOWED_FOR_EMITTER``). The assignation it is notified of (art. 24 III loi 89-462) is not one
of its acts either: the commissaire de justice sends it, with the notification date.
"""

from __future__ import annotations

from typing import Final

from schemas.procedure import EmitterType
from schemas.stages import Stage

__all__ = ["EMITTER_TYPE_STAGES", "allowed_stages", "may_send"]

EMITTER_TYPE_STAGES: Final[dict[EmitterType, frozenset[Stage]]] = {
    EmitterType.PREFECTURE: frozenset({Stage.DEMANDE_CFP, Stage.DECISION_CFP}),
}
"""Emitter types restricted to some of their formats' stages; a type not listed may send them all."""


def may_send(emitter_type: EmitterType, stage: Stage) -> bool:
    """Whether ``emitter_type`` may send an act of ``stage`` (the format's own list is checked apart)."""
    restricted = EMITTER_TYPE_STAGES.get(emitter_type)
    return restricted is None or stage in restricted


def allowed_stages(emitter_type: EmitterType, format_stages: frozenset[Stage]) -> frozenset[Stage]:
    """The stages of a format that ``emitter_type`` may send: what a rejection tells the emitter to use."""
    return format_stages & EMITTER_TYPE_STAGES.get(emitter_type, format_stages)
