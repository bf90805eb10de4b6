"""The case file as a partner reads it: labelled facts, stages, deadlines, warnings (pure).

Everything here is built from the restricted notice's record, the stages received and today's date;
nothing is fetched. Amounts and dates are formatted the French way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from schemas.procedure import EmitterType, ProcedureNotification, Urgency
from schemas.stages import Stage, stage_label
from services.ingest.domain.rules import end_of_winter_truce, winter_truce_on
from services.workspace.domain.labels import label

__all__ = [
    "URGENCY_ORDER",
    "CaseFacts",
    "Deadline",
    "Fact",
    "ReceivedStage",
    "StageLine",
    "case_facts",
    "deadlines",
    "french_date",
    "stage_lines",
    "urgency_rank",
    "why_assigned",
]

_THIN_SPACE = "\u202f"  # French thousands separator

URGENCY_ORDER: dict[Urgency, int] = {Urgency.CRITICAL: 0, Urgency.HIGH: 1, Urgency.NORMAL: 2, Urgency.LOW: 3}
"""Most urgent first."""


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """The case file in four labelled groups, ready to show."""

    household: list[Fact]
    tenants: list[str]
    dwelling: list[Fact]
    landlord: list[Fact]
    debt: list[Fact]


@dataclass(frozen=True, slots=True)
class StageLine:
    """One act received: its stage, date, emitter kind and markers."""

    stage: str
    act_date: str
    emitter: str
    note: str


@dataclass(frozen=True, slots=True)
class Deadline:
    """A date that matters for the procedure, with whether it is past."""

    label: str
    day: str
    past: bool
    note: str = ""


def french_date(day: date | None) -> str:
    """``31/03/2026``; an unknown date is « non renseignée »."""
    return f"{day:%d/%m/%Y}" if day else "non renseignée"


def _euros(amount: Decimal | None) -> str:
    if amount is None:
        return "non renseigné"
    whole, _, cents = f"{amount:,.2f}".partition(".")
    return f"{whole.replace(',', _THIN_SPACE)},{cents} €"


def _yes_no(value: bool | None) -> str:
    return "non renseigné" if value is None else ("oui" if value else "non")


def case_facts(record: ProcedureNotification) -> CaseFacts:
    """The household, dwelling, landlord and debt of ``record`` as labelled facts."""
    household = record.household
    contact = household.contact
    address = record.dwelling.address
    return CaseFacts(
        household=[
            Fact("Composition", label(household.composition)),
            Fact("Enfants", "non renseigné" if household.children_count is None else str(household.children_count)),
            Fact("Allocataire CAF/MSA", label(household.caf.allocataire)),
            Fact("Ressources mensuelles", _euros(household.monthly_resources)),
            Fact("Surendettement", _yes_no(household.surendettement)),
            Fact("Téléphone", (contact.mobile if contact else None) or "non renseigné"),
            Fact("Courriel", (contact.email if contact else None) or "non renseigné"),
        ],
        tenants=[f"{t.first_name} {t.last_name} ({label(t.role).lower()})" for t in household.tenants],
        dwelling=[
            Fact("Adresse", ", ".join(p for p in (address.line1, address.line2) if p)),
            Fact("Commune", f"{address.postal_code} {address.commune_name or address.commune_insee}"),
            Fact("Parc", label(record.dwelling.parc)),
        ],
        landlord=[
            Fact("Type", label(record.landlord.type)),
            Fact("Nom", record.landlord.name or "non renseigné"),
            Fact("Loyer hors charges", _euros(record.lease.rent_excl_charges)),
            Fact("Charges", _euros(record.lease.charges)),
        ],
        debt=[
            Fact("Montant", _euros(record.debt.amount)),
            Fact("Arrêtée au", french_date(record.debt.as_of)),
            Fact(
                "Mois impayés", "non renseigné" if record.debt.months_unpaid is None else str(record.debt.months_unpaid)
            ),
            Fact(
                "En mois de loyer",
                "non calculé"
                if record.derived.months_of_rent is None
                else f"{record.derived.months_of_rent:.1f}".replace(".", ","),
            ),
        ],
    )


@dataclass(frozen=True, slots=True)
class ReceivedStage:
    """A stage as the read model stores it (no personal data)."""

    stage: Stage
    act_date: date
    hearing_date: date | None
    emitter_type: EmitterType
    is_correction: bool
    is_late: bool


def stage_lines(stages: Sequence[ReceivedStage]) -> list[StageLine]:
    """Every act received, oldest act first, with its emitter kind and whether it came late or corrected."""
    lines = []
    for stage in sorted(stages, key=lambda s: s.act_date):
        note = ", ".join(
            n for n, on in (("rectificatif", stage.is_correction), ("reçu tardivement", stage.is_late)) if on
        )
        lines.append(StageLine(stage_label(stage.stage), french_date(stage.act_date), label(stage.emitter_type), note))
    return lines


def deadlines(record: ProcedureNotification | None, stages: Sequence[ReceivedStage], today: date) -> list[Deadline]:
    """The derived dates: commandement deadline, hearing, earliest expulsion, and the trêve hivernale.

    The hearing is the latest one any act stated. Without a case file (purged) only the trêve is known.
    """
    found: list[Deadline] = []
    derived = record.derived if record else None
    if derived and derived.commandement_deadline:
        day = derived.commandement_deadline
        found.append(Deadline("Fin du délai du commandement de payer", french_date(day), day < today))
    hearings = [s.hearing_date for s in stages if s.hearing_date]
    if hearings:
        found.append(Deadline("Audience", french_date(max(hearings)), max(hearings) < today))
    if derived and derived.earliest_expulsion_date:
        day = derived.earliest_expulsion_date
        found.append(
            Deadline(
                "Expulsion possible au plus tôt le", french_date(day), day <= today, "borne basse, hors délais du JEX"
            )
        )
    if winter_truce_on(today):
        end = end_of_winter_truce(today)
        found.append(Deadline("Trêve hivernale en cours : expulsions de nouveau possibles le", french_date(end), False))
    else:
        start = date(today.year, 11, 1)
        found.append(Deadline("Prochaine trêve hivernale à partir du", french_date(start), past=False))
    return found


def urgency_rank(
    urgency: Urgency | None, earliest_expulsion: date | None, decided_at: datetime
) -> tuple[int, date, datetime]:
    """Sort key of « mes dossiers », most urgent first: urgency, then the earliest expulsion date (none
    last), then the oldest decision (waiting longest)."""
    rank = URGENCY_ORDER[urgency] if urgency else len(URGENCY_ORDER)
    return (rank, earliest_expulsion or date.max, decided_at)


def why_assigned(
    offer_ids: Sequence[str], offer_names: Mapping[str, str], *, mandatory: bool, over_capacity: bool
) -> list[str]:
    """Why the structure was asked, in plain French, from its assignment (orientation's full explanation,
    rule by rule, is shown beside it)."""
    if offer_ids:
        reasons = ["Dispositifs concernés : " + ", ".join(f"« {offer_names.get(i, i)} »" for i in offer_ids) + "."]
    else:
        reasons = [
            "Aucun dispositif ne correspondait au dossier : votre structure le reçoit comme référent par défaut"
            " ou à la demande du secrétariat de la CCAPEX."
        ]
    if mandatory:
        reasons.append("Votre saisine est obligatoire à cette étape de la procédure.")
    if over_capacity:
        reasons.append("Votre capacité d'accompagnement de la semaine était atteinte ; l'orientation est maintenue.")
    return reasons
