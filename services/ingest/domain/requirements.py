"""Fields a stage cannot do without (docs/domain.md §3.2), checked on the validated source record.

Presence is checked on the source, before any value is parsed, so a present-but-invalid value is reported
once, with its own code (``DATE_INVALID``, ``AMOUNT_INVALID``...), not also as missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.sources.common import SourceRecord
from schemas.stages import Stage
from services.ingest.domain.rejections import RejectionError, required_for_stage

__all__ = ["REQUIREMENTS", "Requirement", "missing_for_stage"]


@dataclass(frozen=True, slots=True)
class Requirement:
    """``canonical_field`` must be present at ``source_path`` for ``stages`` (and only if ``when`` is present)."""

    stages: frozenset[Stage]
    canonical_field: str
    source_path: str
    when: str | None = None


_ALL_STAGES = frozenset(Stage)
_DEBT_STAGES = frozenset(
    {
        Stage.IMPAYE_CONSTATE,
        Stage.SIGNALEMENT_CAF,
        Stage.SAISINE_CCAPEX_BAILLEUR,
        Stage.COMMANDEMENT_PAYER,
        Stage.ASSIGNATION,
    }
)

REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(frozenset({Stage.ASSIGNATION, Stage.AUDIENCE}), "act.hearing_date", "court_case.hearing_date"),
    Requirement(frozenset({Stage.ASSIGNATION}), "act.prefect_notified_on", "court_case.prefect_notified_on"),
    Requirement(frozenset({Stage.ASSIGNATION, Stage.DECISION}), "act.court", "court_case.court"),
    Requirement(frozenset({Stage.DECISION}), "act.decision", "decision"),
    Requirement(frozenset({Stage.COMMANDEMENT_QUITTER}), "act.vacate_by", "commandement_quitter.vacate_by"),
    # DEMANDE_CFP needs no block: the request date is the act date. A decision needs its outcome.
    Requirement(frozenset({Stage.DECISION_CFP}), "act.cfp.decision", "cfp.decision"),
    Requirement(frozenset({Stage.CLOTURE}), "act.cloture_reason", "cloture.reason"),
    Requirement(
        frozenset({Stage.COMMANDEMENT_PAYER, Stage.SAISINE_CCAPEX_BAILLEUR}),
        "lease.rent_excl_charges",
        "lease.rent_excl_charges",
    ),
    Requirement(_DEBT_STAGES, "debt.amount", "debt.amount"),
    Requirement(_ALL_STAGES, "debt.as_of", "debt.as_of", when="debt.amount"),
)


def _lookup(record: SourceRecord, names: tuple[str, ...]) -> object:
    """Value at a path, ``None`` if any step is absent (a format may lack a block entirely)."""
    value: object = record
    for name in names:
        value = getattr(value, name, None)
        if value is None:
            return None
    return value


def _split(path: str | None) -> tuple[str, ...] | None:
    return None if path is None else tuple(path.split("."))


# Per stage, the requirements that apply with their paths split once (this runs for every payload).
_BY_STAGE: dict[Stage, tuple[tuple[Requirement, tuple[str, ...], tuple[str, ...] | None], ...]] = {
    stage: tuple(
        (requirement, tuple(requirement.source_path.split(".")), _split(requirement.when))
        for requirement in REQUIREMENTS
        if stage in requirement.stages
    )
    for stage in Stage
}


def missing_for_stage(record: SourceRecord, stage: Stage) -> tuple[RejectionError, ...]:
    """One ``REQUIRED_FOR_STAGE_MISSING:<canonical field>`` per missing required value, in table order."""
    return tuple(
        required_for_stage(requirement.canonical_field, requirement.source_path, stage.value)
        for requirement, path, when in _BY_STAGE[stage]
        if (when is None or _lookup(record, when) is not None) and _lookup(record, path) is None
    )
