"""Signed links to the partner workspace: minted by the notifier, verified by the workspace (pure, no I/O).

A token names one assignment and the last day it opens, and carries an HMAC-SHA256 over the **whole**
assignment id, that day **and the assignment's structure id**. Only what the workspace needs to find
the assignment travels: 20 characters, because an SMS (160 GSM-7 characters) was already full with the
old 46-character link and a 40-character token did not fit it. Layout, base64url without padding::

    first 6 bytes of the assignment id | expiry, days since 2024-01-01 (2 bytes) | MAC (7 bytes)

The workspace looks the assignment up by its 6-byte prefix in its read model (48 random bits of a
uuid4: a collision is rare and harmless, every candidate is checked) and verifies the MAC with that
assignment's full id and structure: a token opens only that assignment, for that structure. A 56-bit
MAC cannot be guessed online (2^55 tries on average).

**Key rotation:** ``LinkKeys`` holds several secrets; the first signs, every one verifies. To rotate,
put the new secret first in both services' lists and keep the old one after it until the longest link
lifetime has passed, then drop it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = [
    "MIN_SECRET_LENGTH",
    "TOKEN_LENGTH",
    "ExpiredLinkError",
    "InvalidLinkError",
    "LinkKeys",
    "LinkRef",
    "assignment_prefix",
    "mint_link",
    "read_link",
    "verify_link",
]

MIN_SECRET_LENGTH = 32
"""Characters a secret needs at least (``python -c 'import secrets; print(secrets.token_urlsafe(32))'``)."""

_PREFIX_BYTES = 6
_DAY_BYTES = 2
_MAC_BYTES = 7
_EPOCH = date(2024, 1, 1)
TOKEN_LENGTH = 20
"""Length of every token: 15 bytes in base64url."""

_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")
# Domain separation: the same secret used for anything else never yields a valid link MAC.
_CONTEXT = b"prevex-workspace-link/1\x00"


class InvalidLinkError(ValueError):
    """The token is malformed, altered, or signed with no key we hold."""


class ExpiredLinkError(ValueError):
    """The token is genuine but its last day has passed."""


@dataclass(frozen=True, slots=True)
class LinkRef:
    """What a token says before it is verified: how to find its assignment, and its last valid day."""

    prefix: bytes
    expires_on: date


@dataclass(frozen=True, slots=True)
class LinkKeys:
    """The HMAC secrets: ``keys[0]`` signs new links, all of them verify."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("no link secret configured")
        if any(len(key) < MIN_SECRET_LENGTH for key in self.keys):
            raise ValueError(f"every link secret needs at least {MIN_SECRET_LENGTH} characters")

    @classmethod
    def parse(cls, text: str) -> LinkKeys:
        """Secrets from a comma-separated list (an environment variable), first one signing.

        Raises ``ValueError`` when the list is empty or a secret is shorter than ``MIN_SECRET_LENGTH``.
        """
        return cls(tuple(part.strip().encode() for part in text.split(",") if part.strip()))


def assignment_prefix(assignment_id: uuid.UUID) -> bytes:
    """The part of an assignment id a token carries: the read model indexes assignments by it."""
    return assignment_id.bytes[:_PREFIX_BYTES]


def mint_link(keys: LinkKeys, *, assignment_id: uuid.UUID, structure_id: str, expires_on: date) -> str:
    """A token opening ``assignment_id`` for ``structure_id`` up to and including ``expires_on``."""
    day = (expires_on - _EPOCH).days.to_bytes(_DAY_BYTES, "big")
    return _encode(assignment_prefix(assignment_id) + day + _mac(keys.keys[0], assignment_id, day, structure_id))


def read_link(token: str) -> LinkRef:
    """The assignment prefix and last day of a well-formed token, **not verified**: only to find the
    candidate assignments ``verify_link`` checks. Raises ``InvalidLinkError`` when it is malformed."""
    raw = _decode(token)
    day = int.from_bytes(raw[_PREFIX_BYTES : _PREFIX_BYTES + _DAY_BYTES], "big")
    return LinkRef(raw[:_PREFIX_BYTES], _EPOCH + timedelta(days=day))


def verify_link(keys: LinkKeys, token: str, *, assignment_id: uuid.UUID, structure_id: str, today: date) -> LinkRef:
    """``token``'s claim if one of ``keys`` signed it for ``assignment_id`` and ``structure_id``.

    Raises ``InvalidLinkError`` when it is malformed or its MAC matches no key (altered, guessed, another
    assignment's or structure's), ``ExpiredLinkError`` when it is genuine but ``today`` is past its last
    day: the MAC is checked first, so only a genuine link is ever told it expired.
    """
    raw = _decode(token)
    if raw[:_PREFIX_BYTES] != assignment_prefix(assignment_id):
        raise InvalidLinkError("link names another assignment")
    day, mac = raw[_PREFIX_BYTES : _PREFIX_BYTES + _DAY_BYTES], raw[_PREFIX_BYTES + _DAY_BYTES :]
    if not any(hmac.compare_digest(mac, _mac(key, assignment_id, day, structure_id)) for key in keys.keys):
        raise InvalidLinkError("link signature does not match")
    ref = read_link(token)
    if today > ref.expires_on:
        raise ExpiredLinkError("link expired")
    return ref


def _mac(key: bytes, assignment_id: uuid.UUID, day: bytes, structure_id: str) -> bytes:
    message = _CONTEXT + assignment_id.bytes + day + structure_id.encode()
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> bytes:
    if not _TOKEN.fullmatch(token):
        raise InvalidLinkError(f"a link token is {TOKEN_LENGTH} base64url characters")
    # 20 characters of the alphabet are always 15 whole bytes: nothing left to fail.
    return base64.urlsafe_b64decode(token)
