"""The packaged Code officiel géographique and the configured territory."""

from __future__ import annotations

import re

import pytest

from services.ingest.domain.cog import (
    Commune,
    CommuneDirectory,
    Territory,
    load_packaged_document,
    name_key,
    parse_communes,
)

METROPOLE = {f"{n:02d}" for n in range(1, 96) if n != 20} | {"2A", "2B"}
OUTRE_MER = {"971", "972", "973", "974", "976"}


def test_belfort_is_in_the_territoire_de_belfort_and_the_grand_belfort(communes: CommuneDirectory) -> None:
    belfort = communes.get("90010")
    assert belfort == Commune(
        insee="90010", name="Belfort", departement="90", epci_siren="200069052", postal_codes=("90000",)
    )


def test_every_departement_is_present(communes: CommuneDirectory) -> None:
    assert communes.departements() >= METROPOLE | OUTRE_MER


def test_the_directory_holds_every_current_commune(communes: CommuneDirectory) -> None:
    assert 34_000 < len(communes) < 36_000
    assert communes.get("75056") is not None  # Paris, the commune
    assert communes.get("75101") is None  # its 1st arrondissement is not a commune


def test_every_commune_of_the_territoire_de_belfort_has_an_epci(communes: CommuneDirectory) -> None:
    belfort_communes = [
        c for pc in ("90000", "90100", "90200", "90300", "90400") for c in communes.communes_for_postal_code(pc)
    ]
    assert belfort_communes
    assert all(c.departement == "90" and c.epci_siren for c in belfort_communes)


def test_communes_for_postal_code(communes: CommuneDirectory) -> None:
    names = {commune.name for commune in communes.communes_for_postal_code("90300")}
    assert {"Offemont", "Valdoie", "Cravanche"} <= names
    assert communes.communes_for_postal_code("00000") == ()


@pytest.mark.parametrize(
    ("postal_code", "name", "insee"),
    [
        ("90300", "Offemont", "90075"),
        ("90300", "OFFEMONT", "90075"),
        ("90300", "eloie", "90037"),  # Éloie
        ("90300", "Lachapelle sous Chaux", "90057"),  # hyphens
        ("90000", "  belfort ", "90010"),
        ("75001", "Paris", "75056"),
        ("90300", "Belfort", None),  # right name, wrong postal code
        ("90300", "Offemon", None),
        ("99999", "Offemont", None),
    ],
)
def test_resolve(communes: CommuneDirectory, postal_code: str, name: str, insee: str | None) -> None:
    commune = communes.resolve(postal_code, name)
    assert (commune.insee if commune else None) == insee


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("SAINT-GERMAIN-LE-CHÂTELET", "saint germain le chatelet"),
        ("St Germain le Chatelet", "saint germain le chatelet"),
        ("Ste-Marie", "sainte marie"),
        ("L'Haÿ-les-Roses", "l hay les roses"),
        ("Œuilly", "oeuilly"),
    ],
)
def test_name_key(name: str, key: str) -> None:
    assert name_key(name) == key


def test_resolve_refuses_an_ambiguous_match() -> None:
    twins = [Commune(f"9900{i}", "Twin", "99", None, ("99000",)) for i in range(2)]
    assert CommuneDirectory(twins).resolve("99000", "twin") is None


def test_parse_communes_reads_the_compact_layout() -> None:
    document = {
        "format": "prevex.cog-communes/1",
        "epci": ["200069052"],
        "rows": [["90010", "Belfort", "90", 0, "90000"], ["22016", "Île-de-Bréhat", "22", None, "22870"]],
    }
    belfort, brehat = parse_communes(document)
    assert belfort.epci_siren == "200069052"
    assert (brehat.epci_siren, brehat.postal_codes) == (None, ("22870",))


def test_parse_communes_refuses_another_format() -> None:
    with pytest.raises(ValueError, match=re.escape("prevex.cog-communes/1")):
        parse_communes({"format": "other", "epci": [], "rows": []})


def test_packaged_document_records_its_source() -> None:
    source = load_packaged_document()["source"]
    assert source["package"] == "@etalab/decoupage-administratif"
    assert source["version"]


def test_territory_is_configuration(communes: CommuneDirectory) -> None:
    besancon = communes.get("25056")
    assert besancon is not None
    assert not Territory(frozenset({"90"})).covers(besancon)
    assert Territory.parse("90, 25").covers(besancon)
    assert Territory.parse("90 2A") == Territory(frozenset({"90", "2A"}))


@pytest.mark.parametrize("codes", ["", "9", "900", "984", "2C"])
def test_territory_refuses_invalid_codes(codes: str) -> None:
    with pytest.raises(ValueError, match=r"territory|département"):
        Territory.parse(codes)
