"""One test per rejection code (and per warning) of the normaliser, on mutations of the example payloads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest

from schemas.procedure import EmitterType, Parc, SourceSystem
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.domain.normalise import Accepted, Emitter, normalise, reject_unknown_emitter
from services.ingest.domain.rejections import Rejected, json_path

Run = Callable[..., Accepted | Rejected]
Example = Callable[[str], dict[str, Any]]
S01 = "s01-cj-commandement-payer"
S02 = "s02-bailleur-saisine-ccapex"
S04 = "s04-cj-assignation"
S06 = "s06-cj-commandement-quitter"


def codes(outcome: Accepted | Rejected) -> list[tuple[str, str | None]]:
    assert isinstance(outcome, Rejected), "expected a rejection"
    assert outcome.codes, "a rejection always has a reason"
    return [(error.code, error.field) for error in outcome.codes]


def accepted(outcome: Accepted | Rejected) -> Accepted:
    assert isinstance(outcome, Accepted), outcome
    return outcome


def test_payload_too_large(run: Run, example: Example) -> None:
    raw = json.dumps(example(S01)).encode()
    assert codes(run(raw, max_bytes=len(raw) - 1)) == [("PAYLOAD_TOO_LARGE", None)]
    accepted(run(raw, max_bytes=len(raw)))
    padded = raw + b" " * 256_000
    assert codes(run(padded)) == [("PAYLOAD_TOO_LARGE", None)]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"\xff\xfe{}", None),  # not UTF-8
        (b'{"format": ', None),  # truncated JSON
        (b"[1, 2]", None),  # not an object
        (b'{"amount": NaN}', None),  # NaN is not JSON
        (b'{"a": "\\ud800"}', None),  # unpaired surrogate
        (b"[" * 5000 + b"]" * 5000, None),  # nesting beyond the parser's depth
        (b'{"format": "prevex.cj-act/2"}', "format"),
        (b'{"format": ["prevex.cj-act/1"]}', "format"),
    ],
)
def test_schema_invalid_unreadable_payloads(run: Run, raw: bytes, field: str | None) -> None:
    assert codes(run(raw)) == [("SCHEMA_INVALID", field)]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["dwelling"]["address"].update(floor=3), "dwelling.address.floor"),  # unknown field
        (lambda d: d.update(tenant=d["tenants"]), "tenant"),
        (lambda d: d["tenants"][0].update(last_name=42), "tenants[0].last_name"),  # wrong type
        (lambda d: d["tenants"][0].pop("first_name"), "tenants[0].first_name"),  # missing
        (lambda d: d.pop("external_ref"), "external_ref"),
        (lambda d: d["landlord"].update(type="PARTICULIER"), "landlord.type"),  # unknown enum value
        (lambda d: d["debt"].update(months_unpaid="4"), "debt.months_unpaid"),  # no string → int coercion
        (lambda d: d["debt"].update(months_unpaid=True), "debt.months_unpaid"),
        (lambda d: d.update(act_date=20260302), "act_date"),  # a date must be a JSON string
        (lambda d: d["emitter"].update(siret="1234"), "emitter.siret"),
        (lambda d: d["dwelling"]["address"].update(postal_code="90 000"), "dwelling.address.postal_code"),
        (lambda d: d["dwelling"]["address"].update(lat="47.6"), "dwelling.address.lat"),
    ],
)
def test_schema_invalid_with_json_path(run: Run, example: Example, mutate: Callable[[Any], Any], field: str) -> None:
    document = example(S01)
    mutate(document)
    assert ("SCHEMA_INVALID", field) in codes(run(document))


def test_emitter_unknown(example_bytes: Callable[[str], bytes]) -> None:
    rejected = reject_unknown_emitter(example_bytes(S01), "99999999900099")
    assert codes(rejected) == [("EMITTER_UNKNOWN", None)]
    assert (rejected.emitter_id, rejected.external_ref) == ("99999999900099", "CP-2026-0412")


def test_emitter_mismatch_on_siret(run: Run, example: Example, emitters: dict[str, Emitter]) -> None:
    document = example(S01)
    document["emitter"]["siret"] = "11111111100011"
    assert codes(run(document, emitter=emitters["cj"])) == [("EMITTER_MISMATCH", "emitter.siret")]


@pytest.mark.parametrize(("name", "role"), [(S01, "territoire_habitat"), (S02, "cj"), (S02, "prefecture")])
def test_emitter_mismatch_on_format(
    run: Run, example: Example, emitters: dict[str, Emitter], name: str, role: str
) -> None:
    assert codes(run(example(name), emitter=emitters[role])) == [("EMITTER_MISMATCH", "format")]


@pytest.mark.parametrize(
    ("name", "stage"),
    [(S01, "EXPULSION_IMMINENTE"), (S01, "commandement_payer"), (S01, "IMPAYE_CONSTATE"), (S02, "ASSIGNATION")],
)
def test_stage_unknown(run: Run, example: Example, name: str, stage: str) -> None:
    document = example(name)
    document["stage"] = stage
    assert codes(run(document)) == [("STAGE_UNKNOWN", "stage")]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("act_date",), "2026-02-30"),
        (("act_date",), "02/03/2026"),
        (("act_date",), "20260302"),
        (("debt", "as_of"), "2026-2-28"),
        (("debt", "first_unpaid_month"), "2026-13"),
        (("lease", "start_date"), ""),
    ],
)
def test_date_invalid(run: Run, example: Example, path: tuple[str, ...], value: str) -> None:
    document = example(S01)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert codes(run(document, clock=date(2026, 3, 2))) == [("DATE_INVALID", ".".join(path))]


def test_date_in_future_beyond_one_day_of_tolerance(run: Run, example: Example) -> None:
    document = example(S01)
    assert codes(run(document, clock=date(2026, 2, 28))) == [("DATE_IN_FUTURE", "act_date")]
    accepted(run(document, clock=date(2026, 3, 1)))  # act dated tomorrow: tolerated


def test_date_in_future_does_not_apply_to_future_facts(run: Run, example: Example) -> None:
    """A hearing and a vacate-by date are naturally in the future; past facts are not."""
    accepted(run(example(S04)))
    document = example(S04)
    document["court_case"]["prefect_notified_on"] = "2026-06-05"
    assert codes(run(document, clock=date(2026, 6, 1))) == [("DATE_IN_FUTURE", "court_case.prefect_notified_on")]


@pytest.mark.parametrize(
    ("address", "fields"),
    [
        ({"postal_code": "90000"}, ["dwelling.address.line1", "dwelling.address.commune_insee"]),  # S-07
        ({"line1": "  ", "postal_code": "90000", "commune_insee": "90010"}, ["dwelling.address.line1"]),
        ({"line1": "12 rue de Mulhouse", "commune_insee": "90010"}, ["dwelling.address.postal_code"]),
        ({"line1": "12 rue de Mulhouse", "postal_code": "90000"}, ["dwelling.address.commune_insee"]),
        (
            {"line1": "12 rue de Mulhouse", "postal_code": "90000", "commune_name": "Valdoie"},
            ["dwelling.address.commune_name"],
        ),
        (None, ["dwelling.address"]),
    ],
)
def test_address_missing(run: Run, example: Example, address: dict[str, str] | None, fields: list[str]) -> None:
    document = example(S01)
    if address is None:
        del document["dwelling"]
    else:
        document["dwelling"]["address"] = address
    assert codes(run(document)) == [("ADDRESS_MISSING", field) for field in fields]


def test_address_resolved_from_postal_code_and_name_ignoring_case_and_accents(run: Run, example: Example) -> None:
    document = example(S01)
    document["dwelling"]["address"] = {"line1": "1 rue X", "postal_code": "90300", "commune_name": "VETRIGNE"}
    address = accepted(run(document)).notification.dwelling.address
    assert (address.commune_insee, address.commune_name) == ("90103", "Vétrigne")


@pytest.mark.parametrize("insee", ["99999", "90999", "9001", "75101", "ABCDE"])
def test_commune_unknown(run: Run, example: Example, insee: str) -> None:
    document = example(S01)
    document["dwelling"]["address"]["commune_insee"] = insee
    assert codes(run(document)) == [("COMMUNE_UNKNOWN", "dwelling.address.commune_insee")]


def test_commune_out_of_territory_depends_on_the_configured_territory(run: Run, example: Example) -> None:
    document = example(S01)
    document["dwelling"]["address"] = {"line1": "1 Grande Rue", "postal_code": "25000", "commune_insee": "25056"}
    assert codes(run(document)) == [("COMMUNE_OUT_OF_TERRITORY", "dwelling.address.commune_insee")]
    address = accepted(run(document, territory=Territory(frozenset({"90", "25"})))).notification.dwelling.address
    assert (address.commune_name, address.departement) == ("Besançon", "25")


@pytest.mark.parametrize("amount", ["1 200,50", "2400", 12.345, True, [2400], {"value": 2400}, 1e12, 10**40])
def test_amount_invalid(run: Run, example: Example, amount: object) -> None:
    document = example(S01)
    document["debt"]["amount"] = amount
    assert codes(run(document)) == [("AMOUNT_INVALID", "debt.amount")]


@pytest.mark.parametrize("path", [("household", "monthly_resources"), ("lease", "charges")])
def test_amount_invalid_elsewhere(run: Run, example: Example, path: tuple[str, str]) -> None:
    document = example(S01)
    document[path[0]][path[1]] = "abc"
    assert codes(run(document)) == [("AMOUNT_INVALID", ".".join(path))]


def test_amounts_keep_their_exact_decimal_value(run: Run, example: Example) -> None:
    raw = json.dumps(example(S01)).replace('"amount": 2400.0', '"amount": 2399.99').encode()
    notification = accepted(run(raw)).notification
    assert str(notification.debt.amount) == "2399.99"
    assert str(notification.lease.rent_excl_charges) == "600.00"


@pytest.mark.parametrize("amount", [-350, -0.01])
def test_debt_negative(run: Run, example: Example, amount: float) -> None:
    document = example(S01)
    document["debt"]["amount"] = amount
    assert codes(run(document)) == [("DEBT_NEGATIVE", "debt.amount")]


@pytest.mark.parametrize("field", ["rent_excl_charges", "charges"])
def test_rent_negative(run: Run, example: Example, field: str) -> None:
    document = example(S01)
    document["lease"][field] = -1
    assert codes(run(document)) == [("RENT_NEGATIVE", f"lease.{field}")]


@pytest.mark.parametrize("tenants", [[], None])
def test_tenant_missing(run: Run, example: Example, tenants: list[Any] | None) -> None:
    document = example(S01)
    if tenants is None:
        del document["tenants"]
    else:
        document["tenants"] = tenants
    assert codes(run(document)) == [("TENANT_MISSING", "tenants")]


def _drop(document: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    del target[last]


@pytest.mark.parametrize(
    ("name", "stage", "drop", "code", "field"),
    [
        (S04, None, "court_case.hearing_date", "act.hearing_date", "court_case.hearing_date"),
        (S04, None, "court_case.prefect_notified_on", "act.prefect_notified_on", "court_case.prefect_notified_on"),
        (S04, None, "court_case.court", "act.court", "court_case.court"),
        (S04, "AUDIENCE", "court_case.hearing_date", "act.hearing_date", "court_case.hearing_date"),
        (S04, None, "debt.amount", "debt.amount", "debt.amount"),
        (S04, "DECISION", None, "act.decision", "decision"),
        (S06, None, "commandement_quitter", "act.vacate_by", "commandement_quitter.vacate_by"),
        (S06, "DECISION_CFP", None, "act.cfp.decision", "cfp.decision"),
        (S06, "CLOTURE", None, "act.cloture_reason", "cloture.reason"),
        (S01, None, "lease.rent_excl_charges", "lease.rent_excl_charges", "lease.rent_excl_charges"),
        (S01, None, "debt.as_of", "debt.as_of", "debt.as_of"),
        (S02, None, "debt", "debt.amount", "debt.amount"),
        (S02, "IMPAYE_CONSTATE", "debt.amount", "debt.amount", "debt.amount"),
    ],
)
def test_required_for_stage_missing(
    run: Run, example: Example, *, name: str, stage: str | None, drop: str | None, code: str, field: str
) -> None:
    document = example(name)
    if stage is not None:
        document["stage"] = stage
    if drop is not None:
        _drop(document, drop)
    assert (f"REQUIRED_FOR_STAGE_MISSING:{code}", field) in codes(run(document))


def test_every_problem_is_reported_at_once(run: Run, example: Example) -> None:
    document = example(S01)
    document["act_date"] = "2026-02-31"
    document["debt"]["amount"] = -1
    document["tenants"] = []
    document["dwelling"]["address"]["commune_insee"] = "99999"
    del document["lease"]["rent_excl_charges"]
    assert sorted(code for code, _ in codes(run(document))) == [
        "COMMUNE_UNKNOWN",
        "DATE_INVALID",
        "DEBT_NEGATIVE",
        "REQUIRED_FOR_STAGE_MISSING:lease.rent_excl_charges",
        "TENANT_MISSING",
    ]


def test_demande_cfp_needs_no_block_its_date_is_the_request_date(run: Run, example: Example) -> None:
    document = example(S06)
    document["stage"] = "DEMANDE_CFP"
    act = accepted(run(document)).notification.act
    assert act.cfp is not None
    assert act.cfp.requested_on == act.date


# --- warnings (accepted) -------------------------------------------------------------------------


def test_warning_postal_code_commune_mismatch(run: Run, example: Example) -> None:
    document = example(S01)
    document["dwelling"]["address"]["postal_code"] = "90300"
    assert accepted(run(document)).notification.warnings == ["POSTAL_CODE_COMMUNE_MISMATCH"]


def test_warning_prefect_notice_lt_6_weeks(run: Run, example: Example) -> None:
    document = example(S04)
    document["court_case"]["prefect_notified_on"] = "2026-06-09"  # 41 days before the hearing
    notification = accepted(run(document, clock=date(2026, 6, 9))).notification
    assert notification.derived.prefect_notice_ok is False
    assert notification.warnings == ["PREFECT_NOTICE_LT_6_WEEKS"]


def test_warning_cp_below_ccapex_threshold(run: Run, example: Example) -> None:
    document = example(S01)
    document["debt"].update(amount=900, months_unpaid=1)
    assert accepted(run(document)).notification.warnings == ["CP_BELOW_CCAPEX_THRESHOLD"]


def test_warning_debt_zero(run: Run, example: Example) -> None:
    document = example(S02)
    document["debt"]["amount"] = 0
    assert accepted(run(document)).notification.warnings == ["DEBT_ZERO"]


def test_warning_lease_date_unknown(run: Run, example: Example) -> None:
    document = example(S01)
    del document["lease"]["start_date"]
    notification = accepted(run(document)).notification
    assert notification.warnings == ["LEASE_DATE_UNKNOWN_DEADLINE_ASSUMED_6W"]
    assert notification.derived.commandement_deadline == date(2026, 4, 13)


def test_parc_given_by_the_emitter_wins_over_the_landlord_type(run: Run, example: Example) -> None:
    document = example(S01)
    document["dwelling"]["parc"] = "SOCIAL"
    assert accepted(run(document)).notification.dwelling.parc is Parc.SOCIAL


def test_a_byte_order_mark_is_tolerated(run: Run, example_bytes: Callable[[str], bytes]) -> None:
    accepted(run(b"\xef\xbb\xbf" + example_bytes(S01), clock=date(2026, 3, 2)))


@pytest.mark.parametrize(
    "mutations",
    [
        # semantic checks (the document is structurally valid)
        {
            "stage": "Durand",
            "act_date": "Léa Durand",
            "debt.amount": "Durand 2400",
            "dwelling.address.line1": "",
            "dwelling.address.commune_insee": "Durand",
            "lease.start_date": "12 rue de Mulhouse",
        },
        # structural checks
        {"tenants.0.role": "Durand", "landlord.type": "Léa", "debt.months_unpaid": "Durand"},
    ],
)
def test_rejection_messages_never_echo_personal_data(run: Run, example: Example, mutations: dict[str, object]) -> None:
    document = example(S01)
    for path, value in mutations.items():
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value
    rejected = run(document)
    assert isinstance(rejected, Rejected)
    assert len(rejected.codes) >= 2
    text = " ".join(f"{error.field or ''} {error.message}" for error in rejected.codes)
    for secret in ("Durand", "Léa", "Mulhouse", "2400"):
        assert secret not in text


def test_a_naive_reception_time_is_a_caller_bug_not_a_rejection(
    communes: CommuneDirectory,
    territory_90: Territory,
    emitters: dict[str, Emitter],
    example_bytes: Callable[[str], bytes],
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        normalise(
            example_bytes(S01),
            source_system=SourceSystem.CJ_API,
            emitter=emitters["cj"],
            communes=communes,
            territory=territory_90,
            received_at=datetime(2026, 3, 2, 10, 0),  # noqa: DTZ001 - the point of the test
            clock=date(2026, 3, 2),
            notification_id=uuid.uuid4(),
        )


def test_an_emitter_id_must_be_usable_as_a_kafka_key() -> None:
    with pytest.raises(ValueError, match="emitter_id"):
        Emitter("x", EmitterType.COMMISSAIRE_JUSTICE, "trop court")


def test_json_path() -> None:
    assert json_path(()) is None
    assert json_path(("tenants", 0, "last_name")) == "tenants[0].last_name"
    assert len(json_path(("household", "x" * 500, "y" * 500)) or "") <= 200
