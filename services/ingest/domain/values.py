"""Reading raw source values (dates, amounts, numbers) into canonical types, reporting coded problems."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from services.ingest.domain.rejections import Findings, RejectionCode

__all__ = [
    "EARLIEST_DATE",
    "FUTURE_TOLERANCE",
    "LATEST_DATE",
    "FieldReader",
    "as_number",
    "date_in_range",
    "parse_iso_date",
    "parse_year_month",
]

FUTURE_TOLERANCE = timedelta(days=1)
"""A past-fact date may be one day after the clock: emitters in other time zones, acts served at night."""

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2100, 12, 31)
"""Every date of an input lies in [EARLIEST_DATE, LATEST_DATE] or is rejected ``DATE_OUT_OF_RANGE``. No act,
birth or hearing falls outside, and the legal rules add months and years to these dates: a ``9999-12-31``
accepted as valid would overflow their arithmetic (``date(10000, 4, 1)``) instead of being rejected."""

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YEAR_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_CENT = Decimal("0.01")
_MAX_AMOUNT = Decimal("9999999999.99")  # canonical Money: at most 12 digits, 2 of them decimals
_ZERO = Decimal("0.00")
_OUT_OF_RANGE = f"expected a date between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}"


def parse_iso_date(raw: str) -> date | None:
    """``YYYY-MM-DD`` only (``date.fromisoformat`` alone would also take ``20260302`` or week dates)."""
    if not _ISO_DATE.match(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def parse_year_month(raw: str) -> str | None:
    """``YYYY-MM`` or ``None``."""
    return raw if _YEAR_MONTH.match(raw) else None


def date_in_range(value: date) -> bool:
    """Whether ``value`` is a plausible date of an act, a birth or a hearing (see :data:`LATEST_DATE`)."""
    return EARLIEST_DATE <= value <= LATEST_DATE


def as_number(raw: object) -> Decimal | None:
    """A JSON number as an exact finite Decimal; ``None`` for strings, booleans, containers and null."""
    if isinstance(raw, bool):
        return None  # bool is an int subclass in Python, but `true` is not a number in JSON
    if isinstance(raw, float):
        raw = Decimal(repr(raw))
    if isinstance(raw, int | Decimal):
        value = Decimal(raw)
        return value if value.is_finite() else None
    return None


class FieldReader:
    """Turns raw values into canonical ones; each problem is recorded in ``findings`` under its JSON path.

    Every method returns ``None`` both for an absent value and for an invalid one; the difference is
    whether an error was recorded. Per-stage requirements check presence separately.
    """

    def __init__(self, findings: Findings, clock: date) -> None:
        self.findings = findings
        self._latest_past_date = clock + FUTURE_TOLERANCE

    def day(self, raw: str | None, path: str, *, past: bool = False) -> date | None:
        """An ISO date in [:data:`EARLIEST_DATE`, :data:`LATEST_DATE`] (else ``DATE_OUT_OF_RANGE``); with
        ``past=True`` (facts already happened) it may not be after clock + 1 day either."""
        if raw is None:
            return None
        value = parse_iso_date(raw)
        if value is None:
            self.findings.reject(RejectionCode.DATE_INVALID, path, "expected a date YYYY-MM-DD")
        elif not date_in_range(value):
            self.findings.reject(RejectionCode.DATE_OUT_OF_RANGE, path, _OUT_OF_RANGE)
            return None
        elif past and value > self._latest_past_date:
            self.findings.reject(RejectionCode.DATE_IN_FUTURE, path, "date is in the future (tolerance 1 day)")
            return None
        return value

    def month(self, raw: str | None, path: str) -> str | None:
        """A calendar month ``YYYY-MM``, within the years of the date range (else ``DATE_OUT_OF_RANGE``)."""
        if raw is None:
            return None
        value = parse_year_month(raw)
        if value is None:
            self.findings.reject(RejectionCode.DATE_INVALID, path, "expected a month YYYY-MM")
        elif not date_in_range(date.fromisoformat(f"{value}-01")):
            self.findings.reject(RejectionCode.DATE_OUT_OF_RANGE, path, _OUT_OF_RANGE)
            return None
        return value

    def amount(self, raw: Any, path: str, *, negative: RejectionCode = RejectionCode.AMOUNT_INVALID) -> Decimal | None:
        """A euro amount: a JSON number ≥ 0 with at most 2 decimals, returned to the cent.

        A negative value is reported with ``negative`` (``DEBT_NEGATIVE``, ``RENT_NEGATIVE``); anything
        else wrong, including a string such as ``"1 200,50"``, with ``AMOUNT_INVALID``.
        """
        if raw is None:
            return None
        value = as_number(raw)
        if value is not None and value < 0:
            self.findings.reject(negative, path, "amount must be zero or positive")
            return None
        if value is None or value > _MAX_AMOUNT or value != value.quantize(_CENT):
            self.findings.reject(
                RejectionCode.AMOUNT_INVALID, path, "expected a JSON number in euros, at most 2 decimals"
            )
            return None
        return value.quantize(_CENT) if value else _ZERO

    def coordinate(self, raw: Any, path: str, *, bound: int) -> float | None:
        """A latitude (``bound=90``) or longitude (``bound=180``) in decimal degrees."""
        if raw is None:
            return None
        value = as_number(raw)
        if value is None or abs(value) > bound:
            self.findings.reject(
                RejectionCode.SCHEMA_INVALID, path, f"expected a JSON number between -{bound} and {bound}"
            )
            return None
        return float(value)
