"""Properties every event contract must have, checked over the whole registry.

Each test is parametrised by the ``event_type`` fixture (conftest.py), so a new event registered in
``schemas.registry`` is covered as soon as it has a sample.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import topics
from schemas.envelope import Envelope, event_headers
from schemas.procedure import ProcedureNotificationEvent
from schemas.referential import ReferentialChangedEvent
from schemas.registry import EVENT_TYPES, RAW_TOPIC_FORMATS, SOURCE_FORMATS, TOPIC_EVENTS, UnknownEventType, parse_event

Wire = dict[str, Any]


# Events that carry personal data by design, and why. Everything else must not (docs/domain.md §8.1).
PII_CARRIERS: dict[type[Envelope], str] = {
    ProcedureNotificationEvent: "the canonical record, on the restricted procedure.notification topic",
    ReferentialChangedEvent: "partner structures and their professional contacts, which the notifier needs",
}
# English words match anywhere in a property name (``last_name``, ``mailaddress``); French ones as whole
# words, because as substrings they are too common (``nom`` in ``economic``).
PII_SUBSTRINGS = ("name", "address", "phone", "mobile", "email", "amount", "body")
PII_WORDS = frozenset({"nom", "prenom", "adresse", "telephone", "tel", "courriel", "montant", "dette", "loyer"})
# Names the detector flags that are not about a person, and why.
NOT_PII = {
    "commune_name": "the commune (a town) of the dwelling, shown in alerts; not its address",
    "offer_name": "an offer's name in the référentiel (e.g. « FSL – maintien dans les lieux »), not a person's",
    "offer_names": "the référentiel names of an assignment's offers, not a person's",
    "structure_name": "a partner structure's name in the référentiel, not a person's",
}


def _decode(event_class: type[Envelope], wire: Wire) -> Envelope:
    """Validate ``wire`` as a consumer does: from JSON bytes."""
    return event_class.model_validate_json(json.dumps(wire))


def test_every_event_has_a_sample(sampled_event_types: frozenset[str]) -> None:
    assert sampled_event_types == set(EVENT_TYPES), "PAYLOADS in tests/unit/schemas/conftest.py must match EVENT_TYPES"


def test_every_topic_has_exactly_one_contract() -> None:
    assert set(TOPIC_EVENTS).isdisjoint(RAW_TOPIC_FORMATS)
    assert set(TOPIC_EVENTS) | set(RAW_TOPIC_FORMATS) == set(topics.ALL_TOPICS)
    assert set(TOPIC_EVENTS.values()) == set(EVENT_TYPES.values()), "an event class without a topic"
    assert set(RAW_TOPIC_FORMATS.values()) <= set(SOURCE_FORMATS)


def test_event_type_is_pinned(event_type: str, event_class: type[Envelope], wire: Wire) -> None:
    wire["event_type"] = "something.else"
    with pytest.raises(ValidationError) as caught:
        _decode(event_class, wire)
    assert [error["type"] for error in caught.value.errors()] == ["literal_error"]
    assert event_class.model_validate_json(json.dumps({**wire, "event_type": event_type})).event_type == event_type


def _objects(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every JSON object in ``node`` with its path, outermost first."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _objects(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _objects(value, (*path, index))


def test_unknown_fields_are_refused_at_every_level(event_class: type[Envelope], wire: Wire) -> None:
    # One unknown key per object of the sample, from the envelope down to the deepest nested model: an
    # emitter's typo anywhere must be an error naming where it is, not a silently dropped field.
    for path, _ in list(_objects(wire)):
        mutated = json.loads(json.dumps(wire))
        target = mutated
        for key in path:
            target = target[key]
        target["unexpected_field"] = 1
        with pytest.raises(ValidationError) as caught:
            _decode(event_class, mutated)
        errors = caught.value.errors()
        assert [(e["type"], e["loc"]) for e in errors] == [("extra_forbidden", (*path, "unexpected_field"))]
        assert "unexpected_field" in str(caught.value)


def _wrong_type(value: Any) -> Any:
    # An object where anything else is expected, a list where an object is expected: no field of any
    # contract accepts both, so every substitution must be refused.
    return ["not", "an", "object"] if isinstance(value, dict) else {"not": "this type"}


@pytest.mark.parametrize("part", ["envelope", "payload"])
def test_wrong_types_are_refused_with_the_field_named(event_class: type[Envelope], wire: Wire, part: str) -> None:
    container, prefix = (wire, ()) if part == "envelope" else (wire["payload"], ("payload",))
    fields = [name for name in container if not (part == "envelope" and name == "payload")]
    assert fields
    for name in fields:
        mutated = json.loads(json.dumps(wire))
        target = mutated if part == "envelope" else mutated["payload"]
        target[name] = _wrong_type(target[name])
        with pytest.raises(ValidationError) as caught:
            _decode(event_class, mutated)
        locations = {error["loc"][: len(prefix) + 1] for error in caught.value.errors()}
        assert locations == {(*prefix, name)}, f"{name}: {caught.value}"
        assert name in str(caught.value)


def test_python_construction_is_strict(event_class: type[Envelope], sample: Envelope) -> None:
    # Strict contracts do not coerce in Python either: a UUID given as a string is a programming error.
    fields = {name: getattr(sample, name) for name in type(sample).model_fields}
    assert event_class(**fields) == sample
    with pytest.raises(ValidationError, match="event_id"):
        event_class(**{**fields, "event_id": str(sample.event_id)})


def test_parse_event_round_trip(event_class: type[Envelope], sample: Envelope) -> None:
    data = sample.model_dump_json().encode()
    parsed = parse_event(data)
    assert type(parsed) is event_class
    assert parsed == sample
    assert parsed.model_dump_json().encode() == data


def test_parse_event_refuses_an_unknown_event_type(make_event: Callable[..., Wire]) -> None:
    data = json.dumps(make_event("ingest.duplicate") | {"event_type": "ingest.exploded"}).encode()
    with pytest.raises(UnknownEventType, match=r"unknown event_type 'ingest\.exploded'; known: .*ingest\.duplicate"):
        parse_event(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", "json_invalid"),
        (b'{"payload": {}}', "missing"),
        (b'{"event_type": 3}', "string_type"),
        (b"[]", "model_type"),
    ],
)
def test_parse_event_refuses_undecodable_input(data: bytes, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_event(data)
    assert [error["type"] for error in caught.value.errors()] == [expected]


def test_parse_event_reports_contract_errors_against_the_named_contract(make_event: Callable[..., Wire]) -> None:
    wire = make_event("notification.sent")
    del wire["payload"]["channel"]
    with pytest.raises(ValidationError) as caught:
        parse_event(json.dumps(wire).encode())
    assert caught.value.title == "NotificationSentEvent"
    assert [error["loc"] for error in caught.value.errors()] == [("payload", "channel")]


def _property_names(schema: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every property name declared anywhere in a JSON schema (``$defs`` included), with its path."""
    if isinstance(schema, dict):
        for name in schema.get("properties", {}):
            yield name, f"{path}/{name}"
        for key, value in schema.items():
            yield from _property_names(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _property_names(value, f"{path}/{index}")


def _suggests_pii(name: str) -> bool:
    lowered = name.lower()
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    if name in NOT_PII:
        return False
    return any(stem in lowered for stem in PII_SUBSTRINGS) or bool(PII_WORDS.intersection(words))


def test_pii_detector() -> None:
    flagged = ["last_name", "firstName", "mailAddress", "mobile", "debt_amount", "message_body", "nom", "prenom_1"]
    clean = ["procedure_short_ref", "contact_id", "provider_message_id", "economic_zone", "channel", "commune_name"]
    assert [name for name in flagged if not _suggests_pii(name)] == []
    assert [name for name in clean if _suggests_pii(name)] == []


def test_events_carry_no_personal_data_fields(event_class: type[Envelope]) -> None:
    suspicious = sorted(path for name, path in _property_names(event_class.model_json_schema()) if _suggests_pii(name))
    if event_class in PII_CARRIERS:
        # Keeps the exemption list honest: an event that no longer carries such fields leaves it.
        assert suspicious, f"{event_class.__name__} no longer needs its PII_CARRIERS exemption"
    else:
        assert suspicious == [], f"{event_class.__name__} declares fields that suggest personal data"


def test_event_headers_carry_the_ids_and_no_made_up_traceparent(sample: Envelope) -> None:
    headers = event_headers(sample)
    assert headers == {
        "event_id": str(sample.event_id),
        "correlation_id": str(sample.correlation_id),
        "event_type": sample.event_type,
    }
