"""Scenarios S-01 … S-08 of docs/domain.md §9, ingest part, run on the example payloads byte for byte."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from schemas.procedure import (
    Allocataire,
    EmitterType,
    LandlordType,
    Parc,
    ProcedureNotification,
    SourceSystem,
    Urgency,
)
from schemas.stages import Stage
from services.ingest.domain.normalise import Accepted, idempotency_key
from services.ingest.domain.rejections import Rejected

Run = Callable[..., Accepted | Rejected]
GRAND_BELFORT = "200069052"


@pytest.fixture
def reject(run: Run, example_bytes: Callable[[str], bytes]) -> Callable[[str], Rejected]:
    def _reject(name: str) -> Rejected:
        outcome = run(example_bytes(name))
        assert isinstance(outcome, Rejected), outcome
        return outcome

    return _reject


def test_s01_cj_commandement_de_payer_private_landlord(
    run: Run, example_bytes: Callable[[str], bytes], emitters: dict[str, Any]
) -> None:
    raw = example_bytes("s01-cj-commandement-payer")
    outcome = run(raw)
    assert isinstance(outcome, Accepted)
    notification = outcome.notification
    derived = notification.derived
    assert derived.months_of_rent == Decimal("4.0")
    assert derived.ccapex_cp_threshold_met is True
    assert derived.commandement_deadline == date(2026, 4, 13)
    assert derived.urgency is Urgency.NORMAL
    assert notification.dwelling.parc is Parc.PRIVE  # derived from the landlord: the payload has no parc
    assert notification.warnings == []
    address = notification.dwelling.address
    assert (address.commune_insee, address.departement, address.epci_siren) == ("90010", "90", GRAND_BELFORT)
    assert notification.household.caf.allocataire is Allocataire.INCONNU
    source = notification.source
    assert source.system is SourceSystem.CJ_API
    assert source.emitter_type is EmitterType.COMMISSAIRE_JUSTICE
    assert source.payload_sha256 == hashlib.sha256(raw).hexdigest()
    expected_key = hashlib.sha256(b"12345678900011|CP-2026-0412|COMMANDEMENT_PAYER").hexdigest()
    assert outcome.idempotency_key == expected_key
    assert idempotency_key(emitters["cj"].emitter_id, "CP-2026-0412", Stage.COMMANDEMENT_PAYER) == expected_key


def test_s02_bailleur_social_saisine_ccapex(accept: Callable[[str], ProcedureNotification]) -> None:
    notification = accept("s02-bailleur-saisine-ccapex")
    assert notification.derived.apl_impaye_constitue is True  # 1,500 ≥ 2 × (420 + 80)
    assert notification.derived.earliest_assignation_date == date(2026, 7, 4)
    assert notification.derived.urgency is Urgency.LOW
    assert notification.derived.ccapex_cp_threshold_met is None  # bailleur social
    assert notification.dwelling.parc is Parc.SOCIAL
    assert notification.dwelling.address.commune_insee == "90075"
    assert notification.household.caf.tiers_payant is True
    assert notification.source.procedure_ref == "TH-DOS-2025-1190"


def test_s03_a_byte_identical_retry_has_the_same_keys(run: Run, example_bytes: Callable[[str], bytes]) -> None:
    """Duplicate detection itself needs storage (the handler's job); ingest must give it stable keys."""
    first, retry = run(example_bytes("s01-cj-commandement-payer")), run(example_bytes("s01-cj-commandement-payer"))
    assert isinstance(first, Accepted)
    assert isinstance(retry, Accepted)
    assert first.idempotency_key == retry.idempotency_key
    assert first.notification.source.payload_sha256 == retry.notification.source.payload_sha256


def test_s03_a_correction_keeps_the_key_and_changes_the_hash(
    run: Run, example: Callable[[str], dict[str, Any]]
) -> None:
    original, corrected = example("s01-cj-commandement-payer"), example("s01-cj-commandement-payer")
    corrected["debt"]["amount"] = 2460
    first, second = run(original), run(corrected)
    assert isinstance(first, Accepted)
    assert isinstance(second, Accepted)
    assert first.idempotency_key == second.idempotency_key
    assert first.notification.source.payload_sha256 != second.notification.source.payload_sha256


def test_s04_assignation_prefect_notified_in_time(accept: Callable[[str], ProcedureNotification]) -> None:
    notification = accept("s04-cj-assignation")
    assert notification.derived.prefect_notice_ok is True  # 48 days ≥ 42
    assert notification.act.hearing_date == date(2026, 7, 20)
    assert notification.act.court is not None
    assert notification.act.court.name == "Tribunal judiciaire de Belfort"
    assert notification.derived.urgency is Urgency.NORMAL
    assert notification.household.caf.allocataire is Allocataire.NON
    assert notification.dwelling.address.commune_insee == "90099"


def test_s04_late_commandement_is_accepted_without_linking_warnings(
    accept: Callable[[str], ProcedureNotification],
) -> None:
    """LATE_EARLIER_STAGE needs the procedure's history: procedure linking adds it, not normalisation."""
    notification = accept("s04-cj-commandement-payer-late")
    assert notification.act.stage is Stage.COMMANDEMENT_PAYER
    assert notification.derived.commandement_deadline == date(2026, 5, 10)  # lease of 2021: 2 months
    assert notification.warnings == []
    assignation = accept("s04-cj-assignation")
    same_household = (notification.dwelling.address, notification.household.tenants)
    assert same_household == (assignation.dwelling.address, assignation.household.tenants)


def test_s05_administrateur_de_biens_early_impaye(accept: Callable[[str], ProcedureNotification]) -> None:
    notification = accept("s05-bailleur-impaye-constate")
    assert notification.source.emitter_type is EmitterType.ADMINISTRATEUR_BIENS
    assert notification.landlord.type is LandlordType.PERSONNE_MORALE_PRIVEE
    assert notification.dwelling.address.commune_insee == "90052"  # resolved from postal code + name
    assert notification.dwelling.address.commune_name == "Giromagny"
    assert notification.household.caf.allocataire is Allocataire.NON
    assert notification.derived.apl_impaye_constitue is False  # 700 < 2 × 650
    assert notification.derived.urgency is Urgency.LOW


def test_s06_cql_served_during_the_winter_truce(accept: Callable[[str], ProcedureNotification]) -> None:
    notification = accept("s06-cj-commandement-quitter")
    assert notification.derived.winter_truce_on_act_date is True
    assert notification.derived.earliest_expulsion_date == date(2026, 4, 1)
    assert notification.derived.urgency is Urgency.NORMAL
    assert notification.dwelling.parc is Parc.SOCIAL


def test_s07_missing_address_is_rejected(reject: Callable[[str], Rejected]) -> None:
    rejected = reject("s07-cj-address-missing")
    assert {error.code for error in rejected.codes} == {"ADDRESS_MISSING"}
    assert "dwelling.address.line1" in {error.field for error in rejected.codes}
    assert rejected.external_ref == "CP-2026-0777"
    assert rejected.emitter_id == "12345678900011"


@pytest.mark.parametrize(
    ("name", "code"),
    [("s08-bailleur-debt-negative", "DEBT_NEGATIVE"), ("s08-bailleur-amount-invalid", "AMOUNT_INVALID")],
)
def test_s08_malformed_debt_is_rejected(reject: Callable[[str], Rejected], name: str, code: str) -> None:
    rejected = reject(name)
    assert [(error.code, error.field) for error in rejected.codes] == [(code, "debt.amount")]


@pytest.mark.parametrize(
    "name",
    [
        "s01-cj-commandement-payer",
        "s02-bailleur-saisine-ccapex",
        "s04-cj-assignation",
        "s04-cj-commandement-payer-late",
        "s05-bailleur-impaye-constate",
        "s06-cj-commandement-quitter",
    ],
)
def test_accepted_notifications_survive_a_json_round_trip(
    accept: Callable[[str], ProcedureNotification], name: str
) -> None:
    notification = accept(name)
    assert ProcedureNotification.model_validate_json(notification.model_dump_json()) == notification
