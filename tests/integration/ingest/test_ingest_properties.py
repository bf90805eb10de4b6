"""Property tests on each input path, on a real PostgreSQL: whatever arrives ends as an outcome, kept.

For any input: no exception, exactly one raw row stored per input (nothing lost), and an outcome that is
an acceptance or a coded rejection, stored and published. The Kafka path is exercised end to end on the
broker in ``tests/e2e/ingest``; here its adapter (raw bytes + record key) runs against the intake directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.intake import Outcome
from services.ingest.ratelimit import TokenBuckets

pytestmark = pytest.mark.integration

MakeRaw = Callable[..., Any]
Process = Callable[..., Any]
Example = Callable[..., bytes]
CODE = re.compile(r"^[A-Z_]+(:[a-z_.]+)?$")
PROPERTIES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = (
    st.sampled_from(["12345678900011", "99990000100015", "55512345600019", "99999999900099", "", "x" * 100]) | st.none()
)
EXAMPLES = st.sampled_from(
    ["s01-cj-commandement-payer", "s02-bailleur-saisine-ccapex", "s04-cj-assignation", "s05-bailleur-impaye-constate"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@st.composite
def payloads(draw: st.DrawFn, example: Example) -> bytes:
    """Raw bytes, any JSON, or an example with one field replaced by anything."""
    kind = draw(st.sampled_from(["bytes", "json", "example"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    document = json.loads(example(draw(EXAMPLES)))
    key = draw(st.sampled_from(sorted(document)))
    document[key] = draw(json_values)
    return json.dumps(document).encode()


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP app without a rate limit: every example of a property goes through the same app."""
    async with make_client(limiter=TokenBuckets(rate_per_s=1e9, burst=10**9)) as client:
        yield client


async def _raw_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM raw_inbound")
    return count


def _check_rejection(errors: list[dict[str, Any]] | tuple[Any, ...]) -> None:
    assert errors
    for error in errors:
        code = error["code"] if isinstance(error, dict) else error.code
        assert CODE.match(code), code


@PROPERTIES
@given(data=st.data())
async def test_kafka_adapter_any_payload_and_key_ends_as_one_kept_outcome(
    data: st.DataObject, process: Process, make_raw: MakeRaw, example: Example, pool: asyncpg.Pool
) -> None:
    inputs = [make_raw(data.draw(payloads(example)), data.draw(KEYS)) for _ in range(data.draw(st.integers(1, 4)))]
    before = await _raw_count(pool)
    results = await process(*inputs)
    assert await _raw_count(pool) == before + len(inputs)
    for result in results:
        assert result.outcome in {Outcome.ACCEPTED, Outcome.CORRECTION, Outcome.DUPLICATE_IGNORED, Outcome.REJECTED}
        if result.outcome is Outcome.REJECTED:
            _check_rejection(result.rejection.errors)
    pending: int = await pool.fetchval("SELECT count(*) FROM raw_inbound WHERE outcome = 'PENDING'")
    assert pending == 0


@PROPERTIES
@given(data=st.data())
async def test_http_any_body_ends_as_an_answer_and_is_kept(
    data: st.DataObject, client: httpx.AsyncClient, api_keys: dict[str, str], example: Example, pool: asyncpg.Pool
) -> None:
    key = api_keys[data.draw(st.sampled_from(sorted(api_keys)))]
    body = data.draw(payloads(example))
    before = await _raw_count(pool)
    response = await client.post("/v1/notifications", content=body, headers={"X-Api-Key": key})
    assert response.status_code in {201, 403, 422}
    assert await _raw_count(pool) == before + 1
    if response.status_code != 201:
        _check_rejection(response.json()["errors"])
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM rejection WHERE rejection_id = $1::uuid", response.json()["rejection_id"]
            )
            == 1
        )


@PROPERTIES
@given(data=st.data())
async def test_http_any_batch_answers_every_element_and_keeps_it(
    data: st.DataObject, client: httpx.AsyncClient, api_keys: dict[str, str], example: Example, pool: asyncpg.Pool
) -> None:
    elements = data.draw(st.lists(payloads(example).filter(_is_json), max_size=5))
    body = b"[" + b",".join(elements) + b"]"
    before = await _raw_count(pool)
    response = await client.post("/v1/notifications:batch", content=body, headers={"X-Api-Key": api_keys["cj"]})
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["index"] for item in items] == list(range(len(elements)))
    assert {item["status"] for item in items} <= {201, 403, 422}
    assert await _raw_count(pool) == before + len(elements)


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


CSV_HEADER = (
    "reference;etape;date_acte;locataire_nom;locataire_prenom;adresse;code_postal;code_insee;bailleur_type;"
    "loyer_hc;charges;dette_montant;dette_date;tiers_payant;telephone"
)
VALID_LINE = ";".join(
    [
        *("TH-P-{n}", "SIGNALEMENT_CAF", "02/03/2026", "Roux", "Léon", "9 rue de Lyon", "90000", "90010"),
        *("BAILLEUR_SOCIAL", "420,00", "80", "1 200,50", "28/02/2026", "oui", "06 12 34 56 78"),
    ]
)
cells = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=15) | st.sampled_from(
    ["", "02/03/2026", "31/02/2026", "1 200,50", "-350,00", "abc", "90010", "SIGNALEMENT_CAF", '"a;b"', '"', "\x00"]
)


@st.composite
def csv_lines(draw: st.DrawFn) -> str:
    """A valid line with some cells replaced, dropped or added: any CSV line, mostly close to real ones."""
    values = VALID_LINE.format(n=draw(st.integers(0, 10**6))).split(";")
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(values) - 1))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "drop" and len(values) > 1:
            del values[position]
        elif action == "add":
            values.insert(position, draw(cells))
        else:
            values[position] = draw(cells)
    return ";".join(values)


@PROPERTIES
@given(lines=st.lists(csv_lines(), min_size=1, max_size=4), encoding=st.sampled_from(["utf-8", "cp1252"]))
async def test_csv_any_line_ends_as_a_reported_outcome_and_is_kept(
    lines: list[str], encoding: str, client: httpx.AsyncClient, api_keys: dict[str, str], pool: asyncpg.Pool
) -> None:
    data = "\n".join([CSV_HEADER, *lines]).encode(encoding, "replace")
    before = await _raw_count(pool)
    response = await client.post("/v1/csv", content=data, headers={"X-Api-Key": api_keys["territoire_habitat"]})
    assert response.status_code == 200
    report = response.json()
    non_blank = [
        n for n, line in enumerate(data.decode(report["encoding"]).split("\n"), 1) if line.strip(" ;\t") and n > 1
    ]
    assert [line["line"] for line in report["lines"]] == non_blank
    assert await _raw_count(pool) == before + len(non_blank)
    for line in report["lines"]:
        if line["outcome"] == "REJECTED":
            _check_rejection(line["errors"])
        else:
            assert line["procedure_short_ref"]
