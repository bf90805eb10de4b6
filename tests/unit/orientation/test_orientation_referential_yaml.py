"""The YAML référentiel: the seed of docs/domain.md §4.7, round trips, content hash, errors naming the path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import yaml

from schemas.referential import StructureTypology
from schemas.stages import Stage, stages_between
from services.orientation.domain import (
    ParcFilter,
    Referential,
    ReferentialError,
    content_hash,
    dump_referential,
    load_referential,
)

Data = dict[str, Any]
S = Stage

# docs/domain.md §4.7, one row per offer: (offer, structure, typologie, stages, parc, priority, mandatory stages)
SEED_ROWS: list[tuple[str, str, str, frozenset[Stage], str, int, frozenset[Stage]]] = [
    (
        "CD90-DSF",
        "CD90",
        "DEPARTEMENT_SERVICE_SOCIAL",
        frozenset({S.ASSIGNATION, S.AUDIENCE}),
        "ALL",
        0,
        frozenset({S.ASSIGNATION, S.AUDIENCE}),
    ),
    (
        "CD90-ACCOMP",
        "CD90",
        "DEPARTEMENT_SERVICE_SOCIAL",
        stages_between(S.SIGNALEMENT_CAF, S.DECISION_CFP),
        "ALL",
        50,
        frozenset(),
    ),
    ("FSL90-MAINTIEN", "FSL90", "FSL", stages_between(S.SIGNALEMENT_CAF, S.DECISION), "ALL", 0, frozenset()),
    ("CAF90-MAINTIEN", "CAF90", "CAF_MSA", stages_between(S.IMPAYE_CONSTATE, S.DECISION), "ALL", 0, frozenset()),
    (
        "PJ90-INFO",
        "CDAD90",
        "CDAD_POINT_JUSTICE",
        stages_between(S.COMMANDEMENT_PAYER, S.COMMANDEMENT_QUITTER),
        "PRIVE",
        60,
        frozenset(),
    ),
    (
        "TH-PROTOCOLE",
        "TH90",
        "BAILLEUR_SOCIAL",
        frozenset({S.DECISION, S.SIGNIFICATION_DECISION, S.COMMANDEMENT_QUITTER}),
        "SOCIAL",
        45,
        frozenset(),
    ),
    (
        "CCAS-BELFORT",
        "CCAS-BELFORT",
        "CCAS",
        stages_between(S.COMMANDEMENT_PAYER, S.DEMANDE_CFP),
        "ALL",
        0,
        frozenset(),
    ),
    (
        "SIAO90",
        "SIAO90",
        "SIAO",
        frozenset({S.COMMANDEMENT_QUITTER, S.DEMANDE_CFP, S.DECISION_CFP, S.EXPULSION_REALISEE}),
        "ALL",
        40,
        frozenset({S.DEMANDE_CFP, S.DECISION_CFP, S.EXPULSION_REALISEE}),
    ),
    (
        "BDF90-SURENDET",
        "BDF90",
        "BANQUE_DE_FRANCE",
        stages_between(S.COMMANDEMENT_PAYER, S.DECISION_CFP),
        "ALL",
        0,
        frozenset(),
    ),
    (
        "MEDIATION-SUD",
        "MEDIATION-SUD",
        "ASSOCIATION",
        frozenset({S.COMMANDEMENT_PAYER, S.ASSIGNATION}),
        "PRIVE",
        70,
        frozenset(),
    ),
]


@pytest.mark.parametrize("row", SEED_ROWS, ids=[r[0] for r in SEED_ROWS])
def test_seed_offer_matches_the_domain_table(
    row: tuple[str, str, str, frozenset[Stage], str, int, frozenset[Stage]], seed: Referential
) -> None:
    offer_id, structure_id, typologie, stages, parc, priority, mandatory = row
    offer = next(o for o in seed.offers if o.id == offer_id)

    assert (offer.structure_id, seed.structure(structure_id).typologie) == (structure_id, StructureTypology(typologie))
    assert (offer.eligibility.stages, offer.eligibility.parc, offer.priority) == (stages, ParcFilter(parc), priority)
    assert offer.mandatory_stages == mandatory


def test_seed_criteria_zones_and_contacts(seed: Referential) -> None:
    offers = {o.id: o for o in seed.offers}

    assert len(seed.offers) == len(SEED_ROWS) == 10
    fsl = offers["FSL90-MAINTIEN"].eligibility
    assert (fsl.debt_max, fsl.resources_max) == (Decimal(6000), Decimal(1800))
    assert offers["CAF90-MAINTIEN"].eligibility.allocataire == "OUI"
    assert offers["BDF90-SURENDET"].eligibility.debt_min == 8000
    assert offers["TH-PROTOCOLE"].eligibility.landlord_siren_in == frozenset({"999900001"})
    assert [str(e) for e in offers["CCAS-BELFORT"].zone.include] == ["COMMUNE 90010"]
    assert {str(e) for e in offers["MEDIATION-SUD"].zone.include} == {"COMMUNE 90033", "COMMUNE 90009", "COMMUNE 90053"}
    assert [c.email for c in seed.structure("CD90").contacts] == ["prevention.expulsions@cd90.test"]
    assert [c.email for c in seed.structure("FSL90").contacts] == ["fsl@cd90.test"]
    [mediation] = seed.structure("MEDIATION-SUD").contacts
    assert (mediation.mobile, mediation.email, mediation.channels_enabled.sms, mediation.channels_enabled.email) == (
        "+33600000001",
        None,
        True,
        False,
    )


def test_seed_default_referent_is_the_ccapex_secretariat(seed: Referential) -> None:
    default = seed.structure(seed.default_referent)

    assert (default.id, default.typologie) == ("CCAPEX90", StructureTypology.PREFECTURE_CCAPEX)
    assert [c.email for c in default.contacts] == ["ccapex90@pref.test"]
    assert seed.offers_of("CCAPEX90") == ()


def test_every_seed_contact_address_is_fictional(seed: Referential) -> None:
    emails = [c.email for s in seed.structures for c in s.contacts if c.email]

    assert emails
    assert all(email.endswith(".test") for email in emails)


def test_dump_round_trips(seed: Referential) -> None:
    text = dump_referential(seed)

    assert load_referential(text) == seed
    assert dump_referential(load_referential(text)) == text
    assert "stages: SIGNALEMENT_CAF..DECISION_CFP" in text
    assert "- ASSIGNATION\n" in text  # a two-stage set stays a list


def test_content_hash_ignores_presentation_but_not_content(seed: Referential, seed_text: str) -> None:
    reordered = seed.model_copy(update={"offers": seed.offers[::-1], "structures": seed.structures[::-1]})
    ranges_as_lists = seed_text.replace(
        "SIGNALEMENT_CAF..DECISION_CFP",
        "[SIGNALEMENT_CAF..DECISION, SIGNIFICATION_DECISION, COMMANDEMENT_QUITTER..DECISION_CFP]",
    )
    reprioritised = seed.model_copy(
        update={"offers": (seed.offers[0].model_copy(update={"priority": 1}), *seed.offers[1:])}
    )

    assert len(content_hash(seed)) == 64
    assert content_hash(seed) == content_hash(reordered) == content_hash(load_referential(ranges_as_lists))
    assert content_hash(load_referential(dump_referential(seed))) == content_hash(seed)
    assert content_hash(reprioritised) != content_hash(seed)


@pytest.fixture(name="seed_data")
def fixture_seed_data(seed_text: str) -> Data:
    """The seed as plain YAML data, a fresh copy per test to mutate."""
    return copy.deepcopy(yaml.safe_load(seed_text))


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


_DELETE = object()
OFFER0 = "offers[0](id=CD90-DSF)"
MEDIATION = "structures[8](id=MEDIATION-SUD).contacts[0](id=MEDIATION-SUD-PERMANENCE)"

INVALID: list[tuple[str, Callable[[Data], None], str, str]] = [
    # (case, mutation of the seed, path named, message)
    (
        "unknown stage",
        _set(("offers", 0, "eligibility", "stages"), ["ASIGNATION"]),
        f"{OFFER0}.eligibility.stages[0]",
        "unknown stage 'ASIGNATION'",
    ),
    (
        "unknown stage in a range",
        _set(("offers", 1, "eligibility", "stages"), "SIGNALEMENT_CAF..DECISON"),
        "offers[1](id=CD90-ACCOMP).eligibility.stages[0]",
        "unknown stage 'DECISON'",
    ),
    (
        "reversed range",
        _set(("offers", 0, "mandatory_stages"), ["AUDIENCE..ASSIGNATION"]),
        f"{OFFER0}.mandatory_stages[0]",
        "range 'AUDIENCE..ASSIGNATION' is reversed",
    ),
    (
        "range bound without rank",
        _set(("offers", 0, "eligibility", "stages"), "PLAN_APUREMENT..AUDIENCE"),
        f"{OFFER0}.eligibility.stages[0]",
        "PLAN_APUREMENT has no rank",
    ),
    ("empty stage list", _set(("offers", 0, "eligibility", "stages"), []), f"{OFFER0}.eligibility", "stages is empty"),
    (
        "mandatory stage outside the stages",
        _set(("offers", 0, "mandatory_stages"), ["DECISION"]),
        OFFER0,
        "mandatory_stages DECISION not in eligibility.stages",
    ),
    (
        "offer with an unknown structure",
        _set(("offers", 1, "structure_id"), "CD-90"),
        "offers[1](id=CD90-ACCOMP).structure_id",
        "unknown structure 'CD-90'",
    ),
    (
        "sms channel without mobile",
        _set(("structures", 8, "contacts", 0, "mobile"), _DELETE),
        MEDIATION,
        "channels_enabled.sms is true but mobile is missing",
    ),
    (
        "email channel without email",
        _set(("structures", 8, "contacts", 0, "channels_enabled", "email"), True),
        MEDIATION,
        "channels_enabled.email is true but email is missing",
    ),
    (
        "not a French mobile",
        _set(("structures", 8, "contacts", 0, "mobile"), "+33123456789"),
        f"{MEDIATION}.mobile",
        "should match pattern",
    ),
    (
        "duplicate offer id",
        _set(("offers", 2, "id"), "CD90-DSF"),
        "offers[2](id=CD90-DSF).id",
        "duplicate id (first at offers[0](id=CD90-DSF))",
    ),
    (
        "duplicate structure id",
        _set(("structures", 1, "id"), "CD90"),
        "structures[1](id=CD90).id",
        "duplicate id (first at structures[0](id=CD90))",
    ),
    (
        "duplicate contact id",
        _set(("structures", 1, "contacts", 0, "id"), "CD90-PREVENTION"),
        "structures[1](id=FSL90).contacts[0](id=CD90-PREVENTION).id",
        "duplicate contact id",
    ),
    (
        "unquoted département code",
        _set(("offers", 0, "zone", "include", 0, "code"), 90),
        f"{OFFER0}.zone.include[0].code",
        "valid string",
    ),
    (
        "code of the wrong kind",
        _set(("offers", 0, "zone", "include", 0, "kind"), "COMMUNE"),
        f"{OFFER0}.zone.include[0]",
        "not a valid COMMUNE code",
    ),
    (
        "misspelt field",
        _set(("offers", 1, "priorty"), 5),
        "offers[1](id=CD90-ACCOMP).priorty",
        "Extra inputs are not permitted",
    ),
    ("quoted priority", _set(("offers", 1, "priority"), "50"), "offers[1](id=CD90-ACCOMP).priority", "valid integer"),
    (
        "debt bounds crossed",
        _set(("offers", 2, "eligibility", "debt_min"), 9000),
        "offers[2](id=FSL90-MAINTIEN).eligibility",
        "debt_min 9000 > debt_max 6000",
    ),
    (
        "unknown default referent",
        _set(("default_referent",), "CCAPEX"),
        "default_referent",
        "unknown structure 'CCAPEX'",
    ),
    ("suspended default referent", _set(("structures", 9, "status"), "suspended"), "default_referent", "is suspended"),
    (
        "unreachable default referent",
        _set(("structures", 9, "contacts", 0, "channels_enabled"), {}),
        "default_referent",
        "structure 'CCAPEX90' has no contact with an enabled channel",
    ),
    (
        "mobilised by e-mail without an e-mail contact",
        _set(("offers", 9, "modes_mobilisation"), ["envoyer-un-courriel"]),
        "offers[9](id=MEDIATION-SUD).modes_mobilisation",
        "envoyer-un-courriel but structure has no e-mail contact",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "path", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_file_names_the_offending_path(
    case: str, mutate: Callable[[Data], None], path: str, message: str, seed_data: Data
) -> None:
    mutate(seed_data)

    with pytest.raises(ReferentialError) as raised:
        load_referential(yaml.safe_dump(seed_data, allow_unicode=True))

    assert any(p == path and message in m for p, m in raised.value.problems), (case, raised.value.problems)
    assert message in str(raised.value)


def test_every_problem_is_reported(seed_data: Data) -> None:
    _set(("offers", 0, "eligibility", "stages"), ["NOPE"])(seed_data)
    _set(("offers", 3, "mandatory_stages"), ["ALSO_NOPE"])(seed_data)

    with pytest.raises(ReferentialError) as raised:
        load_referential(yaml.safe_dump(seed_data))

    assert [p for p, _ in raised.value.problems] == [
        f"{OFFER0}.eligibility.stages[0]",
        "offers[3](id=CAF90-MAINTIEN).mandatory_stages[0]",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [("offers: [", "not valid YAML"), ("- a\n- b\n", "must be a mapping"), ("", "must be a mapping")],
)
def test_unreadable_documents(text: str, message: str) -> None:
    with pytest.raises(ReferentialError, match=message):
        load_referential(text)


def test_unquoted_dates_are_read_as_dates(seed_data: Data) -> None:
    seed_data["structures"][0]["date_maj"] = "2026-01-15"
    text = yaml.safe_dump(seed_data, allow_unicode=True).replace("'2026-01-15'", "2026-01-15")

    assert str(load_referential(text).structure("CD90").date_maj) == "2026-01-15"
