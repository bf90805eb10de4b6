"""Signed workspace links: what opens, what does not, and rotation."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.platform.links import (
    TOKEN_LENGTH,
    ExpiredLinkError,
    InvalidLinkError,
    LinkKeys,
    assignment_prefix,
    mint_link,
    read_link,
    verify_link,
)

OLD = "old-secret-0123456789-0123456789-abcdef"
NEW = "new-secret-0123456789-0123456789-abcdef"
ASSIGNMENT = uuid.UUID("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab")
LAST_DAY = date(2026, 12, 31)


def _token(keys: str = NEW, *, assignment: uuid.UUID = ASSIGNMENT, structure: str = "CCAS-BELFORT") -> str:
    return mint_link(LinkKeys.parse(keys), assignment_id=assignment, structure_id=structure, expires_on=LAST_DAY)


def _verify(token: str, keys: str = NEW, *, structure: str = "CCAS-BELFORT", today: date = date(2026, 12, 2)) -> None:
    verify_link(LinkKeys.parse(keys), token, assignment_id=ASSIGNMENT, structure_id=structure, today=today)


def test_a_minted_link_opens_its_assignment_for_its_structure_up_to_its_last_day() -> None:
    token = _token()
    assert len(token) == TOKEN_LENGTH == 20
    assert read_link(token).prefix == assignment_prefix(ASSIGNMENT)
    assert read_link(token).expires_on == LAST_DAY
    _verify(token, today=LAST_DAY)


def test_the_day_after_its_last_day_the_link_is_expired_not_invalid() -> None:
    with pytest.raises(ExpiredLinkError):
        _verify(_token(), today=date(2027, 1, 1))


def test_another_structure_cannot_use_the_link() -> None:
    with pytest.raises(InvalidLinkError, match="signature"):
        _verify(_token(), structure="CD90")


def test_a_link_names_one_assignment() -> None:
    other = _token(assignment=uuid.uuid4())
    with pytest.raises(InvalidLinkError):
        _verify(other)


def test_rotation_the_new_key_signs_and_both_verify_until_the_old_one_is_dropped() -> None:
    minted_before = _token(OLD)
    minted_after = _token(f"{NEW},{OLD}")
    _verify(minted_before, f"{NEW},{OLD}")
    _verify(minted_after, f"{NEW},{OLD}")
    _verify(minted_after, NEW)
    with pytest.raises(InvalidLinkError):
        _verify(minted_before, NEW)


@pytest.mark.parametrize("text", ["", " , ", "short-secret", f"{NEW},short"])
def test_missing_or_short_secrets_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        LinkKeys.parse(text)


@pytest.mark.parametrize(
    "token",
    ["", "A" * 19, "A" * 21, "A" * 18 + "+/", "A" * 18 + "==", "é" * 20, "../" * 7, _token() + " "],
)
def test_malformed_tokens_are_invalid(token: str) -> None:
    with pytest.raises(InvalidLinkError):
        _verify(token)


@given(position=st.integers(0, TOKEN_LENGTH - 1), replacement=st.sampled_from("AQgw_-09"))
def test_any_altered_character_is_refused(position: int, replacement: str) -> None:
    token = _token()
    altered = token[:position] + replacement + token[position + 1 :]
    if altered == token:
        return
    with pytest.raises(InvalidLinkError):
        _verify(altered)
