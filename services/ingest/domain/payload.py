"""Raw payload → JSON document, with every failure as a rejection (never an exception)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, NoReturn

from services.ingest.domain.rejections import RejectionCode, RejectionError

__all__ = ["decode_document", "peek_external_ref"]

_MAX_EXTERNAL_REF = 128


def _refuse_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity; RFC 8259 does not, and no amount can be either.
    raise ValueError(f"{name} is not JSON")


def _invalid(message: str) -> RejectionError:
    return RejectionError(RejectionCode.SCHEMA_INVALID.value, None, message)


def _encodable(document: object) -> bool:
    """False if a string holds an unpaired ``\\uD800``-style escape, which no UTF-8 output can carry."""
    try:
        json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _parse(text: str) -> object | RejectionError:
    try:
        document: object = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        return _invalid(f"payload is not JSON: {error.msg} (line {error.lineno}, column {error.colno})")
    except (ValueError, RecursionError):
        # NaN/Infinity, integers beyond Python's digit limit, nesting beyond the parser's depth.
        return _invalid("payload is not JSON within supported limits")
    return document


def decode_document(raw: bytes, max_bytes: int) -> dict[str, Any] | RejectionError:
    """The JSON object in ``raw``, numbers with a fraction or exponent as exact :class:`~decimal.Decimal`.

    ``PAYLOAD_TOO_LARGE`` above ``max_bytes``; ``SCHEMA_INVALID`` for anything that is not a UTF-8 JSON
    object (a leading byte-order mark is tolerated: spreadsheets and some SFTP exports add one).
    """
    if len(raw) > max_bytes:
        return RejectionError(RejectionCode.PAYLOAD_TOO_LARGE.value, None, f"payload exceeds {max_bytes} bytes")
    try:
        document = _parse(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return _invalid("payload is not UTF-8 text")
    if isinstance(document, RejectionError):
        return document
    if not isinstance(document, dict):
        return _invalid("expected a JSON object")
    if not _encodable(document):
        return _invalid("payload contains an unpaired UTF-16 surrogate escape")
    return document


def peek_external_ref(document: dict[str, Any]) -> str | None:
    """The emitter's ``external_ref`` if it is usable, even when the rest of the document is invalid."""
    value = document.get("external_ref")
    if isinstance(value, str) and 0 < len(value) <= _MAX_EXTERNAL_REF:
        return value
    return None
