"""Valid sample events, in wire form, for every contract in ``schemas.registry.EVENT_TYPES``, and the
fixtures that parametrise the schema tests over them.

Tests reach the samples through fixtures only: the project runs pytest with ``--import-mode=importlib``,
where test directories are not importable, and ``tests/unit/schemas`` must not become a package (it would
shadow the ``schemas`` package).

Samples are JSON-shaped dicts (strings for UUIDs, dates and enums) because that is what consumers
decode, and because tests mutate them field by field. The people, places and ids are fictional.
Every event class registered in the registry must have a sample here; ``test_every_event_has_a_sample``
fails otherwise.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from schemas.envelope import Envelope
from schemas.registry import EVENT_TYPES, event_type_of

Wire = dict[str, Any]

PROCEDURE_ID = "0b7e4f0e-8f0c-4b52-9a53-3f3f0b0a0001"
ASSIGNMENT_ID = "0b7e4f0e-8f0c-4b52-9a53-3f3f0b0a0002"
AT = "2026-03-02T09:30:00Z"
SHA = "3f" * 32

ENVELOPE: Wire = {
    "event_id": "6f1c2d3e-4b5a-4c6d-8e7f-90a1b2c3d4e5",
    "schema_version": "1.0",
    "occurred_at": AT,
    "correlation_id": "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
    "causation_id": "00f067aa-0ba9-42b7-9c1d-2e3f4a5b6c7d",
    "producer": "test",
}

_DELIVERY: Wire = {
    "delivery_id": "9d2b6f1a-0c3e-4f5a-8b7c-6d5e4f3a2b1c",
    "assignment_id": ASSIGNMENT_ID,
    "procedure_id": PROCEDURE_ID,
    "procedure_short_ref": "EXP90-2026-0001",
    "structure_id": "FSL90",
    "contact_id": "FSL90-MAIL",
    "channel": "EMAIL",
    "provider": "smtp",
    "attempt_count": 1,
}
_ERROR: Wire = {"code": "SMTP_PERMANENT:550", "message": "mailbox unavailable"}


def _procedure_notice() -> Wire:
    return {
        "procedure_id": PROCEDURE_ID,
        "procedure_short_ref": "EXP90-2026-0001",
        "revision": 1,
        "is_late": False,
        "is_correction": False,
        "stage_advanced": True,
        "notification": {
            "notification_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "source": {
                "system": "cj_api",
                "emitter_type": "COMMISSAIRE_JUSTICE",
                "emitter_id": "CJ-90-0001",
                "external_ref": "ACT-2026-0042",
                "received_at": AT,
                "payload_sha256": SHA,
            },
            "act": {"stage": "COMMANDEMENT_PAYER", "date": "2026-03-01"},
            "household": {"tenants": [{"last_name": "Exemple", "first_name": "Camille"}]},
            "dwelling": {
                "address": {
                    "line1": "1 rue de l'Exemple",
                    "postal_code": "90000",
                    "commune_insee": "90010",
                    "departement": "90",
                },
                "parc": "PRIVE",
            },
            "landlord": {"type": "PERSONNE_PHYSIQUE"},
            "debt": {"amount": "2400.00", "as_of": "2026-03-01"},
            "derived": {"rules_version": "2026-02", "winter_truce_on_act_date": False, "urgency": "NORMAL"},
        },
    }


def _structure_record() -> Wire:
    return {
        "structure_id": "FSL90",
        "nom": "FSL 90",
        "typologie": "FSL",
        "status": "active",
        "referentiel_version": 3,
        "default_referent": False,
        "contacts": [
            {
                "id": "FSL90-MAIL",
                "label": "Boîte générique",
                "email": "fsl@cd90.test",
                "channels_enabled": {"email": True},
                "is_generic_mailbox": True,
                "quiet_hours": {"start": "20:00:00", "end": "08:00:00"},
            }
        ],
        "offers": [
            {
                "id": "FSL90-MAINTIEN",
                "nom": "Maintien dans le logement",
                "status": "active",
                "stages": ["SIGNALEMENT_CAF", "COMMANDEMENT_PAYER"],
                "mandatory_stages": [],
            }
        ],
    }


# One payload factory per event type; a fresh dict on every call so tests may mutate it.
PAYLOADS: dict[str, Callable[[], Wire]] = {
    "procedure.notification": _procedure_notice,
    "ingest.rejected": lambda: {
        "rejection_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "emitter_id": "CJ-90-0001",
        "emitter_type": "COMMISSAIRE_JUSTICE",
        "source_system": "cj_api",
        "external_ref": "ACT-2026-0042",
        "received_at": AT,
        "payload_sha256": SHA,
        "errors": [
            {"code": "REQUIRED_FOR_STAGE_MISSING:debt.amount", "field": "debt.amount", "message": "required"},
            {"code": "ADDRESS_MISSING", "message": "no address line"},
        ],
    },
    "ingest.duplicate": lambda: {
        "idempotency_key": "ab" * 32,
        "emitter_id": "CJ-90-0001",
        "external_ref": "ACT-2026-0042",
        "procedure_id": PROCEDURE_ID,
        "duplicate_count": 2,
    },
    "referentiel.changed": _structure_record,
    "orientation.decided": lambda: {
        "procedure_id": PROCEDURE_ID,
        "procedure_short_ref": "EXP90-2026-0001",
        "notification_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "stage": "COMMANDEMENT_PAYER",
        "urgency": "NORMAL",
        "commune_insee": "90010",
        "commune_name": "Belfort",
        "is_correction": False,
        "referentiel_version": 3,
        "rules_version": "2026-02",
        "assignments": [
            {
                "assignment_id": ASSIGNMENT_ID,
                "structure_id": "FSL90",
                "offer_ids": ["FSL90-MAINTIEN"],
                "kind": "NEW",
                "mandatory": False,
                "priority": 0,
                "over_capacity": False,
                "matched_rules": ["FSL90-MAINTIEN.stages"],
                "explanation": "offer FSL90-MAINTIEN: zone DEPARTEMENT 90 ✓; stage COMMANDEMENT_PAYER ✓",
            }
        ],
        "also_eligible": [{"offer_id": "CCAS-BELFORT", "structure_id": "CCAS90010", "unknowns": []}],
        "fallback_used": False,
    },
    "orientation.unmatched": lambda: {
        "procedure_id": PROCEDURE_ID,
        "procedure_short_ref": "EXP90-2026-0001",
        "stage": "IMPAYE_CONSTATE",
        "commune_insee": "90010",
        "fallback_structure_id": "CCAPEX90",
        "reasons": [{"offer_id": "CAF90-MAINTIEN", "reasons": ["allocataire NON ∉ {OUI}"]}],
    },
    "notification.sent": lambda: {**_DELIVERY, "provider_message_id": "<20260302093000.1@prevex.test>"},
    "notification.failed": lambda: {
        **_DELIVERY,
        "attempt_count": 2,
        "error": {"code": "TIMEOUT", "message": "no answer in 10 s"},
        "will_retry": True,
        "next_attempt_at": "2026-03-02T09:35:00Z",
    },
    "notification.undeliverable": lambda: {
        **_DELIVERY,
        "attempt_count": 5,
        "error": dict(_ERROR),
        "fallback": {"kind": "DEFAULT_REFERENT", "structure_id": "CCAPEX90"},
    },
    "assignment.status": lambda: {
        "assignment_id": ASSIGNMENT_ID,
        "procedure_id": PROCEDURE_ID,
        "structure_id": "FSL90",
        "status": "REFUSEE",
        "reason": "HORS_COMPETENCE",
        "by": "PARTNER",
    },
    "assignment.escalation": lambda: {
        "assignment_id": ASSIGNMENT_ID,
        "procedure_id": PROCEDURE_ID,
        "structure_id": "FSL90",
        "step": "STRUCTURE_REMINDER",
        "working_days": 5,
    },
    "workspace.link_requested": lambda: {
        "request_id": "0f0c8a4e-3b7d-4c1e-9a55-6d2b1e7f9a10",
        "assignment_id": ASSIGNMENT_ID,
        "procedure_id": PROCEDURE_ID,
        "procedure_short_ref": "90-2026-000001",
        "structure_id": "FSL90",
    },
}


def wire_event(event_type: str) -> Wire:
    """A complete sample event in wire form: the shared envelope, ``event_type`` and a fresh payload."""
    return {**copy.deepcopy(ENVELOPE), "event_type": event_type, "payload": PAYLOADS[event_type]()}


@pytest.fixture(params=sorted(EVENT_TYPES), name="event_type")
def fixture_event_type(request: pytest.FixtureRequest) -> str:
    """Every registered event type, one test run each."""
    event_type: str = request.param
    return event_type


@pytest.fixture(name="event_class")
def fixture_event_class(event_type: str) -> type[Envelope]:
    event_class = EVENT_TYPES[event_type]
    assert event_type_of(event_class) == event_type
    return event_class


@pytest.fixture(name="wire")
def fixture_wire(event_type: str) -> Wire:
    """A valid sample of ``event_type`` in wire form (skips nothing: a missing sample is a failure)."""
    assert event_type in PAYLOADS, f"add a sample payload for {event_type!r} in tests/unit/schemas/conftest.py"
    return wire_event(event_type)


@pytest.fixture(name="sample")
def fixture_sample(event_class: type[Envelope], wire: Wire) -> Envelope:
    """The sample decoded as a consumer decodes it: from JSON."""
    return event_class.model_validate_json(json.dumps(wire))


@pytest.fixture(name="sampled_event_types")
def fixture_sampled_event_types() -> frozenset[str]:
    """The event types that have a sample here."""
    return frozenset(PAYLOADS)


@pytest.fixture(name="make_event")
def fixture_make_event() -> Callable[..., Wire]:
    """``wire_event``: a complete sample event of a given type."""
    return wire_event


@pytest.fixture(name="payload_with")
def fixture_payload_with() -> Callable[..., Wire]:
    """A fresh sample payload of a given event type with changes applied; a value of ``...`` removes a field."""

    def payload_with(event_type: str, **changes: Any) -> Wire:
        payload = PAYLOADS[event_type]()
        for name, value in changes.items():
            if value is ...:
                payload.pop(name, None)
            else:
                payload[name] = value
        return payload

    return payload_with
