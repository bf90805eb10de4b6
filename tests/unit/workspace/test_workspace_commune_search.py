"""The référentiel searchable by commune: the commune found by name or code, the offers whose zone covers it
by the référentiel's own rule (the one orientation's matching applies), and where each offer applies."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from schemas.envelope import new_envelope_fields
from schemas.referential import OfferSummary, RecordStatus, ReferentialChangedEvent, StructureTypology, Zone
from schemas.stages import Stage
from services.ingest.domain.cog import Commune
from services.orientation.domain import load_referential
from services.orientation.domain.eligibility import Outcome, evaluate_offer
from services.orientation.domain.events import structure_records
from services.orientation.domain.facts import MatchFacts
from services.workspace.domain.referential import CommuneFinder, covers, search_structures, zone_text

SEED = load_referential(
    (Path(__file__).resolve().parents[3] / "deploy" / "referential" / "seed-90.yaml").read_text("utf-8")
)
BELFORT = Commune("90010", "Belfort", "90", "200069052", ("90000",))
DELLE = Commune("90033", "Delle", "90", "249000241", ("90100",))
SAINT_GERMAIN_90 = Commune("90091", "Saint-Germain-le-Châtelet", "90", "200069060", ("90110",))
SAINT_GERMAIN_01 = Commune("01999", "Saint-Germain-le-Châtelet", "01", None, ("01000",))
MONTBELIARD = Commune("25388", "Montbéliard", "25", "242504496", ("25200",))


def test_a_commune_is_found_by_its_code_or_its_name_however_written() -> None:
    finder = CommuneFinder([BELFORT, DELLE, SAINT_GERMAIN_90, SAINT_GERMAIN_01])
    assert finder.find("90010") == finder.find(" belfort ") == (BELFORT,)
    assert finder.find("St Germain le Chatelet") == (SAINT_GERMAIN_01, SAINT_GERMAIN_90)  # two share the name
    assert finder.find("90999") == finder.find("Paris") == ()
    assert (finder.name("90033"), finder.name("75056")) == ("Delle", None)


def test_the_packaged_cog_knows_the_territoire_de_belfort() -> None:
    finder = CommuneFinder.packaged()
    assert [c.insee for c in finder.find("Belfort")] == ["90010"]
    assert finder.find("90033")[0].name == "Delle"


@pytest.mark.parametrize(
    ("zone", "commune", "covered"),
    [
        ({"include": [{"kind": "DEPARTEMENT", "code": "90"}]}, BELFORT, True),
        ({"include": [{"kind": "DEPARTEMENT", "code": "90"}]}, MONTBELIARD, False),
        ({"include": [{"kind": "COMMUNE", "code": "90010"}]}, BELFORT, True),
        ({"include": [{"kind": "COMMUNE", "code": "90010"}]}, DELLE, False),
        ({"include": [{"kind": "EPCI", "code": "200069052"}]}, BELFORT, True),
        ({"include": [{"kind": "EPCI", "code": "200069052"}]}, SAINT_GERMAIN_01, False),  # no EPCI: not covered
        ({"include": [{"kind": "DEPARTEMENT", "code": "90"}], "exclude_communes": ["90010"]}, BELFORT, False),
        (None, BELFORT, False),  # a 1.0 record: its zone is unknown
    ],
)
def test_the_commune_rule(zone: dict[str, object] | None, commune: Commune, covered: bool) -> None:
    parsed = Zone.model_validate_json(json.dumps(zone)) if zone else None
    assert covers(parsed, [commune]) is covered


def test_the_search_rule_agrees_with_orientation_s_matching_on_every_seed_offer() -> None:
    communes = [BELFORT, DELLE, SAINT_GERMAIN_90, MONTBELIARD, Commune("90009", "Beaucourt", "90", None, ())]
    structures = SEED.structures_by_id()
    for offer in SEED.offers:
        for commune in communes:
            facts = MatchFacts(
                stage=Stage.COMMANDEMENT_PAYER,
                act_date=date(2026, 3, 2),
                commune_insee=commune.insee,
                departement=commune.departement,
                epci_siren=commune.epci_siren,
            )
            evaluation = evaluate_offer(offer, structures[offer.structure_id], facts, date(2026, 3, 2))
            zone_passes = all(c.outcome is not Outcome.FAIL for c in evaluation.clauses if c.rule == "zone")
            assert covers(offer.zone, [commune]) is zone_passes, (offer.id, commune.insee)


def test_orientation_publishes_each_offer_s_zone_and_the_search_keeps_the_offers_covering_the_commune() -> None:
    records = list(structure_records(SEED, 3))
    published = {o.id: o.zone for r in records for o in r.offers}
    assert published == {offer.id: offer.zone for offer in SEED.offers}
    # What the offer is and who may benefit, as the référentiel says it, for the partners' page.
    texts = {o.id: (o.description, o.conditions_acces) for r in records for o in r.offers}
    assert texts == {offer.id: (offer.description, offer.conditions_acces) for offer in SEED.offers}
    finder = CommuneFinder([BELFORT, DELLE])

    def found(commune: str, kind: StructureTypology | None = None) -> dict[str, list[str]]:
        cards = search_structures(records, communes=finder.find(commune), commune_name=finder.name, kind=kind)
        return {card.structure_id: [o.name for o in card.offers] for card in cards}

    belfort, delle = found("Belfort"), found("Delle")
    assert "CCAS-BELFORT" in belfort
    assert "CCAS-BELFORT" not in delle  # its offer covers the commune of Belfort only
    assert "MEDIATION-SUD" in delle
    assert "MEDIATION-SUD" not in belfort
    assert found("Nulle-Part") == {}  # an unknown commune matches nothing
    assert set(found("Delle", kind=StructureTypology.CCAS)) == set()
    [ccas] = search_structures(records, text="CCAS de Belfort", commune_name=finder.name)
    assert ccas.offers[0].where == "Belfort (90010)"


def test_zone_text_reads_in_french() -> None:
    zone = Zone.model_validate_json(
        json.dumps(
            {
                "include": [{"kind": "DEPARTEMENT", "code": "90"}, {"kind": "EPCI", "code": "200069052"}],
                "exclude_communes": ["90033", "90999"],
            }
        )
    )
    names = {"90033": "Delle"}.get
    assert zone_text(zone, names) == (
        "département 90 ; intercommunalité (SIREN) 200069052 ; sauf Delle (90033), commune 90999"
    )
    assert zone_text(None) == "territoire non publié"


def test_a_1_0_record_without_zones_still_decodes_and_is_not_listed_for_a_commune() -> None:
    offer = OfferSummary(id="O1", nom="Aide", status=RecordStatus.ACTIVE, stages=[], mandatory_stages=[])
    event = ReferentialChangedEvent(
        **new_envelope_fields("orientation"),
        payload=structure_records(SEED, 1)[0].model_copy(update={"offers": [offer]}),
    )
    wire = event.model_dump(mode="json")
    wire["schema_version"] = "1.0"
    del wire["payload"]["offers"][0]["zone"]
    old = ReferentialChangedEvent.model_validate_json(json.dumps(wire))
    assert old.payload.offers[0].zone is None
    assert search_structures([old.payload], communes=[BELFORT]) == []
    assert [c.structure_id for c in search_structures([old.payload])] == [old.payload.structure_id]
