"""``prevex.cj-act/1``: an act served or filed by a commissaire de justice (CJ), as sent to ingest.

The préfecture sends its own acts of the procedure, the réquisition of the force publique it received and
its decision (``DEMANDE_CFP``, ``DECISION_CFP``), in this format too: what it holds of a case is what the
CJ's acts carry (the household, the dwelling, the landlord, the ``cfp`` block), nothing else. Ingest
accepts only those two stages from it (``STAGE_NOT_ALLOWED_FOR_EMITTER``).

One document per act. The common blocks are in :mod:`schemas.sources.common`; the CJ format adds the
stage-specific blocks below. Which of them a stage requires is decided by ingest
(``REQUIRED_FOR_STAGE_MISSING:<field>``, docs/domain.md §3.2), not by this model, so that an emitter gets every
missing field in one rejection instead of a bare "field required".

Example payloads: ``schemas/sources/examples/s01-*.json``, ``s04-*.json``, ``s06-*.json``, ``s07-*.json``,
``prefecture-*.json``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from schemas.common import Contract
from schemas.procedure import CfpDecision, DecisionType
from schemas.sources.common import Lax, RawAmount, RawDate, SourceRecord
from schemas.stages import Stage

__all__ = [
    "CJ_ACT_FORMAT",
    "CjAct",
    "SourceCfp",
    "SourceCommandementQuitter",
    "SourceCourt",
    "SourceCourtCase",
    "SourceDecision",
]

CJ_ACT_FORMAT = "prevex.cj-act/1"


class SourceCourt(Contract):
    name: str = Field(min_length=1, max_length=200)
    rg: str | None = Field(default=None, min_length=1, max_length=64)


class SourceCourtCase(Contract):
    """ASSIGNATION, AUDIENCE, DECISION, SIGNIFICATION_DECISION: the court and the hearing."""

    court: SourceCourt | None = None
    hearing_date: RawDate | None = None
    prefect_notified_on: RawDate | None = None
    """Date the préfet was notified of the assignation (checked against the 6-week rule)."""


class SourceDecision(Contract):
    """DECISION, SIGNIFICATION_DECISION: what the judge decided."""

    type: Lax[DecisionType]
    delais_paiement_mois: int | None = Field(default=None, ge=0, le=36)
    mensualite: RawAmount = None
    indemnite_occupation: RawAmount = None
    delai_quitter_mois: int | None = Field(default=None, ge=0, le=12)


class SourceCommandementQuitter(Contract):
    """COMMANDEMENT_QUITTER: the date by which the premises must be vacated (R.411-1 CPCE)."""

    vacate_by: RawDate | None = None


class SourceCfp(Contract):
    """DEMANDE_CFP, DECISION_CFP: concours de la force publique. Dates default to ``act_date``.

    From the préfecture, ``requested_on`` is the day it received the réquisition (its 2-month decision
    period runs from then) and ``decided_on`` the day of its decision, or of the implicit refusal.
    """

    requested_on: RawDate | None = None
    decision: Lax[CfpDecision] | None = None
    decided_on: RawDate | None = None


class CjAct(SourceRecord):
    """A commissaire de justice's act, or the préfecture's CFP request or decision (``prevex.cj-act/1``)."""

    FORMAT_ID: ClassVar[str] = CJ_ACT_FORMAT
    STAGES: ClassVar[frozenset[Stage]] = frozenset(
        {
            Stage.COMMANDEMENT_PAYER,
            Stage.ASSIGNATION,
            Stage.AUDIENCE,
            Stage.DECISION,
            Stage.SIGNIFICATION_DECISION,
            Stage.COMMANDEMENT_QUITTER,
            Stage.DEMANDE_CFP,
            Stage.DECISION_CFP,
            Stage.EXPULSION_REALISEE,
            Stage.CLOTURE,
        }
    )

    format: Literal["prevex.cj-act/1"]
    court_case: SourceCourtCase | None = None
    decision: SourceDecision | None = None
    commandement_quitter: SourceCommandementQuitter | None = None
    cfp: SourceCfp | None = None
