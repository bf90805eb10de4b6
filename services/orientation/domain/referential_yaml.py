"""The référentiel as a YAML file: load with path-naming errors, dump that round-trips, content hash.

File format: the ``Referential`` model's fields (``default_referent``, ``structures``, ``offers``),
with one convenience: wherever stages are listed (``eligibility.stages``, ``mandatory_stages``) an item
may be a range ``"COMMANDEMENT_PAYER..COMMANDEMENT_QUITTER"`` (inclusive, by rank, expanded with
``stages_between``) and a single string may stand for a one-item list. Codes that look like numbers
(``"90"``, ``"90010"``) and times (``"20:00"``) must be quoted: YAML would read them as integers.

Values are validated in pydantic's strict JSON mode: a quoted ``"50"`` is not a priority, ``yes`` is
not a boolean.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.stages import Stage, stage_rank, stages_between
from services.orientation.domain.referential import (
    Offer,
    Referential,
    Structure,
    as_stage_range,
    sorted_stages,
)

__all__ = [
    "RANGE_SEPARATOR",
    "ReferentialError",
    "assemble_referential",
    "content_hash",
    "dump_referential",
    "load_referential",
]

RANGE_SEPARATOR = ".."
_STAGE_FIELDS = (("eligibility", "stages"), ("mandatory_stages",))


class ReferentialError(ValueError):
    """An invalid référentiel file. ``problems`` are ``(path, message)`` pairs; ``str()`` lists them all.

    A path names list items with their id when they have one: ``offers[3](id=PJ90-INFO).zone.include[0]``.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        lines = [f"{path}: {message}" if path else message for path, message in problems]
        super().__init__("invalid référentiel:\n" + "\n".join(f"  - {line}" for line in lines))


def load_referential(text: str) -> Referential:
    """Parse and validate a YAML référentiel. Raises ``ReferentialError`` naming every offending path."""
    data = _parse(text)
    problems = _expand_stage_ranges(data)
    if problems:
        raise ReferentialError(problems)
    try:
        return Referential.model_validate_json(json.dumps(data, default=_json_default), strict=True)
    except ValidationError as error:
        raise ReferentialError(_validation_problems(error, data)) from None


def assemble_referential(
    default_referent: str, structures: Sequence[Structure], offers: Sequence[Offer]
) -> Referential:
    """A référentiel from already validated parts, checked as a whole (ids, references, default referent).

    What an edit of one structure or offer goes through. Raises ``ReferentialError`` with the same
    paths as a file would get (``offers[3](id=PJ90-INFO).structure_id``).
    """
    try:
        return Referential(default_referent=default_referent, structures=tuple(structures), offers=tuple(offers))
    except ValidationError as error:
        raise ReferentialError(_validation_problems(error, {})) from None


