"""Dates outside the plausible range are rejected ``DATE_OUT_OF_RANGE``, before any rule computes with them.

A ``vacate_by`` of ``9999-12-31`` used to reach the trêve computation, which built ``date(10000, 4, 1)`` and
raised: a 500 over HTTP, a batch retried forever on Kafka. Every date field of both formats is bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from services.ingest.domain.normalise import Accepted, Emitter
from services.ingest.domain.rejections import Findings, Rejected
from services.ingest.domain.values import FieldReader, date_in_range

Run = Callable[..., Accepted | Rejected]
Example = Callable[[str], dict[str, Any]]

# Every date of the CJ format, as (example, path) with the stage that reads it.
CJ_DATES = [
    ("s06-cj-commandement-quitter", ("commandement_quitter", "vacate_by")),
    ("s04-cj-assignation", ("court_case", "hearing_date")),
    ("s04-cj-assignation", ("court_case", "prefect_notified_on")),
    ("s01-cj-commandement-payer", ("act_date",)),
    ("s01-cj-commandement-payer", ("lease", "start_date")),
    ("s01-cj-commandement-payer", ("debt", "as_of")),
    ("s01-cj-commandement-payer", ("tenants", 0, "birth_date")),
    ("s01-cj-commandement-payer", ("cfp", "requested_on")),
    ("s01-cj-commandement-payer", ("cfp", "decided_on")),
]


def _set(document: dict[str, Any], path: tuple[str | int, ...], value: str) -> None:
    target: Any = document
    for key in path[:-1]:
        if isinstance(key, str) and key not in target:
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def _field(path: tuple[str | int, ...]) -> str:
    return ".".join(f"{part}" for part in path).replace(".0.", "[0].")


def _codes(outcome: Accepted | Rejected) -> list[tuple[str, str | None]]:
    assert isinstance(outcome, Rejected), outcome
    return [(error.code, error.field) for error in outcome.codes]


@pytest.mark.parametrize(("value", "inside"), [("1899-12-31", False), ("1900-01-01", True), ("2100-12-31", True)])
def test_the_range_is_inclusive_at_both_ends(value: str, *, inside: bool) -> None:
    assert date_in_range(date.fromisoformat(value)) is inside
    assert date_in_range(date(2101, 1, 1)) is False


@pytest.mark.parametrize("raw", ["9999-12-31", "0001-01-01", "2101-01-01", "1899-12-31"])
def test_the_field_reader_rejects_a_date_out_of_range_with_its_path_and_returns_nothing(raw: str) -> None:
    findings = Findings()
    value = FieldReader(findings, date(2026, 3, 2)).day(raw, "commandement_quitter.vacate_by")
    assert value is None
    [error] = findings.errors
    assert (error.code, error.field) == ("DATE_OUT_OF_RANGE", "commandement_quitter.vacate_by")
    assert raw not in error.message  # the rule, never the value received


@pytest.mark.parametrize("raw", ["9999-12", "0001-01", "1899-12"])
def test_a_month_out_of_range_is_rejected_too(raw: str) -> None:
    findings = Findings()
    assert FieldReader(findings, date(2026, 3, 2)).month(raw, "debt.first_unpaid_month") is None
    assert [(e.code, e.field) for e in findings.errors] == [("DATE_OUT_OF_RANGE", "debt.first_unpaid_month")]


def test_the_far_future_vacate_by_of_the_issue_is_rejected_not_raised(run: Run, example: Example) -> None:
    document = example("s06-cj-commandement-quitter")
    document["commandement_quitter"]["vacate_by"] = "9999-12-31"
    assert _codes(run(document)) == [("DATE_OUT_OF_RANGE", "commandement_quitter.vacate_by")]


def test_the_last_day_of_the_range_is_accepted_and_pushed_past_no_truce(run: Run, example: Example) -> None:
    document = example("s06-cj-commandement-quitter")
    document["commandement_quitter"]["vacate_by"] = "2100-12-31"
    outcome = run(document)
    assert isinstance(outcome, Accepted), outcome
    assert outcome.notification.derived.earliest_expulsion_date == date(2101, 4, 1)


@pytest.mark.parametrize(("name", "path"), CJ_DATES)
@pytest.mark.parametrize("value", ["9999-12-31", "0001-01-01"])
def test_every_date_of_a_cj_act_is_bounded(
    run: Run, example: Example, name: str, path: tuple[str, ...], value: str
) -> None:
    document = example(name)
    _set(document, path, value)
    assert ("DATE_OUT_OF_RANGE", _field(path)) in _codes(run(document, clock=date(2026, 6, 30)))


@pytest.mark.parametrize(
    "path", [("act_date",), ("lease", "start_date"), ("debt", "as_of"), ("tenants", 0, "birth_date")]
)
def test_every_date_of_a_bailleur_notice_is_bounded(
    run: Run, example: Example, emitters: dict[str, Emitter], path: tuple[str, ...]
) -> None:
    document = example("s02-bailleur-saisine-ccapex")
    _set(document, path, "9999-12-31")
    outcome = run(document, emitter=emitters["territoire_habitat"], clock=date(2026, 3, 2))
    assert ("DATE_OUT_OF_RANGE", _field(path)) in _codes(outcome)
