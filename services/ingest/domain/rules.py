"""Derived legal fields of a procedure notification, as a versioned rule set (docs/domain.md §2).

One function per rule, each citing its legal source. Every rule is pure and dated by its arguments: the
reference clock is a parameter, never ``date.today()``. Three-valued answers (``True``/``False``/``None``)
mean "met", "not met" and "cannot tell from what the emitter sent"; a rule never guesses a missing input.

Change a rule → bump :data:`RULES_VERSION`, so a stored ``derived`` block says which rules produced it.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from schemas.procedure import Act, CfpDecision, Debt, Derived, LandlordType, Lease, Parc, Urgency
from schemas.stages import Stage, stage_rank
from services.ingest.domain.rejections import WarningCode

__all__ = [
    "APL_REFORM_DATE",
    "KASBARIAN_LEASE_CUTOFF",
    "RULES_VERSION",
    "add_months",
    "apl_impaye_constitue",
    "ccapex_cp_threshold_met",
    "commandement_deadline",
    "derive",
    "earliest_assignation_date",
    "earliest_expulsion_date",
    "end_of_winter_truce",
    "months_of_rent",
    "parc_for_landlord",
    "prefect_notice_ok",
    "rule_warnings",
    "urgency",
    "winter_truce_on",
]

RULES_VERSION: Final = "2026-02"

# Loi n° 2023-668 du 27 juillet 2023, in force 29 July 2023: 6-week commandement for leases concluded,
# renewed or tacitly renewed since then. The emitter gives the start date; a tacit renewal after the
# cut-off is not visible in it (legal uncertainty noted in docs/domain.md §2.2).
KASBARIAN_LEASE_CUTOFF: Final = date(2023, 7, 29)
# Décret n° 2026-84 du 12 février 2026: new definition of an APL impayé from 1 January 2027.
APL_REFORM_DATE: Final = date(2027, 1, 1)

_COMMANDEMENT_DELAY_NEW = timedelta(weeks=6)
_COMMANDEMENT_DELAY_OLD_MONTHS = 2
_SAISINE_DELAY_MONTHS = 2
_CQL_DELAY_MONTHS = 2
_PREFECT_NOTICE_MIN_DAYS = 42
_CCAPEX_CP_MONTHS = 2
_APL_OLD_RENT_MULTIPLE = 2
_APL_NEW_DEBT_CEILING = Decimal(450)
_APL_NEW_MONTHS = 3
_CRITICAL_DAYS = 7
_HIGH_DAYS = 30
_CENT = Decimal("0.01")

# Art. 24 I loi 89-462 / art. 7-2 loi 90-449: the CCAPEX saisine before assignation binds landlords that
# are legal persons, SCI familiales excepted.
_PERSONNES_MORALES = frozenset({LandlordType.BAILLEUR_SOCIAL, LandlordType.PERSONNE_MORALE_PRIVEE})
# Art. 24 loi 89-462 (ALUR, then loi 2023-668): the CJ signals the commandement to the CCAPEX for
# personnes physiques and SCI familiales.
_CCAPEX_CP_LANDLORDS = frozenset({LandlordType.PERSONNE_PHYSIQUE, LandlordType.SCI_FAMILIALE})
_PARC_BY_LANDLORD = {
    LandlordType.BAILLEUR_SOCIAL: Parc.SOCIAL,
    LandlordType.PERSONNE_MORALE_PRIVEE: Parc.PRIVE,
    LandlordType.PERSONNE_PHYSIQUE: Parc.PRIVE,
    LandlordType.SCI_FAMILIALE: Parc.PRIVE,
    LandlordType.INCONNU: Parc.INCONNU,
}
_CFP_OR_LATER = frozenset({Stage.DEMANDE_CFP, Stage.DECISION_CFP, Stage.EXPULSION_REALISEE})


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months, clamped to the end of a shorter month (31 Dec + 2 months = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def parc_for_landlord(landlord_type: LandlordType) -> Parc:
    """Housing stock implied by the landlord, used when the emitter leaves ``dwelling.parc`` out (docs/domain.md §2.10).

    An organisme HLM's dwelling is counted as social stock; every other known landlord as private.
    """
    return _PARC_BY_LANDLORD[landlord_type]


def _any_known(*conditions: bool | None) -> bool | None:
    """Three-valued OR: met if any condition is met, unknown if none is met and one is unknown."""
    if any(condition is True for condition in conditions):
        return True
    return None if any(condition is None for condition in conditions) else False


def months_of_rent(debt_amount: Decimal | None, rent_excl_charges: Decimal | None) -> Decimal | None:
    """Debt expressed in months of rent excluding charges, to the cent; ``None`` if unknown or rent is 0.

    Source: décret 2015-1384 art. 14 and the post-2023 national threshold both count the debt in
    "months of rent hors charges" (docs/domain.md §2.1).
    """
    if debt_amount is None or not rent_excl_charges:
        return None
    return (debt_amount / rent_excl_charges).quantize(_CENT, rounding=ROUND_HALF_UP)


def ccapex_cp_threshold_met(
    landlord_type: LandlordType, months_unpaid: int | None, months_of_rent: Decimal | None
) -> bool | None:
    """Whether the commandement de payer must be signalled by the CJ to the CCAPEX.

    Source: art. 24 I loi 89-462 as amended by loi 2023-668 (JCP N 8 Sept 2023): impayé for 2 months or
    debt ≥ 2 × monthly rent HC. Only for personnes physiques and SCI familiales; ``None`` for other
    landlords. ``months_unpaid`` approximates "2 consecutive months" (the emitter's count).
    """
    if landlord_type not in _CCAPEX_CP_LANDLORDS:
        return None
    return _any_known(
        None if months_unpaid is None else months_unpaid >= _CCAPEX_CP_MONTHS,
        None if months_of_rent is None else months_of_rent >= _CCAPEX_CP_MONTHS,
    )


def apl_impaye_constitue(
    on: date,
    *,
    debt_amount: Decimal | None,
    rent_excl_charges: Decimal | None,
    charges: Decimal | None,
    months_unpaid: int | None,
) -> bool | None:
    """Whether the debt is an APL "impayé" under the regime in force on ``on`` (the act date).

    Before 2027-01-01 — R.824-4 CCH: debt ≥ 2 × (monthly rent + charges). The gross/net-of-APL nuance
    depends on who receives the aid; the amounts are taken as the emitter sent them.
    From 2027-01-01 — décret 2026-84: debt > 450 €, or still unpaid 3 months after the first default,
    approximated by ``months_unpaid ≥ 3`` (exact wording unverified, docs/domain.md §10).
    """
    if on >= APL_REFORM_DATE:
        return _any_known(
            None if debt_amount is None else debt_amount > _APL_NEW_DEBT_CEILING,
            None if months_unpaid is None else months_unpaid >= _APL_NEW_MONTHS,
        )
    if debt_amount is None or rent_excl_charges is None:
        return None
    if debt_amount < _APL_OLD_RENT_MULTIPLE * rent_excl_charges:
        return False  # unknown charges can only raise the threshold
    if charges is None:
        return None
    return debt_amount >= _APL_OLD_RENT_MULTIPLE * (rent_excl_charges + charges)


def commandement_deadline(act_date: date, lease_start: date | None) -> date:
    """Date the clause résolutoire is acquired if the debt is not paid (end of the commandement's delay).

    Source: art. 24 I loi 89-462 as amended by art. 10 loi 2023-668: 6 weeks for leases from
    29 July 2023; 2 months for older leases. An unknown lease date is taken as recent (6 weeks, the
    shorter, hence safer for prevention); :func:`rule_warnings` flags the assumption.
    """
    if lease_start is not None and lease_start < KASBARIAN_LEASE_CUTOFF:
        return add_months(act_date, _COMMANDEMENT_DELAY_OLD_MONTHS)
    return act_date + _COMMANDEMENT_DELAY_NEW


def earliest_assignation_date(
    landlord_type: LandlordType, *, commandement_deadline: date | None, saisine_date: date | None
) -> date | None:
    """Lower bound of the first admissible assignation date, from the bounds known so far.

    Sources: art. 24 I loi 89-462 — not before the commandement's delay has run out; for personnes
    morales other than SCI familiales, also not before 2 months after the CCAPEX saisine (art. 24 II,
    docs/domain.md §2.5). ``None`` when neither bound is known.
    """
    bounds = [commandement_deadline] if commandement_deadline is not None else []
    if saisine_date is not None and landlord_type in _PERSONNES_MORALES:
        bounds.append(add_months(saisine_date, _SAISINE_DELAY_MONTHS))
    return max(bounds, default=None)


def prefect_notice_ok(hearing_date: date | None, prefect_notified_on: date | None) -> bool | None:
    """Whether the préfet was notified of the assignation at least 6 weeks (42 days) before the hearing.

    Source: art. 24 III loi 89-462 as amended by loi 2023-668 (6 weeks, formerly 2 months), otherwise the
    assignation is inadmissible. The Cass. avis of 6 Nov 2025 may refine the count (docs/domain.md §2.6).
    """
    if hearing_date is None or prefect_notified_on is None:
        return None
    return (hearing_date - prefect_notified_on).days >= _PREFECT_NOTICE_MIN_DAYS


def winter_truce_on(day: date) -> bool:
    """Whether ``day`` falls in the trêve hivernale, 1 November – 31 March inclusive.

    Source: L.412-6 CPCE (end date 31 March since loi ALUR 2014). The one-off extensions of 2020 and 2021
    are not modelled.
    """
    return day.month >= 11 or day.month <= 3


def end_of_winter_truce(day: date) -> date:
    """``day`` itself outside the trêve, else the first day after it (1 April). Source: L.412-6 CPCE."""
    if not winter_truce_on(day):
        return day
    return date(day.year if day.month <= 3 else day.year + 1, 4, 1)


def earliest_expulsion_date(act: Act) -> date | None:
    """First day an expulsion could lawfully take place, as far as this act tells; ``None`` otherwise.

    - COMMANDEMENT_QUITTER — L.412-1 CPCE: not before 2 months after the commandement, nor before the
      ``vacate_by`` date it states;
    - DECISION_CFP granted — the concours is usable from its decision date (or ``vacate_by`` if later);
    - then, for both, L.412-6 CPCE: not during the trêve hivernale (pushed to 1 April).
    JEX délais (L.412-3) are unknown unless notified, so this is a lower bound.
    """
    if act.stage is Stage.COMMANDEMENT_QUITTER:
        start = add_months(act.date, _CQL_DELAY_MONTHS)
    elif act.stage is Stage.DECISION_CFP and act.cfp is not None and act.cfp.decision is CfpDecision.ACCORDE:
        start = act.cfp.decided_on or act.date
    else:
        return None
    return end_of_winter_truce(max(start, act.vacate_by or start))


def urgency(act: Act, *, earliest_expulsion: date | None, clock: date) -> Urgency:
    """Urgency of the notification against the reference ``clock`` (docs/domain.md §2.9).

    CRITICAL: CFP granted and expulsion possible within 7 days (inclusive). HIGH: CFP requested or decided,
    expulsion done (rehousing emergency), or a CQL with expulsion possible within 30 days. NORMAL: from
    COMMANDEMENT_PAYER to COMMANDEMENT_QUITTER. LOW: earlier stages and unranked side events.
    """
    days_left = None if earliest_expulsion is None else (earliest_expulsion - clock).days
    granted = act.cfp is not None and act.cfp.decision is CfpDecision.ACCORDE
    if act.stage is Stage.DECISION_CFP and granted and days_left is not None and days_left <= _CRITICAL_DAYS:
        return Urgency.CRITICAL
    if act.stage in _CFP_OR_LATER:
        return Urgency.HIGH
    if act.stage is Stage.COMMANDEMENT_QUITTER and days_left is not None and days_left <= _HIGH_DAYS:
        return Urgency.HIGH
    rank = stage_rank(act.stage)
    commandement_rank = stage_rank(Stage.COMMANDEMENT_PAYER)
    if rank is not None and commandement_rank is not None and rank >= commandement_rank:
        return Urgency.NORMAL
    return Urgency.LOW


def derive(
    act: Act,
    landlord_type: LandlordType,
    lease: Lease,
    debt: Debt,
    *,
    clock: date,
    saisine_date: date | None = None,
) -> Derived:
    """Every derived field of a notification under :data:`RULES_VERSION`.

    ``saisine_date`` is the CCAPEX saisine of an earlier event, when the caller knows it; for a
    SAISINE_CCAPEX_BAILLEUR act it is the act date itself.
    """
    ratio = months_of_rent(debt.amount, lease.rent_excl_charges)
    deadline = commandement_deadline(act.date, lease.start_date) if act.stage is Stage.COMMANDEMENT_PAYER else None
    if act.stage is Stage.SAISINE_CCAPEX_BAILLEUR:
        saisine_date = act.date
    expulsion = earliest_expulsion_date(act)
    return Derived(
        rules_version=RULES_VERSION,
        months_of_rent=ratio,
        ccapex_cp_threshold_met=ccapex_cp_threshold_met(landlord_type, debt.months_unpaid, ratio),
        apl_impaye_constitue=apl_impaye_constitue(
            act.date,
            debt_amount=debt.amount,
            rent_excl_charges=lease.rent_excl_charges,
            charges=lease.charges,
            months_unpaid=debt.months_unpaid,
        ),
        commandement_deadline=deadline,
        earliest_assignation_date=earliest_assignation_date(
            landlord_type, commandement_deadline=deadline, saisine_date=saisine_date
        ),
        prefect_notice_ok=prefect_notice_ok(act.hearing_date, act.prefect_notified_on),
        winter_truce_on_act_date=winter_truce_on(act.date),
        earliest_expulsion_date=expulsion,
        urgency=urgency(act, earliest_expulsion=expulsion, clock=clock),
    )


def rule_warnings(act: Act, lease: Lease, debt: Debt, derived: Derived) -> tuple[WarningCode, ...]:
    """Non-blocking warnings that follow from the rules (the address warning comes from normalisation)."""
    commandement = act.stage is Stage.COMMANDEMENT_PAYER
    checks = (
        (derived.prefect_notice_ok is False, WarningCode.PREFECT_NOTICE_LT_6_WEEKS),
        (commandement and derived.ccapex_cp_threshold_met is False, WarningCode.CP_BELOW_CCAPEX_THRESHOLD),
        (debt.amount is not None and debt.amount == 0, WarningCode.DEBT_ZERO),
        (commandement and lease.start_date is None, WarningCode.LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W),
    )
    return tuple(code for applies, code in checks if applies)
