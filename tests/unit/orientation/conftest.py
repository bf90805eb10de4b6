"""Builders for orientation tests, served as fixtures.

The project runs pytest with ``--import-mode=importlib``: test directories are not importable, so the
builders reach tests as (session-scoped) fixtures returning factories. Table rows therefore hold plain
keyword arguments that the test turns into facts or offers.

People, places and identifiers are fictional. ``999900001`` is Territoire habitat's fictional SIREN,
documented in deploy/referential/seed-90.yaml.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from schemas.procedure import (
    Act,
    Address,
    Debt,
    Derived,
    Dwelling,
    EmitterType,
    Household,
    HouseholdContact,
    Landlord,
    LandlordType,
    Lease,
    Parc,
    ProcedureNotice,
    ProcedureNotification,
    Source,
    SourceSystem,
    Tenant,
    Urgency,
)
from schemas.referential import Channels, Contact, StructureTypology
from schemas.stages import Stage
from services.orientation.domain import (
    Eligibility,
    MatchFacts,
    Offer,
    Referential,
    Structure,
    Zone,
    ZoneEntry,
    ZoneKind,
    load_referential,
)
from services.orientation.domain.referential import TypeService

SEED_PATH = Path(__file__).resolve().parents[3] / "deploy" / "referential" / "seed-90.yaml"
DEPT_90 = Zone(include=(ZoneEntry(kind=ZoneKind.DEPARTEMENT, code="90"),))

MakeFacts = Callable[..., MatchFacts]
MakeOffer = Callable[..., Offer]
MakeEligibility = Callable[..., Eligibility]
MakeReferential = Callable[..., Referential]
MakeNotice = Callable[..., ProcedureNotice]


@pytest.fixture(scope="session")
def seed_text() -> str:
    return SEED_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def seed(seed_text: str) -> Referential:
    """The seed référentiel of deploy/referential/seed-90.yaml."""
    return load_referential(seed_text)


@pytest.fixture(scope="session")
def make_facts() -> MakeFacts:
    """``make_facts(stage, commune="90010", **fields)``: facts in the 90, household values unknown unless given."""
    return build_facts


@pytest.fixture(scope="session")
def make_offer() -> MakeOffer:
    """``make_offer(id, structure_id="S1", **fields)``: an active offer on the whole 90, no criterion."""
    return build_offer


@pytest.fixture(scope="session")
def make_eligibility() -> MakeEligibility:
    """``make_eligibility(**fields)`` from plain values: lists, numbers, enum values as strings."""
    return build_eligibility


@pytest.fixture(scope="session")
def make_referential() -> MakeReferential:
    """``make_referential(*offers)``: a référentiel with a structure per offer's structure_id + DEFAULT."""
    return build_referential


@pytest.fixture(scope="session")
def make_notice() -> MakeNotice:
    """``make_notice(stage=COMMANDEMENT_PAYER, is_late=False)``: scenario S-01's notice as ingest publishes it."""
    return build_notice


def build_facts(stage: Stage, commune: str = "90010", **fields: Any) -> MatchFacts:
    values: dict[str, Any] = {
        "stage": stage,
        "act_date": date(2026, 3, 2),
        "commune_insee": commune,
        "departement": "90",
        **fields,
    }
    return MatchFacts(**values)


def build_structure(structure_id: str, **fields: Any) -> Structure:
    contact = Contact(
        id=f"{structure_id}-C",
        label=f"Contact {structure_id}",
        email=f"{structure_id.lower()}@partner.test",
        channels_enabled=Channels(email=True),
    )
    values: dict[str, Any] = {
        "id": structure_id,
        "nom": f"Structure {structure_id}",
        "typologie": StructureTypology.AUTRE,
        "contacts": (contact,),
        **fields,
    }
    return Structure(**values)


def build_offer(offer_id: str, structure_id: str = "S1", **fields: Any) -> Offer:
    values: dict[str, Any] = {
        "id": offer_id,
        "structure_id": structure_id,
        "nom": f"Offre {offer_id}",
        "description": "Offre de test.",
        "type": TypeService.ACCOMPAGNEMENT,
        "zone": DEPT_90,
        **fields,
    }
    return Offer(**values)


def build_eligibility(**fields: Any) -> Eligibility:
    # Lax validation turns table values (lists, ints, "OUI") into the strict model's types.
    return Eligibility.model_validate(fields, strict=False)


def build_referential(*offers: Offer, structures: tuple[Structure, ...] | None = None) -> Referential:
    if structures is None:
        structures = tuple(build_structure(sid) for sid in dict.fromkeys(o.structure_id for o in offers))
    return Referential(default_referent="DEFAULT", structures=(*structures, build_structure("DEFAULT")), offers=offers)


def build_notice(stage: Stage = Stage.COMMANDEMENT_PAYER, *, is_late: bool = False) -> ProcedureNotice:
    record = ProcedureNotification(
        notification_id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
        source=Source(
            system=SourceSystem.CJ_API,
            emitter_type=EmitterType.COMMISSAIRE_JUSTICE,
            emitter_id="12345678900011",
            external_ref="CP-2026-0412",
            received_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
            payload_sha256="0" * 64,
        ),
        act=Act(stage=stage, date=date(2026, 3, 2)),
        household=Household(
            tenants=[Tenant(last_name="Durand", first_name="Léa")],
            contact=HouseholdContact(mobile="+33612345678", email="lea.durand@example.test"),
        ),
        dwelling=Dwelling(
            address=Address(
                line1="12 rue de Mulhouse",
                postal_code="90000",
                commune_insee="90010",
                commune_name="Belfort",
                departement="90",
                epci_siren="200069052",
            ),
            parc=Parc.PRIVE,
        ),
        landlord=Landlord(type=LandlordType.PERSONNE_PHYSIQUE, name="Bernard Lefort"),
        lease=Lease(start_date=date(2024, 9, 1), rent_excl_charges=Decimal("600.00")),
        debt=Debt(amount=Decimal("2400.00"), as_of=date(2026, 2, 28), months_unpaid=4),
        derived=Derived(
            rules_version="2026-02",
            months_of_rent=Decimal("4.0"),
            ccapex_cp_threshold_met=True,
            commandement_deadline=date(2026, 4, 13),
            winter_truce_on_act_date=False,
            urgency=Urgency.NORMAL,
        ),
    )
    return ProcedureNotice(
        procedure_id=uuid.UUID("00000000-0000-4000-8000-0000000000aa"),
        procedure_short_ref="EXP-90-0001",
        revision=1,
        is_late=is_late,
        is_correction=False,
        stage_advanced=not is_late,
        notification=record,
    )
