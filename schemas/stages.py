"""Procedure stage codes (docs/domain.md §1.1), their rank and French label."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Stage", "stage_label", "stage_rank", "stages_between"]


class Stage(StrEnum):
    IMPAYE_CONSTATE = "IMPAYE_CONSTATE"
    SIGNALEMENT_CAF = "SIGNALEMENT_CAF"
    SAISINE_CCAPEX_BAILLEUR = "SAISINE_CCAPEX_BAILLEUR"
    COMMANDEMENT_PAYER = "COMMANDEMENT_PAYER"
    ASSIGNATION = "ASSIGNATION"
    DSF_TRANSMIS = "DSF_TRANSMIS"
    AUDIENCE = "AUDIENCE"
    DECISION = "DECISION"
    SIGNIFICATION_DECISION = "SIGNIFICATION_DECISION"
    COMMANDEMENT_QUITTER = "COMMANDEMENT_QUITTER"
    DEMANDE_CFP = "DEMANDE_CFP"
    DECISION_CFP = "DECISION_CFP"
    EXPULSION_REALISEE = "EXPULSION_REALISEE"
    PROTOCOLE_COHESION_SOCIALE = "PROTOCOLE_COHESION_SOCIALE"
    SURENDETTEMENT_RECEVABLE = "SURENDETTEMENT_RECEVABLE"
    PLAN_APUREMENT = "PLAN_APUREMENT"
    CLOTURE = "CLOTURE"


_RANKS: dict[Stage, int] = {
    Stage.IMPAYE_CONSTATE: 10,
    Stage.SIGNALEMENT_CAF: 15,
    Stage.SAISINE_CCAPEX_BAILLEUR: 20,
    Stage.COMMANDEMENT_PAYER: 30,
    Stage.ASSIGNATION: 40,
    Stage.DSF_TRANSMIS: 45,
    Stage.AUDIENCE: 50,
    Stage.DECISION: 60,
    Stage.SIGNIFICATION_DECISION: 65,
    Stage.COMMANDEMENT_QUITTER: 70,
    Stage.DEMANDE_CFP: 80,
    Stage.DECISION_CFP: 85,
    Stage.EXPULSION_REALISEE: 90,
}

_LABELS: dict[Stage, str] = {
    Stage.IMPAYE_CONSTATE: "Impayé constaté",
    Stage.SIGNALEMENT_CAF: "Signalement de l'impayé à l'organisme payeur",
    Stage.SAISINE_CCAPEX_BAILLEUR: "Saisine de la CCAPEX par le bailleur",
    Stage.COMMANDEMENT_PAYER: "Commandement de payer",
    Stage.ASSIGNATION: "Assignation",
    Stage.DSF_TRANSMIS: "Diagnostic social et financier transmis",
    Stage.AUDIENCE: "Audience",
    Stage.DECISION: "Décision de justice",
    Stage.SIGNIFICATION_DECISION: "Signification de la décision",
    Stage.COMMANDEMENT_QUITTER: "Commandement de quitter les lieux",
    Stage.DEMANDE_CFP: "Réquisition de la force publique",
    Stage.DECISION_CFP: "Décision sur le concours de la force publique",
    Stage.EXPULSION_REALISEE: "Expulsion effective",
    Stage.PROTOCOLE_COHESION_SOCIALE: "Protocole de cohésion sociale",
    Stage.SURENDETTEMENT_RECEVABLE: "Dossier de surendettement recevable",
    Stage.PLAN_APUREMENT: "Plan d'apurement",
    Stage.CLOTURE: "Clôture",
}


def stage_rank(stage: Stage) -> int | None:
    """Rank of a procedure stage; ``None`` for side events and ``CLOTURE``, which have no rank."""
    return _RANKS.get(stage)


def stage_label(stage: Stage) -> str:
    """French label shown to partners."""
    return _LABELS[stage]


def stages_between(first: Stage, last: Stage) -> frozenset[Stage]:
    """Every ranked stage from ``first`` to ``last`` inclusive ("A … B" in the référentiel)."""
    low, high = _RANKS[first], _RANKS[last]
    return frozenset(stage for stage, rank in _RANKS.items() if low <= rank <= high)
