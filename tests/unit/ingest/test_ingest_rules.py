"""Table-driven tests of the derived legal fields (services.ingest.domain.rules), boundary days included."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from schemas.procedure import Act, Cfp, CfpDecision, Debt, LandlordType, Lease, Parc, Urgency
from schemas.stages import Stage
from services.ingest.domain.rejections import WarningCode
from services.ingest.domain.rules import (
    RULES_VERSION,
    add_months,
    apl_impaye_constitue,
    ccapex_cp_threshold_met,
    commandement_deadline,
    derive,
    earliest_assignation_date,
    earliest_expulsion_date,
    end_of_winter_truce,
    months_of_rent,
    parc_for_landlord,
    prefect_notice_ok,
    rule_warnings,
    urgency,
    winter_truce_on,
)

D = Decimal
PP = LandlordType.PERSONNE_PHYSIQUE
SCI = LandlordType.SCI_FAMILIALE
SOCIAL = LandlordType.BAILLEUR_SOCIAL
PM = LandlordType.PERSONNE_MORALE_PRIVEE
UNKNOWN = LandlordType.INCONNU


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 3, 2), 2, date(2026, 5, 2)),
        (date(2025, 12, 31), 2, date(2026, 2, 28)),  # clamps to month end
        (date(2023, 12, 31), 2, date(2024, 2, 29)),  # leap year
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 11, 15), 2, date(2027, 1, 15)),  # year rollover
        (date(2026, 5, 4), 0, date(2026, 5, 4)),
    ],
)
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("debt", "rent", "expected"),
    [
        (D(2400), D(600), D("4.00")),
        (D(1500), D(420), D("3.57")),
        (D("700.00"), D("650.00"), D("1.08")),
        (D(0), D(600), D("0.00")),
        (None, D(600), None),
        (D(100), None, None),
        (D(100), D(0), None),  # no rent: no ratio rather than a division by zero
    ],
)
def test_months_of_rent(debt: Decimal | None, rent: Decimal | None, expected: Decimal | None) -> None:
    assert months_of_rent(debt, rent) == expected


@pytest.mark.parametrize(
    ("landlord", "months_unpaid", "ratio", "expected"),
    [
        (PP, 4, D(4), True),
        (SCI, 2, D("0.50"), True),  # 2 months unpaid is enough
        (PP, 1, D("2.00"), True),  # debt = 2 × rent is enough
        (PP, 1, D("1.99"), False),
        (PP, None, D("1.99"), None),  # months unknown: cannot tell
        (PP, None, D(2), True),
        (PP, None, None, None),
        (SOCIAL, 5, D(5), None),  # not a CJ → CCAPEX signalement case
        (PM, 5, D(5), None),
        (UNKNOWN, 5, D(5), None),
    ],
)
def test_ccapex_cp_threshold_met(
    landlord: LandlordType, months_unpaid: int | None, ratio: Decimal | None, expected: bool | None
) -> None:
    assert ccapex_cp_threshold_met(landlord, months_unpaid, ratio) is expected


@pytest.mark.parametrize(
    ("on", "debt", "rent", "charges", "months", "expected"),
    [
        # Regime before 2027: debt ≥ 2 × (rent + charges)
        (date(2026, 5, 4), D(1500), D(420), D(80), None, True),
        (date(2026, 5, 4), D(1000), D(420), D(80), None, True),  # equal: constituted
        (date(2026, 5, 4), D("999.99"), D(420), D(80), None, False),
        (date(2026, 12, 31), D(460), D(200), D(30), 5, True),
        (date(2026, 12, 31), D(451), D(300), D(30), 5, False),  # the 2027 rule is not yet in force
        (date(2026, 5, 4), D(1500), None, None, None, None),
        (date(2026, 5, 4), D(700), D(650), None, None, False),  # below 2 × rent whatever the charges
        (date(2026, 5, 4), D(1400), D(650), None, None, None),  # charges would decide
        # Regime from 2027-01-01: debt > 450 € or 3 months unpaid
        (date(2027, 1, 1), D(451), D(300), D(30), 1, True),
        (date(2027, 1, 1), D("450.01"), None, None, None, True),
        (date(2027, 1, 1), D("450.00"), None, None, 2, False),
        (date(2027, 1, 1), D("450.00"), None, None, 3, True),
        (date(2027, 1, 1), D(100), None, None, None, None),
        (date(2027, 1, 1), None, None, None, 3, True),
    ],
)
def test_apl_impaye_constitue(
    *,
    on: date,
    debt: Decimal | None,
    rent: Decimal | None,
    charges: Decimal | None,
    months: int | None,
    expected: bool | None,
) -> None:
    result = apl_impaye_constitue(on, debt_amount=debt, rent_excl_charges=rent, charges=charges, months_unpaid=months)
    assert result is expected


@pytest.mark.parametrize(
    ("act_date", "lease_start", "expected"),
    [
        (date(2026, 3, 2), date(2024, 9, 1), date(2026, 4, 13)),  # S-01: 6 weeks
        (date(2026, 3, 2), date(2023, 7, 29), date(2026, 4, 13)),  # first day of the 2023 law
        (date(2026, 3, 2), date(2023, 7, 28), date(2026, 5, 2)),  # older lease: 2 months
        (date(2026, 3, 2), None, date(2026, 4, 13)),  # unknown: 6 weeks assumed
        (date(2025, 12, 31), date(2020, 1, 1), date(2026, 2, 28)),  # 2 months clamp to month end
    ],
)
def test_commandement_deadline(act_date: date, lease_start: date | None, expected: date) -> None:
    assert commandement_deadline(act_date, lease_start) == expected


@pytest.mark.parametrize(
    ("landlord", "deadline", "saisine", "expected"),
    [
        (SOCIAL, None, date(2026, 5, 4), date(2026, 7, 4)),  # S-02
        (SOCIAL, date(2026, 8, 1), date(2026, 5, 4), date(2026, 8, 1)),
        (PM, date(2026, 6, 1), date(2026, 5, 4), date(2026, 7, 4)),
        (SCI, date(2026, 6, 1), date(2026, 5, 4), date(2026, 6, 1)),  # SCI familiale: no saisine delay
        (PP, date(2026, 4, 13), None, date(2026, 4, 13)),
        (PP, None, None, None),
        (SOCIAL, None, None, None),
    ],
)
def test_earliest_assignation_date(
    landlord: LandlordType, deadline: date | None, saisine: date | None, expected: date | None
) -> None:
    assert earliest_assignation_date(landlord, commandement_deadline=deadline, saisine_date=saisine) == expected


@pytest.mark.parametrize(
    ("hearing", "notified", "expected"),
    [
        (date(2026, 7, 20), date(2026, 6, 2), True),  # S-04: 48 days
        (date(2026, 7, 20), date(2026, 6, 8), True),  # 42 days
        (date(2026, 7, 20), date(2026, 6, 9), False),  # 41 days
        (None, date(2026, 6, 9), None),
        (date(2026, 7, 20), None, None),
    ],
)
def test_prefect_notice_ok(hearing: date | None, notified: date | None, expected: bool | None) -> None:
    assert prefect_notice_ok(hearing, notified) is expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 10, 31), False),
        (date(2025, 11, 1), True),
        (date(2025, 12, 10), True),
        (date(2026, 1, 1), True),
        (date(2026, 3, 31), True),
        (date(2026, 4, 1), False),
        (date(2026, 7, 14), False),
    ],
)
def test_winter_truce_on(day: date, expected: bool) -> None:
    assert winter_truce_on(day) is expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 10, 31), date(2025, 10, 31)),
        (date(2025, 11, 1), date(2026, 4, 1)),
        (date(2026, 2, 10), date(2026, 4, 1)),
        (date(2026, 3, 31), date(2026, 4, 1)),
        (date(2026, 4, 1), date(2026, 4, 1)),
    ],
)
def test_end_of_winter_truce(day: date, expected: date) -> None:
    assert end_of_winter_truce(day) == expected


def _act(stage: Stage, on: date, **fields: object) -> Act:
    return Act.model_validate({"stage": stage, "date": on, **fields})


@pytest.mark.parametrize(
    ("act", "expected"),
    [
        # S-06: CQL 2025-12-10 + 2 months = 2026-02-10 = vacate_by, inside the trêve → 1 April
        (_act(Stage.COMMANDEMENT_QUITTER, date(2025, 12, 10), vacate_by=date(2026, 2, 10)), date(2026, 4, 1)),
        (_act(Stage.COMMANDEMENT_QUITTER, date(2026, 4, 15)), date(2026, 6, 15)),
        (_act(Stage.COMMANDEMENT_QUITTER, date(2026, 4, 15), vacate_by=date(2026, 7, 1)), date(2026, 7, 1)),
        (_act(Stage.COMMANDEMENT_QUITTER, date(2026, 4, 15), vacate_by=date(2026, 5, 1)), date(2026, 6, 15)),
        (_act(Stage.COMMANDEMENT_QUITTER, date(2026, 9, 1)), date(2027, 4, 1)),  # 1 Nov: first day of the trêve
        (_act(Stage.COMMANDEMENT_QUITTER, date(2026, 8, 31)), date(2026, 10, 31)),  # last day before it
        (
            _act(Stage.DECISION_CFP, date(2026, 5, 20), cfp=Cfp(decision=CfpDecision.ACCORDE)),
            date(2026, 5, 20),
        ),
        (
            _act(Stage.DECISION_CFP, date(2026, 12, 2), cfp=Cfp(decision=CfpDecision.ACCORDE)),
            date(2027, 4, 1),
        ),
        (_act(Stage.DECISION_CFP, date(2026, 5, 20), cfp=Cfp(decision=CfpDecision.REFUSE)), None),
        (_act(Stage.DEMANDE_CFP, date(2026, 5, 20)), None),
        (_act(Stage.COMMANDEMENT_PAYER, date(2026, 5, 20)), None),
    ],
)
def test_earliest_expulsion_date(act: Act, expected: date | None) -> None:
    assert earliest_expulsion_date(act) == expected


CLOCK = date(2026, 5, 1)
GRANTED = Cfp(decision=CfpDecision.ACCORDE)


@pytest.mark.parametrize(
    ("act", "earliest", "expected"),
    [
        (_act(Stage.IMPAYE_CONSTATE, CLOCK), None, Urgency.LOW),
        (_act(Stage.SAISINE_CCAPEX_BAILLEUR, CLOCK), None, Urgency.LOW),
        (_act(Stage.PLAN_APUREMENT, CLOCK), None, Urgency.LOW),  # unranked side event
        (_act(Stage.CLOTURE, CLOCK), None, Urgency.LOW),
        (_act(Stage.COMMANDEMENT_PAYER, CLOCK), None, Urgency.NORMAL),
        (_act(Stage.DECISION, CLOCK), None, Urgency.NORMAL),
        (_act(Stage.COMMANDEMENT_QUITTER, CLOCK), date(2026, 6, 1), Urgency.NORMAL),  # 31 days
        (_act(Stage.COMMANDEMENT_QUITTER, CLOCK), date(2026, 5, 31), Urgency.HIGH),  # 30 days
        (_act(Stage.DEMANDE_CFP, CLOCK), None, Urgency.HIGH),
        (_act(Stage.EXPULSION_REALISEE, CLOCK), None, Urgency.HIGH),
        (_act(Stage.DECISION_CFP, CLOCK, cfp=Cfp(decision=CfpDecision.REFUSE)), None, Urgency.HIGH),
        (_act(Stage.DECISION_CFP, CLOCK, cfp=GRANTED), date(2026, 5, 9), Urgency.HIGH),  # 8 days
        (_act(Stage.DECISION_CFP, CLOCK, cfp=GRANTED), date(2026, 5, 8), Urgency.CRITICAL),  # 7 days
        (_act(Stage.DECISION_CFP, CLOCK, cfp=GRANTED), date(2026, 4, 20), Urgency.CRITICAL),  # overdue
    ],
)
def test_urgency(act: Act, earliest: date | None, expected: Urgency) -> None:
    assert urgency(act, earliest_expulsion=earliest, clock=CLOCK) is expected


@pytest.mark.parametrize(
    ("landlord", "expected"),
    [(SOCIAL, Parc.SOCIAL), (PM, Parc.PRIVE), (PP, Parc.PRIVE), (SCI, Parc.PRIVE), (UNKNOWN, Parc.INCONNU)],
)
def test_parc_for_landlord(landlord: LandlordType, expected: Parc) -> None:
    assert parc_for_landlord(landlord) is expected


def test_derive_assembles_the_rules_for_a_commandement() -> None:
    act = _act(Stage.COMMANDEMENT_PAYER, date(2026, 3, 2))
    lease = Lease(start_date=date(2024, 9, 1), rent_excl_charges=D(600))
    debt = Debt(amount=D(2400), as_of=date(2026, 2, 28), months_unpaid=4)
    derived = derive(act, PP, lease, debt, clock=date(2026, 3, 2))
    assert derived.rules_version == RULES_VERSION == "2026-02"
    assert derived.months_of_rent == D(4)
    assert derived.ccapex_cp_threshold_met is True
    assert derived.apl_impaye_constitue is None  # charges unknown and debt ≥ 2 × rent
    assert derived.commandement_deadline == date(2026, 4, 13)
    assert derived.earliest_assignation_date == date(2026, 4, 13)
    assert derived.winter_truce_on_act_date is True
    assert derived.earliest_expulsion_date is None
    assert derived.urgency is Urgency.NORMAL


def test_derive_uses_a_known_saisine_for_a_legal_person() -> None:
    act = _act(Stage.COMMANDEMENT_PAYER, date(2026, 3, 2))
    derived = derive(act, SOCIAL, Lease(), Debt(), clock=date(2026, 3, 2), saisine_date=date(2026, 2, 20))
    assert derived.earliest_assignation_date == date(2026, 4, 20)


@pytest.mark.parametrize(
    ("act", "lease", "debt", "expected"),
    [
        (
            _act(Stage.COMMANDEMENT_PAYER, date(2026, 3, 2)),
            Lease(rent_excl_charges=D(600)),
            Debt(amount=D(1000), months_unpaid=1),
            {WarningCode.CP_BELOW_CCAPEX_THRESHOLD, WarningCode.LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W},
        ),
        (
            _act(Stage.COMMANDEMENT_PAYER, date(2026, 3, 2)),
            Lease(start_date=date(2024, 1, 1), rent_excl_charges=D(600)),
            Debt(amount=D(0), months_unpaid=0),
            {WarningCode.CP_BELOW_CCAPEX_THRESHOLD, WarningCode.DEBT_ZERO},
        ),
        (
            _act(
                Stage.ASSIGNATION,
                date(2026, 6, 1),
                hearing_date=date(2026, 7, 20),
                prefect_notified_on=date(2026, 6, 9),
            ),
            Lease(),
            Debt(amount=D(3100)),
            {WarningCode.PREFECT_NOTICE_LT_6_WEEKS},
        ),
        (_act(Stage.ASSIGNATION, date(2026, 6, 1)), Lease(), Debt(amount=D(3100)), set()),
    ],
)
def test_rule_warnings(act: Act, lease: Lease, debt: Debt, expected: set[WarningCode]) -> None:
    derived = derive(act, PP, lease, debt, clock=act.date)
    assert set(rule_warnings(act, lease, debt, derived)) == expected
