"""The référentiel refuses what its PostgreSQL columns cannot hold: int4 overflows and NUL characters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.orientation.domain.referential import INT4_MAX, INT4_MIN, int4, nul_paths
from services.orientation.domain.referential_yaml import ReferentialError, load_referential

SEED = Path(__file__).resolve().parents[3] / "deploy" / "referential" / "seed-90.yaml"


def test_int4_bounds_are_postgresqls() -> None:
    assert int4(INT4_MAX)
    assert int4(INT4_MIN)
    assert not int4(INT4_MAX + 1)
    assert not int4(INT4_MIN - 1)


def test_nul_paths_name_every_text_holding_a_nul() -> None:
    dump = {"nom": "a\x00b", "contacts": ({"label": "ok"}, {"label": "\x00"}), "priority": 3}
    assert nul_paths(dump) == ["nom", "contacts[1].label"]
    assert nul_paths({"nom": "propre", "thematiques": frozenset({"logement"})}) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("priority", INT4_MAX + 1, ".priority"),
        ("max_new_assignments_per_week", INT4_MAX + 1, ".max_new_assignments_per_week"),
        ("description", "Texte\x00 avec un NUL", "NUL"),
    ],
)
def test_a_yaml_file_out_of_bounds_is_refused_naming_the_offer(field: str, value: object, expected: str) -> None:
    data = yaml.safe_load(SEED.read_text("utf-8"))
    data["offers"][2][field] = value
    with pytest.raises(ReferentialError) as refused:
        load_referential(yaml.safe_dump(data, allow_unicode=True))
    [(path, message)] = refused.value.problems
    assert path.startswith(f"offers[2](id={data['offers'][2]['id']})")
    assert expected in f"{path} {message}"
