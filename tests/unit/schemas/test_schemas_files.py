"""The committed JSON Schema and AsyncAPI files match the models, and describe what the models accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from schemas import export, topics
from schemas.export import (
    ASYNCAPI_PATH,
    JSON_DIR,
    REGENERATE_COMMAND,
    asyncapi_document,
    drifted_files,
    event_schema_path,
    render_all,
    source_schema_path,
)
from schemas.registry import EVENT_TYPES, SOURCE_FORMATS

REPO_ROOT = Path(__file__).resolve().parents[3]
REGENERATE = f"cd {REPO_ROOT} && .venv/bin/{REGENERATE_COMMAND}"
RENDERED = render_all()


@pytest.mark.parametrize("path", sorted(RENDERED), ids=lambda path: path.name)
def test_committed_file_is_up_to_date(path: Path) -> None:
    assert path.is_file(), f"{path.relative_to(REPO_ROOT)} is missing; regenerate with: {REGENERATE}"
    assert path.read_text("utf-8") == RENDERED[path], (
        f"{path.relative_to(REPO_ROOT)} differs from the models; regenerate with: {REGENERATE}"
    )


def test_no_stale_schema_files() -> None:
    stale = [str(path.relative_to(REPO_ROOT)) for path in drifted_files(RENDERED) if path not in RENDERED]
    assert stale == [], f"schemas of removed contracts are still committed; regenerate with: {REGENERATE}"


def test_render_is_deterministic() -> None:
    assert render_all() == RENDERED


def test_check_mode_exits_1_naming_the_drifted_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = event_schema_path("ingest.rejected")
    assert drifted_files({**RENDERED, changed: "{}\n"}) == sorted({*drifted_files(RENDERED), changed})
    monkeypatch.setattr(export, "render_all", lambda: {**RENDERED, changed: "{}\n"})
    assert export.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert f"out of date: schemas/json/{changed.name}" in out
    assert REGENERATE_COMMAND in out


def test_check_mode_exits_0_on_the_committed_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert export.main(["--check"]) == 0, capsys.readouterr().out


def test_every_contract_has_a_file() -> None:
    expected = {event_schema_path(event_type) for event_type in EVENT_TYPES}
    expected |= {source_schema_path(name) for name in SOURCE_FORMATS}
    assert expected | {ASYNCAPI_PATH} == set(RENDERED)
    assert {path.name for path in expected} >= {"ingest.rejected.v1.schema.json", "notification.sent.v1.schema.json"}


@pytest.mark.parametrize(
    "path", sorted(path for path in RENDERED if path.suffix == ".json"), ids=lambda path: path.name
)
def test_json_schemas_are_valid_draft_2020_12(path: Path) -> None:
    Draft202012Validator.check_schema(json.loads(RENDERED[path]))


def test_samples_satisfy_the_published_schemas(event_type: str, wire: dict[str, object]) -> None:
    # The JSON Schema is what non-Python consumers validate with: it must accept what the model accepts.
    schema = json.loads(RENDERED[event_schema_path(event_type)])
    errors = [error.message for error in Draft202012Validator(schema).iter_errors(wire)]
    assert errors == []


def test_published_schemas_require_the_event_type(event_type: str, wire: dict[str, object]) -> None:
    schema = json.loads(RENDERED[event_schema_path(event_type)])
    assert "event_type" in schema["required"]
    assert schema["properties"]["event_type"]["const"] == event_type
    assert schema["additionalProperties"] is False
    missing = {key: value for key, value in wire.items() if key != "event_type"}
    assert not Draft202012Validator(schema).is_valid(missing)


def test_asyncapi_document() -> None:
    document = yaml.safe_load(RENDERED[ASYNCAPI_PATH])
    assert document == asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["local"]["protocol"] == "kafka"
    assert list(document["channels"]) == list(topics.ALL_TOPICS)
    messages = document["components"]["messages"]
    for topic, channel in document["channels"].items():
        assert channel["address"] == topic
        for reference in channel["messages"].values():
            message = messages[reference["$ref"].removeprefix("#/components/messages/")]
            payload_file = ASYNCAPI_PATH.parent / message["payload"]["$ref"]
            assert payload_file.resolve() in RENDERED, f"{topic}: {message['payload']['$ref']} is not generated"
            assert payload_file.resolve().is_relative_to(JSON_DIR)
