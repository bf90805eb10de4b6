"""Adapter pieces without I/O: content hash, batch splitting, API keys, rate limit, the OpenAPI contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.ingest.cli import OPENAPI_PATH
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.domain.normalise import Accepted, Rejected
from services.ingest.domain.payload import decode_document, split_json_array
from services.ingest.emitters import hash_api_key, load_emitters, new_api_key
from services.ingest.http import create_app, render_openapi
from services.ingest.intake import Intake
from services.ingest.ratelimit import TokenBuckets
from services.ingest.settings import IngestSettings

EMITTERS_FILE = Path(__file__).resolve().parents[3] / "deploy" / "emitters" / "emitters.yaml"
CJ_KEY = "prevex-dev-key-cj-0001"  # development key (docs/ingest.md)
Run = Callable[..., Accepted | Rejected]


def test_the_content_hash_ignores_formatting_only(run: Run, example: Callable[[str], dict[str, Any]]) -> None:
    def content(document: dict[str, Any], **dumps: Any) -> str:
        outcome = run(json.dumps(document, **dumps).encode())
        assert isinstance(outcome, Accepted), outcome
        return outcome.content_sha256

    document = example("s01-cj-commandement-payer")  # debt 2400.0, tenant role given
    reference = content(document)
    assert content(dict(reversed(list(document.items()))), indent=3) == reference
    document["debt"]["amount"] = 2400
    del document["tenants"][0]["role"]  # the default, TITULAIRE
    assert content(document) == reference
    document["debt"]["amount"] = 2400.01
    assert content(document) != reference


def test_the_scenario_retry_is_a_duplicate_and_the_correction_is_not(
    run: Run, example_bytes: Callable[[str], bytes]
) -> None:
    """S-03: same act re-sent → same key and content; debt corrected → same key, other content."""
    raw = example_bytes("s01-cj-commandement-payer")
    document = json.loads(raw)
    first, retry = run(raw), run(json.dumps(document, indent=4).encode())
    document["debt"]["amount"] = 2460
    corrected = run(json.dumps(document).encode())
    assert isinstance(first, Accepted)
    assert isinstance(retry, Accepted)
    assert isinstance(corrected, Accepted)
    assert first.idempotency_key == retry.idempotency_key == corrected.idempotency_key
    assert first.content_sha256 == retry.content_sha256 != corrected.content_sha256


@pytest.mark.parametrize(
    "raw", [b'{"format": "x", "name": "a\\u0000b"}', b'{"a\\u0000": 1}', b'{"x": "\\ud800"}', b"\x00"]
)
def test_text_postgresql_cannot_store_is_refused(raw: bytes) -> None:
    refused = decode_document(raw, 10_000)
    assert getattr(refused, "code", None) == "SCHEMA_INVALID"


@pytest.mark.parametrize(
    ("raw", "items"),
    [
        (b"[]", []),
        (b" [ ] \n", []),
        (b'[{"a": 1},{"b":2}]', [b'{"a": 1}', b'{"b":2}']),
        (b'\xef\xbb\xbf[\n  {"a": "\xc3\xa9"} ,\n  "x"\n]\n', [b'{"a": "\xc3\xa9"}', b'"x"']),
        (b"[[1, 2], 3]", [b"[1, 2]", b"3"]),
    ],
)
def test_a_batch_keeps_each_element_s_bytes(raw: bytes, items: list[bytes]) -> None:
    assert split_json_array(raw) == items


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": 1}', "expected a JSON array"),
        (b"", "expected a JSON array"),
        (b"[1,", "element 1"),
        (b"[,]", "element 0"),
        (b"[1 2]", "after element 0"),
        (b"[1] []", "unexpected text"),
        (b"\xff[]", "not UTF-8"),
    ],
)
def test_a_batch_that_is_not_an_array_is_a_coded_error(raw: bytes, message: str) -> None:
    error = split_json_array(raw)
    assert not isinstance(error, list)
    assert error.code == "SCHEMA_INVALID"
    assert message in error.message


def test_api_keys_are_stored_hashed_and_identify_their_emitter() -> None:
    registry = load_emitters(EMITTERS_FILE)
    assert "prevex-dev-key-cj-0001" not in EMITTERS_FILE.read_text("utf-8")
    emitter = registry.authenticate("prevex-dev-key-cj-0001")
    assert emitter is not None
    assert emitter.emitter_id == "12345678900011"
    assert registry.authenticate("prevex-dev-key-th-0002").emitter_id == "99990000100015"  # type: ignore[union-attr]
    assert registry.authenticate("PREVEX-DEV-KEY-CJ-0001") is None
    assert registry.authenticate("") is None
    assert registry.authenticate(None) is None
    key, digest = new_api_key()
    assert hash_api_key(key) == digest
    assert new_api_key()[0] != key


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('[{id: "12345678900011", type: CAF, name: a, api_keys_sha256: ["ABC"]}]', "pattern"),
        (
            '[{id: "12345678900011", type: CAF, name: a, api_keys_sha256: ["' + "a" * 64 + '"]},'
            ' {id: "12345678900012", type: CAF, name: b, api_keys_sha256: ["' + "a" * 64 + '"]}]',
            "also given to 12345678900011",
        ),
    ],
)
def test_an_emitters_file_with_bad_key_hashes_fails_at_start(tmp_path: Path, entries: str, message: str) -> None:
    path = tmp_path / "emitters.yaml"
    path.write_text(f"emitters: {entries}\n", "utf-8")
    with pytest.raises(ValueError, match=message):
        load_emitters(path)


def test_token_buckets_allow_a_burst_then_the_rate() -> None:
    now = [100.0]
    buckets = TokenBuckets(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [None, None, None, 1]
    assert buckets.take("b") is None  # per emitter
    now[0] += 0.5  # one token back
    assert buckets.take("a") is None
    assert buckets.take("a") == 1
    now[0] += 60  # refills up to the burst, not beyond
    assert [buckets.take("a") for _ in range(4)] == [None, None, None, 1]
    slow = TokenBuckets(rate_per_s=0.1, burst=1, clock=lambda: now[0])
    assert (slow.take("a"), slow.take("a")) == (None, 10)


def _app(pool: Callable[[], Any]) -> FastAPI:
    """The HTTP app without COG data: enough for what happens before an input is validated."""
    intake = Intake(communes=CommuneDirectory([]), territory=Territory(frozenset({"90"})), max_payload_bytes=256_000)
    return create_app(intake=intake, emitters=load_emitters(EMITTERS_FILE), pool=pool, settings=IngestSettings())


def test_the_committed_openapi_document_is_the_served_one() -> None:
    """Regenerate with ``python -m services.ingest.cli openapi --write`` after changing the API."""
    app = _app(pool=lambda: pytest.fail("no database needed"))
    assert render_openapi(app) == OPENAPI_PATH.read_text("utf-8")
    paths = json.loads(OPENAPI_PATH.read_text("utf-8"))["paths"]
    assert set(paths) == {"/v1/notifications", "/v1/notifications:batch", "/v1/csv", "/health"}


async def test_an_unexpected_failure_answers_500_without_details() -> None:
    def no_pool() -> Any:
        raise RuntimeError("the runtime is not started")

    transport = httpx.ASGITransport(app=_app(pool=no_pool), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as client:
        response = await client.post("/v1/notifications", content=b"{}", headers={"X-Api-Key": CJ_KEY})
    assert response.status_code == 500
    assert response.json() == {
        "outcome": "REFUSED",
        "errors": [{"code": "INTERNAL_ERROR", "field": None, "message": "the input was not taken, retry later"}],
    }
