"""The household and procedure facts matching looks at, extracted from a procedure notice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from schemas.procedure import Allocataire, Composition, LandlordType, Parc, ProcedureNotice, ProcedureNotification
from schemas.stages import Stage

__all__ = ["MatchFacts", "facts_from_notice", "facts_from_notification", "should_orient", "skip_reason"]


@dataclass(frozen=True, slots=True)
class MatchFacts:
    """What the eligibility clauses read. ``None`` / ``INCONNU`` mean "unknown", never "zero" or "no".

    ``departement`` and ``epci_siren`` come from the COG (filled by ingest); ``months_of_rent`` is
    ingest's derived ``debt / rent excluding charges``. No name, address line or contact travels here.
    """

    stage: Stage
    act_date: date
    commune_insee: str
    departement: str
    epci_siren: str | None = None
    parc: Parc = Parc.INCONNU
    landlord_type: LandlordType = LandlordType.INCONNU
    landlord_siren: str | None = None
    debt: Decimal | None = None
    months_of_rent: Decimal | None = None
    resources: Decimal | None = None
    allocataire: Allocataire = Allocataire.INCONNU
    composition: Composition = Composition.INCONNU
    children_count: int | None = None
    surendettement: bool | None = None


def should_orient(notice: ProcedureNotice) -> bool:
    """Whether a notice is matched at all: not a late event (docs/domain.md §1.2: a stage older than the
    procedure's current one enriches history but triggers no orientation), and not a closure."""
    return skip_reason(notice.notification, is_late=notice.is_late) is None


def skip_reason(record: ProcedureNotification, *, is_late: bool) -> str | None:
    """Why a notification is not matched (see ``should_orient``), or ``None`` when it is."""
    if is_late:
        return "late notice (an earlier stage received after a later one): stored, never oriented"
    if record.act.stage is Stage.CLOTURE:
        return "a clôture is never oriented"
    return None


def facts_from_notice(notice: ProcedureNotice) -> MatchFacts:
    """The matching facts of a notice. Pure projection; callers check ``should_orient`` first."""
    return facts_from_notification(notice.notification)


def facts_from_notification(record: ProcedureNotification) -> MatchFacts:
    """The matching facts of a canonical record (what ``facts_from_notice`` reads of a notice)."""
    address = record.dwelling.address
    household = record.household
    return MatchFacts(
        stage=record.act.stage,
        act_date=record.act.date,
        commune_insee=address.commune_insee,
        departement=address.departement,
        epci_siren=address.epci_siren,
        parc=record.dwelling.parc,
        landlord_type=record.landlord.type,
        landlord_siren=record.landlord.siren,
        debt=record.debt.amount,
        months_of_rent=record.derived.months_of_rent,
        resources=household.monthly_resources,
        allocataire=household.caf.allocataire,
        composition=household.composition,
        children_count=household.children_count,
        surendettement=household.surendettement,
    )
