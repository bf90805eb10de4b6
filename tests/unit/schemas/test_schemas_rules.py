"""Cross-field rules and value formats of the ingest, notification and assignment contracts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas.assignment import AssignmentStatusChange
from schemas.ingest import IngestDuplicate, IngestError, IngestRejected
from schemas.notification import (
    DeliveryError,
    NotificationFailed,
    NotificationSent,
    NotificationUndeliverable,
    redact_contact_details,
)

Wire = dict[str, Any]
PayloadWith = Callable[..., Wire]


def _validate(model: type[BaseModel], wire: Wire) -> Any:
    return model.model_validate_json(json.dumps(wire))


# --- ingest -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["SCHEMA_INVALID", "ADDRESS_MISSING", "REQUIRED_FOR_STAGE_MISSING:debt.amount", "X:household.tenants"],
)
def test_rejection_codes_accepted(code: str) -> None:
    assert IngestError(code=code, message="m").code == code


@pytest.mark.parametrize(
    "code",
    ["", "schema_invalid", "SCHEMA INVALID", "DATE_INVALID:", "REQUIRED:Debt.Amount", "A:b:c", "CODE_1", ":debt"],
)
def test_rejection_codes_refused(code: str) -> None:
    with pytest.raises(ValidationError, match="code"):
        IngestError(code=code, message="m")


def test_a_rejection_lists_at_least_one_error(payload_with: PayloadWith) -> None:
    with pytest.raises(ValidationError, match="errors"):
        _validate(IngestRejected, payload_with("ingest.rejected", errors=[]))


def test_a_rejection_of_unreadable_input_needs_no_emitter_type_nor_external_ref(payload_with: PayloadWith) -> None:
    wire = payload_with("ingest.rejected", emitter_id="unknown", emitter_type=..., external_ref=...)
    rejected = _validate(IngestRejected, wire)
    assert (rejected.emitter_type, rejected.external_ref) == (None, None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"idempotency_key": "AB" * 32}, "idempotency_key"),
        ({"idempotency_key": "ab" * 31}, "idempotency_key"),
        ({"duplicate_count": 0}, "duplicate_count"),
        ({"external_ref": ""}, "external_ref"),
    ],
)
def test_duplicate_fields_refused(payload_with: PayloadWith, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _validate(IngestDuplicate, payload_with("ingest.duplicate", **changes))
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


# --- notification -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("550 5.1.1 <camille.exemple@mail.test>: Recipient rejected", "550 5.1.1 <[email]>: Recipient rejected"),
        ("invalid number +33612345678", "invalid number [phone]"),
        ("invalid number +33 6 12 34 56 78.", "invalid number [phone]."),
        ("call 06 12 34 56 78 or 0612345678", "call [phone] or [phone]"),
        ("421 4.7.0 try again later", "421 4.7.0 try again later"),
        ("HTTP 503 after 30000 ms", "HTTP 503 after 30000 ms"),
    ],
)
def test_contact_details_are_redacted(text: str, expected: str) -> None:
    assert redact_contact_details(text) == expected
    assert DeliveryError(code="X", message=text).message == expected


_NO_AT = st.text(st.characters(exclude_characters="@"), max_size=20)


@given(email=st.emails(), before=_NO_AT, after=_NO_AT)
def test_no_email_address_survives_redaction(email: str, before: str, after: str) -> None:
    redacted = redact_contact_details(f"{before} <{email}> {after}")
    assert "@" not in redacted
    assert redact_contact_details(redacted) == redacted


@given(mobile=st.from_regex(r"\+33[67]\d{8}", fullmatch=True), separator=st.sampled_from(["", " ", ".", "-"]))
def test_no_mobile_number_survives_redaction(mobile: str, separator: str) -> None:
    spaced = mobile[:3] + separator.join(mobile[3 + i : 5 + i] for i in range(0, 10, 2))
    for number in (mobile, spaced, "0" + mobile[3:]):
        assert redact_contact_details(f"SMS to {number} refused") == "SMS to [phone] refused"


@given(code=st.from_regex(r"[A-Z_]{1,40}(:[a-z_.]{1,40})?", fullmatch=True))
def test_rejection_code_pattern(code: str) -> None:
    assert IngestError(code=code, message="m").code == code


def test_a_long_provider_message_is_cut_not_refused() -> None:
    message = DeliveryError(code="X", message="to camille@mail.test " + "x" * 600).message
    assert len(message) == 500
    assert message.startswith("to [email] ")
    assert message.endswith("…")
    # The receipt stays valid once serialised: consumers re-validate it.
    assert (
        DeliveryError.model_validate_json(DeliveryError(code="X", message=message).model_dump_json()).message == message
    )


@pytest.mark.parametrize("code", ["", "has space", "x" * 65])
def test_delivery_error_codes_refused(code: str) -> None:
    with pytest.raises(ValidationError, match="code"):
        DeliveryError(code=code, message="m")


@pytest.mark.parametrize("model", [NotificationFailed, NotificationUndeliverable])
def test_a_failure_receipt_needs_its_error(payload_with: PayloadWith, model: type[BaseModel]) -> None:
    event_type = "notification.failed" if model is NotificationFailed else "notification.undeliverable"
    with pytest.raises(ValidationError, match="error"):
        _validate(model, payload_with(event_type, error=...))


def test_a_sent_receipt_has_no_error(payload_with: PayloadWith) -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        _validate(NotificationSent, payload_with("notification.sent", error={"code": "X", "message": "m"}))


@pytest.mark.parametrize(
    ("will_retry", "next_attempt_at", "valid"),
    [
        (True, "2026-03-02T09:35:00Z", True),
        (False, None, True),
        (True, None, False),
        (False, "2026-03-02T09:35:00Z", False),
    ],
)
def test_next_attempt_is_given_exactly_when_retrying(
    payload_with: PayloadWith, will_retry: bool, next_attempt_at: str | None, valid: bool
) -> None:
    wire = payload_with("notification.failed", will_retry=will_retry, next_attempt_at=next_attempt_at)
    if valid:
        assert _validate(NotificationFailed, wire).will_retry is will_retry
    else:
        with pytest.raises(ValidationError, match="next_attempt_at must be given when will_retry is true"):
            _validate(NotificationFailed, wire)


@pytest.mark.parametrize(
    ("fallback", "valid"),
    [
        ({"kind": "GENERIC_CONTACT", "structure_id": "FSL90"}, True),
        ({"kind": "DEFAULT_REFERENT", "structure_id": "CCAPEX90"}, True),
        ({"kind": "NONE"}, True),
        ({"kind": "NONE", "structure_id": "CCAPEX90"}, False),
        ({"kind": "DEFAULT_REFERENT"}, False),
        ({"kind": "SOMEONE"}, False),
    ],
)
def test_fallback_names_a_structure_unless_none(payload_with: PayloadWith, fallback: Wire, valid: bool) -> None:
    wire = payload_with("notification.undeliverable", fallback=fallback)
    if valid:
        assert _validate(NotificationUndeliverable, wire).fallback.kind == fallback["kind"]
    else:
        with pytest.raises(ValidationError, match="fallback"):
            _validate(NotificationUndeliverable, wire)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"attempt_count": 0}, "attempt_count"),
        ({"channel": "FAX"}, "channel"),
        ({"provider": "SMTP"}, "provider"),
        ({"structure_id": "bad id"}, "structure_id"),
        ({"procedure_short_ref": ""}, "procedure_short_ref"),
    ],
)
def test_delivery_fields_refused(payload_with: PayloadWith, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _validate(NotificationSent, payload_with("notification.sent", **changes))
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


def test_a_digest_delivery_has_no_assignment(payload_with: PayloadWith) -> None:
    assert _validate(NotificationSent, payload_with("notification.sent", assignment_id=...)).assignment_id is None


# --- assignment ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "ACCEPTEE", "reason": ...},
        {"status": "EXPIREE", "reason": ..., "by": "SYSTEM"},
        {"status": "CLOTUREE", "reason": "DETTE_SOLDEE"},
        {"status": "OUVERTE", "reason": ..., "by": "CCAPEX", "override": "ADD", "assignment_id": ...},
        {"status": "OUVERTE", "reason": ..., "by": "CCAPEX", "override": "ADD"},
        {"status": "CLOTUREE", "reason": "DOUBLON", "by": "CCAPEX", "override": "REMOVE"},
    ],
)
def test_assignment_changes_accepted(payload_with: PayloadWith, changes: dict[str, Any]) -> None:
    _validate(AssignmentStatusChange, payload_with("assignment.status", **changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reason": ...}, "a refusal needs a reason code"),
        ({"reason": "pas de place pour Mme X"}, "String should match pattern"),
        ({"status": "OUVERTE", "by": "PARTNER", "override": "ADD"}, r"only the CCAPEX overrides"),
        ({"status": "ACCEPTEE", "assignment_id": ...}, "assignment_id may only be omitted for an override ADD"),
        ({"status": "OUVERTE", "by": "CCAPEX", "override": "REMOVE", "assignment_id": ...}, "assignment_id"),
        ({"status": "ACCEPTEE", "by": "CCAPEX", "override": "ADD"}, "override ADD sets status OUVERTE"),
        ({"status": "OUVERTE", "by": "CCAPEX", "override": "REMOVE"}, "override REMOVE sets status CLOTUREE"),
        ({"by": "ROBOT"}, "by"),
    ],
)
def test_assignment_changes_refused(payload_with: PayloadWith, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _validate(AssignmentStatusChange, payload_with("assignment.status", **changes))