def dump_referential(referential: Referential) -> str:
    """YAML text that ``load_referential`` reads back to an equal ``Referential``.

    Defaults are left out; stage sets that form a full range of 3 stages or more are written as ranges.
    """
    data = referential.model_dump(mode="json", exclude_defaults=True)
    for offer in data.get("offers", []):
        _compress_stage_ranges(offer)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def content_hash(referential: Referential) -> str:
    """SHA-256 (hex) of the référentiel's canonical JSON; equal hashes mean no new version is needed.

    Canonical: keys sorted, sets sorted, structures and offers sorted by id, so reordering a file or
    writing a range instead of a list does not change the hash, while any change of value does.
    """
    data = referential.model_dump(mode="json")
    for collection in ("structures", "offers"):
        data[collection] = sorted(data[collection], key=lambda item: item["id"])
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _parse(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ReferentialError([("", f"not valid YAML: {error}")]) from None
    if not isinstance(data, dict):
        raise ReferentialError([("", "the document must be a mapping with structures, offers, default_referent")])
    return data


def _json_default(value: object) -> str:
    # YAML turns unquoted 2026-01-31 into a date; hand it to pydantic as the ISO text it came from.
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a référentiel value")


def _expand_stage_ranges(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Replace stage items and ranges by stage names, in place; return the problems found."""
    offers = data.get("offers")
    if not isinstance(offers, list):
        return []
    problems: list[tuple[str, str]] = []
    for index, offer in enumerate(offers):
        for field_path in _STAGE_FIELDS:
            parent = _parent(offer, field_path)
            if parent is None or field_path[-1] not in parent:
                continue
            path = f"{_item_label('offers', index, offer)}.{'.'.join(field_path)}"
            stages, errors = _stage_names(parent[field_path[-1]], path)
            parent[field_path[-1]] = stages
            problems.extend(errors)
    return problems


def _parent(item: object, field_path: tuple[str, ...]) -> dict[str, Any] | None:
    node = item
    for name in field_path[:-1]:
        node = node.get(name) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _stage_names(value: object, path: str) -> tuple[object, list[tuple[str, str]]]:
    if value is None:
        return None, []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return value, []  # let the model report the wrong type at this path
    names: list[str] = []
    problems = []
    for position, item in enumerate(items):
        try:
            names.extend(_expand_item(item))
        except (TypeError, ValueError) as error:
            problems.append((f"{path}[{position}]", str(error)))
    return sorted(set(names)), problems


def _expand_item(item: object) -> list[str]:
    if not isinstance(item, str):
        raise TypeError(f"a stage is a string, not {item!r}")
    if RANGE_SEPARATOR not in item:
        return [_stage(item)]
    first, _, last = (part.strip() for part in item.partition(RANGE_SEPARATOR))
    low, high = _ranked_stage(first), _ranked_stage(last)
    if (stage_rank(low) or 0) > (stage_rank(high) or 0):
        raise ValueError(f"range {item!r} is reversed: {low} comes after {high}")
    return [stage.value for stage in stages_between(low, high)]


def _stage(name: str) -> str:
    try:
        return Stage(name.strip()).value
    except ValueError:
        raise ValueError(f"unknown stage {name.strip()!r}") from None


def _ranked_stage(name: str) -> Stage:
    stage = Stage(_stage(name))
    if stage_rank(stage) is None:
        raise ValueError(f"{stage} has no rank and cannot bound a range")
    return stage


def _compress_stage_ranges(offer: dict[str, Any]) -> None:
    for field_path in _STAGE_FIELDS:
        parent = _parent(offer, field_path)
        if parent is None or not parent.get(field_path[-1]):
            continue
        stages = frozenset(Stage(name) for name in parent[field_path[-1]])
        bounds = as_stage_range(stages)
        parent[field_path[-1]] = (
            f"{bounds[0]}{RANGE_SEPARATOR}{bounds[1]}" if bounds else [s.value for s in sorted_stages(stages)]
        )


def _validation_problems(error: ValidationError, data: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for detail in error.errors():
        message = detail["msg"].removeprefix("Value error, ")
        if detail["loc"]:
            problems.append((_loc_path(detail["loc"], data), message))
        else:
            # Whole-référentiel checks (ids, references) give one "path: message" per line.
            problems.extend(_split_path(line) for line in message.splitlines())
    return problems


def _split_path(line: str) -> tuple[str, str]:
    path, separator, message = line.partition(": ")
    return (path, message) if separator else ("", line)


def _loc_path(loc: tuple[int | str, ...], data: object) -> str:
    """``offers[3](id=PJ90-INFO).zone.include[0]`` from pydantic's ``('offers', 3, 'zone', 'include', 0)``."""
    path = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            path += f"[{part}]{_id_suffix(node)}"
        else:
            node = node.get(part) if isinstance(node, dict) else None
            path += f".{part}" if path else part
    return path


def _item_label(collection: str, index: int, item: object) -> str:
    return f"{collection}[{index}]{_id_suffix(item)}"


def _id_suffix(item: object) -> str:
    item_id = item.get("id") if isinstance(item, dict) else None
    return f"(id={item_id})" if isinstance(item_id, str) else ""
