"""Raw payload → JSON document, with every failure as a rejection (never an exception)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, NoReturn

from services.ingest.domain.rejections import RejectionCode, RejectionError

__all__ = ["decode_document", "peek_external_ref", "split_json_array"]

_MAX_EXTERNAL_REF = 128
# A raw NUL byte is already invalid JSON; only the escape can smuggle one in. A literal backslash followed
# by "u0000" in a text is also refused: no real act has one.
_NUL_ESCAPE = "\\u0000"
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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
    if _NUL_ESCAPE in text:
        # No text field may hold a NUL, and PostgreSQL can store none in text or jsonb: refusing it here
        # keeps a single such payload from failing its whole batch's transaction again and again.
        return _invalid("payload contains a NUL character (\\u0000)")
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
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _invalid("payload is not UTF-8 text")
    document = _parse(text)
    if isinstance(document, RejectionError):
        return document
    if not isinstance(document, dict):
        return _invalid("expected a JSON object")
    # Only a \\uD8xx-\\uDFxx escape can produce a surrogate (raw UTF-8 cannot): the full check, a whole
    # serialisation, runs only for the rare payload that has one.
    if _SURROGATE_ESCAPE.search(text) and not _encodable(document):
        return _invalid("payload contains an unpaired UTF-16 surrogate escape")
    return document


def peek_external_ref(document: dict[str, Any]) -> str | None:
    """The emitter's ``external_ref`` if it is usable, even when the rest of the document is invalid."""
    value = document.get("external_ref")
    if isinstance(value, str) and 0 < len(value) <= _MAX_EXTERNAL_REF:
        return value
    return None


def _skip_space(text: str, position: int) -> int:
    match = _JSON_SPACE.match(text, position)
    return match.end() if match else position


def split_json_array(raw: bytes) -> list[bytes] | RejectionError:
    """The elements of a JSON array, each as its own exact bytes (UTF-8), for a batch of notifications.

    Keeping each element's bytes as sent, rather than re-serialising it, keeps its raw hash the same as
    when the emitter sends it alone. Elements are not checked here: each is then a payload of its own.
    ``SCHEMA_INVALID`` when ``raw`` is not a UTF-8 JSON array.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _invalid("batch is not UTF-8 text")
    position = _skip_space(text, 0)
    if text[position : position + 1] != "[":
        return _invalid("expected a JSON array of notifications")
    position = _skip_space(text, position + 1)
    items: list[bytes] = []
    if text[position : position + 1] == "]":
        position = _skip_space(text, position + 1)
    else:
        decoder = json.JSONDecoder()
        while True:
            try:
                _, end = decoder.raw_decode(text, position)
            except (ValueError, RecursionError):
                return _invalid(f"element {len(items)} of the batch is not JSON")
            items.append(text[position:end].encode("utf-8"))
            position = _skip_space(text, end)
            separator = text[position : position + 1]
            if separator not in (",", "]"):
                return _invalid(f"expected ',' or ']' after element {len(items) - 1} of the batch")
            position = _skip_space(text, position + 1)
            if separator == "]":
                break
    if position < len(text):
        return _invalid("unexpected text after the batch")
    return items
