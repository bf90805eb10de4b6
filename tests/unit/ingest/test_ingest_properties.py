"""Property tests: whatever arrives, the normaliser ends with an outcome and leaks no personal data."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas.sources
from services.ingest.domain.normalise import Accepted
from services.ingest.domain.rejections import Rejected

Run = Callable[..., Accepted | Rejected]
EXAMPLES = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in (Path(schemas.sources.__file__).parent / "examples").glob("*.json")
}
# Publishable as schemas.ingest.IngestError: code pattern and size limits of the rejection event.
CODE = re.compile(r"^[A-Z_]+(:[a-z_.]+)?$")
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
# Values an emitter plausibly gets wrong, and personal data that must never be echoed back.
tricky_values = st.sampled_from(
    ["Durand", "Léa Durand", "Martin Paul", "2026-02-30", "90010", "99999", "1 200,50", -1, 0, 10**20, "", []]
)
replacement_values = tricky_values | json_values
# A value of the same JSON kind as the one it replaces, so edits also get past the structural checks.
same_kind: dict[type, st.SearchStrategy[Any]] = {
    str: st.sampled_from(["Durand", "2026-02-30", "2026-03-01", "2030-01-01", "90300", "99999", "", "PRIVE"])
    | st.text(max_size=12),
    int: st.integers(min_value=-1000, max_value=10**12),
    float: st.floats(min_value=-1000, max_value=1e6, allow_nan=False) | st.sampled_from([0.001, 450.01, -0.0]),
    bool: st.booleans(),
}
known_keys = st.sampled_from(["stage", "act_date", "amount", "line1", "commune_insee", "type", "Durand", "extra"])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON document, containers included (the root excluded)."""
    found = [prefix] if prefix else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found.extend(_paths(child, (*prefix, key)))
    return found


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


@st.composite
def mutated_examples(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """An example payload with 1-3 random edits: delete, replace or add a key anywhere."""
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    document = copy.deepcopy(EXAMPLES[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(document, path[:-1]), path[-1]
        operation = draw(st.sampled_from(["delete", "replace", "add", "same_kind", "same_kind", "same_kind"]))
        if operation == "delete":
            del parent[key]
        elif operation == "same_kind" and type(parent[key]) in same_kind:
            parent[key] = draw(same_kind[type(parent[key])])
        elif operation == "add" and isinstance(parent[key], dict):
            parent[key][draw(known_keys)] = draw(replacement_values)
        else:
            parent[key] = draw(replacement_values)
    return name, document


def _tenant_names(document: dict[str, Any]) -> set[str]:
    return {tenant[part] for tenant in document["tenants"] for part in ("last_name", "first_name")}


def _check(outcome: Accepted | Rejected, secrets: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    if isinstance(outcome, Accepted):
        outcome.notification.model_validate_json(outcome.notification.model_dump_json())
        assert re.fullmatch(r"[0-9a-f]{64}", outcome.idempotency_key)
        return
    assert isinstance(outcome, Rejected)
    assert outcome.codes
    assert re.fullmatch(r"[0-9a-f]{64}", outcome.payload_sha256)
    for error in outcome.codes:
        assert CODE.match(error.code), error.code
        assert error.field is None or 0 < len(error.field) <= 200
        assert 0 < len(error.message) <= 500
        for secret in secrets:
            assert secret not in error.message


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=2048))
def test_any_bytes_end_as_an_outcome(run: Run, raw: bytes) -> None:
    _check(run(raw))


@PROPERTY_SETTINGS
@given(value=json_values)
def test_any_json_value_ends_as_an_outcome(run: Run, value: Any) -> None:
    _check(run(json.dumps(value).encode()))


@PROPERTY_SETTINGS
@given(value=json_values, format_id=st.sampled_from(["prevex.cj-act/1", "prevex.bailleur-notice/1"]))
def test_any_object_with_a_known_format_ends_as_an_outcome(run: Run, value: Any, format_id: str) -> None:
    document = value if isinstance(value, dict) else {"payload": value}
    _check(run(json.dumps({**document, "format": format_id}).encode()))


@PROPERTY_SETTINGS
@given(case=mutated_examples())
def test_any_mutation_of_an_example_ends_as_an_outcome_without_echoing_names(
    run: Run, case: tuple[str, dict[str, Any]]
) -> None:
    name, document = case
    _check(run(json.dumps(document, ensure_ascii=False).encode()), _tenant_names(EXAMPLES[name]))
