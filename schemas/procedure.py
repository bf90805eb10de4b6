"""Canonical procedure notification, v1 (docs/domain.md §3), and the event that carries it."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from schemas.common import Contract
from schemas.envelope import Envelope
from schemas.stages import Stage

__all__ = [
    "Act",
    "Address",
    "Allocataire",
    "Caf",
    "Cfp",
    "CfpDecision",
    "ClotureReason",
    "Composition",
    "Court",
    "Debt",
    "Decision",
    "DecisionType",
    "Derived",
    "Dwelling",
    "EmitterType",
    "Household",
    "HouseholdContact",
    "Landlord",
    "LandlordType",
    "Lease",
    "Money",
    "Parc",
    "ProcedureNotice",
    "ProcedureNotification",
    "ProcedureNotificationEvent",
    "Source",
    "SourceSystem",
    "Tenant",
    "TenantRole",
    "Urgency",
]

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
"""A non-negative euro amount with at most 2 decimal places."""

Siren = Annotated[str, Field(pattern=r"^\d{9}$")]
E164 = Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$")]


class SourceSystem(StrEnum):
    CJ_API = "cj_api"
    CJ_SFTP = "cj_sftp"
    BAILLEUR_API = "bailleur_api"
    BAILLEUR_SFTP = "bailleur_sftp"
    EXPLOC_EXPORT = "exploc_export"
    MANUAL = "manual"


class EmitterType(StrEnum):
    COMMISSAIRE_JUSTICE = "COMMISSAIRE_JUSTICE"
    BAILLEUR_SOCIAL = "BAILLEUR_SOCIAL"
    BAILLEUR_PRIVE_PM = "BAILLEUR_PRIVE_PM"
    ADMINISTRATEUR_BIENS = "ADMINISTRATEUR_BIENS"
    PREFECTURE = "PREFECTURE"
    CAF = "CAF"
    DEPARTEMENT = "DEPARTEMENT"


class DecisionType(StrEnum):
    RESILIATION_EXPULSION = "RESILIATION_EXPULSION"
    CLAUSE_ACQUISE_SUSPENDUE_DELAIS = "CLAUSE_ACQUISE_SUSPENDUE_DELAIS"
    DELAIS_PAIEMENT = "DELAIS_PAIEMENT"
    REJET = "REJET"
    RADIATION = "RADIATION"
    RENVOI = "RENVOI"


class CfpDecision(StrEnum):
    ACCORDE = "ACCORDE"
    REFUSE = "REFUSE"
    REFUS_IMPLICITE = "REFUS_IMPLICITE"


class ClotureReason(StrEnum):
    DETTE_SOLDEE = "DETTE_SOLDEE"
    DEPART_VOLONTAIRE = "DEPART_VOLONTAIRE"
    DESISTEMENT = "DESISTEMENT"
    PROTOCOLE_RESPECTE = "PROTOCOLE_RESPECTE"
    EXPULSION = "EXPULSION"
    AUTRE = "AUTRE"


class TenantRole(StrEnum):
    TITULAIRE = "TITULAIRE"
    COTITULAIRE = "COTITULAIRE"
    CONJOINT = "CONJOINT"
    OCCUPANT = "OCCUPANT"


class Composition(StrEnum):
    PERSONNE_SEULE = "PERSONNE_SEULE"
    COUPLE_SANS_ENFANT = "COUPLE_SANS_ENFANT"
    MONOPARENTALE = "MONOPARENTALE"
    COUPLE_AVEC_ENFANTS = "COUPLE_AVEC_ENFANTS"
    AUTRE = "AUTRE"
    INCONNU = "INCONNU"


class Allocataire(StrEnum):
    OUI = "OUI"
    NON = "NON"
    INCONNU = "INCONNU"


class Parc(StrEnum):
    SOCIAL = "SOCIAL"
    PRIVE = "PRIVE"
    INCONNU = "INCONNU"


class LandlordType(StrEnum):
    BAILLEUR_SOCIAL = "BAILLEUR_SOCIAL"
    PERSONNE_MORALE_PRIVEE = "PERSONNE_MORALE_PRIVEE"
    PERSONNE_PHYSIQUE = "PERSONNE_PHYSIQUE"
    SCI_FAMILIALE = "SCI_FAMILIALE"
    INCONNU = "INCONNU"


class Urgency(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class Source(Contract):
    system: SourceSystem
    emitter_type: EmitterType
    emitter_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
    external_ref: str = Field(min_length=1, max_length=128)
    procedure_ref: str | None = Field(default=None, min_length=1, max_length=128)
    received_at: AwareDatetime
    payload_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Court(Contract):
    name: str = Field(min_length=1, max_length=200)
    rg: str | None = Field(default=None, max_length=64)


class Decision(Contract):
    type: DecisionType
    delais_paiement_mois: int | None = Field(default=None, ge=0, le=36)
    mensualite: Money | None = None
    indemnite_occupation: Money | None = None
    delai_quitter_mois: int | None = Field(default=None, ge=0, le=12)


class Cfp(Contract):
    requested_on: dt.date | None = None
    decision: CfpDecision | None = None
    decided_on: dt.date | None = None


class Act(Contract):
    stage: Stage
    date: dt.date
    hearing_date: dt.date | None = None
    prefect_notified_on: dt.date | None = None
    court: Court | None = None
    decision: Decision | None = None
    vacate_by: dt.date | None = None
    cfp: Cfp | None = None
    cloture_reason: ClotureReason | None = None


class Tenant(Contract):
    last_name: str = Field(min_length=1, max_length=100)
    first_name: str = Field(min_length=1, max_length=100)
    birth_date: dt.date | None = None
    role: TenantRole = TenantRole.TITULAIRE


class HouseholdContact(Contract):
    mobile: E164 | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)


class Caf(Contract):
    allocataire: Allocataire = Allocataire.INCONNU
    organisme: Literal["CAF", "MSA"] | None = None
    numero_allocataire: str | None = Field(default=None, max_length=32)
    tiers_payant: bool | None = None


class Household(Contract):
    tenants: list[Tenant] = Field(min_length=1, max_length=20)
    composition: Composition = Composition.INCONNU
    children_count: int | None = Field(default=None, ge=0, le=30)
    contact: HouseholdContact | None = None
    caf: Caf = Caf()
    monthly_resources: Money | None = None
    surendettement: bool | None = None


class Address(Contract):
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    postal_code: str = Field(pattern=r"^\d{5}$")
    commune_insee: str = Field(pattern=r"^[0-9][0-9AB][0-9]{3}$")
    commune_name: str | None = Field(default=None, max_length=100)
    departement: str = Field(pattern=r"^(\d{2}|2[AB]|97\d)$", description="Derived from the COG by ingest")
    epci_siren: Siren | None = Field(default=None, description="Derived from the COG by ingest")
    ban_id: str | None = Field(default=None, max_length=64)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class Dwelling(Contract):
    address: Address
    parc: Parc


class Landlord(Contract):
    type: LandlordType
    name: str | None = Field(default=None, max_length=200)
    siren: Siren | None = None


class Lease(Contract):
    start_date: dt.date | None = None
    rent_excl_charges: Money | None = None
    charges: Money | None = None


class Debt(Contract):
    amount: Money | None = None
    as_of: dt.date | None = None
    first_unpaid_month: str | None = Field(default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    months_unpaid: int | None = Field(default=None, ge=0, le=600)


class Derived(Contract):
    """Legal fields computed by ingest under a versioned rule set (docs/domain.md §2)."""

    rules_version: str
    months_of_rent: Decimal | None = None
    ccapex_cp_threshold_met: bool | None = None
    apl_impaye_constitue: bool | None = None
    commandement_deadline: dt.date | None = None
    earliest_assignation_date: dt.date | None = None
    prefect_notice_ok: bool | None = None
    winter_truce_on_act_date: bool
    earliest_expulsion_date: dt.date | None = None
    urgency: Urgency


class ProcedureNotification(Contract):
    """The canonical record every input path normalises to. Carries personal data: restricted topic."""

    schema_version: Literal["1.0"] = "1.0"
    notification_id: uuid.UUID
    source: Source
    act: Act
    household: Household
    dwelling: Dwelling
    landlord: Landlord
    lease: Lease = Lease()
    debt: Debt = Debt()
    derived: Derived
    warnings: list[str] = Field(default_factory=list)


class ProcedureNotice(Contract):
    """Payload of ``procedure.notification``: the record plus how ingest linked it to a procedure."""

    procedure_id: uuid.UUID
    procedure_short_ref: str = Field(min_length=1, max_length=32)
    revision: int = Field(ge=1)
    is_late: bool
    is_correction: bool
    stage_advanced: bool
    reopened: bool = False
    link_low_confidence: bool = False
    notification: ProcedureNotification


class ProcedureNotificationEvent(Envelope):
    event_type: Literal["procedure.notification"] = "procedure.notification"
    payload: ProcedureNotice
