"""Simulate: a canonical notification in, the decision and every offer's explanation out, nothing written.

Shared by ``cli simulate`` and ``POST /simulate``. The input is what ingest publishes, either the
``ProcedureNotice`` (the event's payload, with its procedure id) or the bare ``ProcedureNotification``.
With a notice and a database, the simulation takes the procedure's open assignments, the structures
the CCAPEX removed and this week's capacity into account, as the service would; otherwise it shows the
decision for a procedure seen for the first time. It only reads.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from schemas.orientation import AlsoEligibleOffer, AssignmentKind
from schemas.procedure import ProcedureNotice, ProcedureNotification
from schemas.stages import Stage
from services.orientation import repository as repo
from services.orientation.domain.eligibility import Outcome
from services.orientation.domain.events import also_eligible_offers
from services.orientation.domain.facts import facts_from_notification, skip_reason
from services.orientation.domain.matching import MATCHING_RULES_VERSION, Matcher
from services.orientation.domain.referential import Referential
from services.orientation.domain.simulation import OfferOutcome, simulate
from services.platform.db import Conn

__all__ = [
    "ProcedureState",
    "SimulationOut",
    "parse_canonical",
    "read_state",
    "run_simulation",
]

Canonical = ProcedureNotice | ProcedureNotification


class ClauseOut(BaseModel):
    rule: str
    subject: str
    outcome: Outcome
    text: str


class OfferVerdictOut(BaseModel):
    offer_id: str
    structure_id: str
    outcome: OfferOutcome
    clauses: list[ClauseOut] = Field(description="Every clause evaluated, in explanation order")
    reasons: list[str] = Field(description="Why it failed (FAILED only)")
    unknowns: list[str] = Field(description="Household facts to check (eligible offers only)")
    over_capacity: bool


class SimulatedAssignment(BaseModel):
    structure_id: str
    offer_ids: list[str]
    kind: AssignmentKind
    mandatory: bool
    priority: int
    over_capacity: bool
    matched_rules: list[str]
    explanation: str


class ProcedureState(BaseModel):
    """What the simulation knew of the procedure (all empty for a procedure seen for the first time)."""

    procedure_id: uuid.UUID | None = None
    open_structures: list[str] = Field(default_factory=list)
    removed_structures: list[str] = Field(default_factory=list)
    remaining_capacity: dict[str, int] = Field(default_factory=dict)


class SimulationOut(BaseModel):
    """The decision the service would take, and every offer of the référentiel with its fate."""

    referentiel_version: int | None = Field(description="None when simulated against a file")
    rules_version: str
    k: int
    on: date
    stage: Stage
    commune_insee: str
    would_orient: bool = Field(description="False for a late notice or a clôture: the service ignores those")
    not_oriented_because: str | None
    state: ProcedureState
    assignments: list[SimulatedAssignment]
    also_eligible: list[AlsoEligibleOffer]
    fallback_used: bool
    offers: list[OfferVerdictOut]
    text: str = Field(description="The same, written for a person")


def parse_canonical(raw: bytes | str) -> Canonical:
    """A ``ProcedureNotice`` (has ``notification``) or a ``ProcedureNotification``, strictly validated.

    Raises ``pydantic.ValidationError`` with paths relative to the document (also for input that is not
    a JSON object: it is then validated, and refused, as a notification).
    """
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if isinstance(document, dict) and "notification" in document:
        return ProcedureNotice.model_validate_json(raw, strict=True)
    return ProcedureNotification.model_validate_json(raw, strict=True)


async def read_state(conn: Conn, canonical: Canonical, referential: Referential, *, now: datetime) -> ProcedureState:
    """What the service would know at ``now``: that week's remaining capacity of the capped offers and, for a
    notice, the procedure's open structures and the structures the CCAPEX removed. Only reads."""
    caps = {o.id: o.max_new_assignments_per_week for o in referential.offers if o.max_new_assignments_per_week}
    used = await repo.weekly_assignment_counts(conn, caps, now=now)
    remaining = {offer_id: cap - used.get(offer_id, 0) for offer_id, cap in caps.items()}
    if not isinstance(canonical, ProcedureNotice):
        return ProcedureState(remaining_capacity=remaining)
    state = await repo.procedure_state(conn, canonical.procedure_id, lock=False)
    return ProcedureState(
        procedure_id=canonical.procedure_id,
        open_structures=sorted(state.open_assignments),
        removed_structures=sorted(state.removed_structures),
        remaining_capacity=remaining,
    )


def run_simulation(
    matcher: Matcher,
    canonical: Canonical,
    *,
    referentiel_version: int | None,
    k: int,
    on: date | None = None,
    state: ProcedureState | None = None,
) -> SimulationOut:
    """Simulate ``canonical`` against ``matcher``'s référentiel; ``on`` defaults to the act date."""
    record = canonical.notification if isinstance(canonical, ProcedureNotice) else canonical
    is_late = isinstance(canonical, ProcedureNotice) and canonical.is_late
    skipped = skip_reason(record, is_late=is_late)
    state = state or ProcedureState()
    facts = facts_from_notification(record)
    simulation = simulate(
        matcher,
        facts,
        open_structures=frozenset(state.open_structures),
        excluded_structures=frozenset(state.removed_structures),
        remaining_capacity=dict(state.remaining_capacity),
        k=k,
        on=on,
    )
    result = simulation.result
    return SimulationOut(
        referentiel_version=referentiel_version,
        rules_version=MATCHING_RULES_VERSION,
        k=k,
        on=simulation.on,
        stage=facts.stage,
        commune_insee=facts.commune_insee,
        would_orient=skipped is None,
        not_oriented_because=skipped,
        state=state,
        assignments=[SimulatedAssignment(**dataclasses.asdict(a)) for a in result.assignments],
        also_eligible=also_eligible_offers(result),
        fallback_used=result.fallback_used,
        offers=[
            OfferVerdictOut(
                offer_id=report.offer_id,
                structure_id=report.structure_id,
                outcome=report.outcome,
                clauses=[
                    ClauseOut(rule=c.rule, subject=c.subject, outcome=c.outcome, text=c.text) for c in report.clauses
                ],
                reasons=list(report.reasons),
                unknowns=list(report.unknowns),
                over_capacity=report.over_capacity,
            )
            for report in simulation.offers
        ],
        text=simulation.text(referentiel_version=referentiel_version),
    )
