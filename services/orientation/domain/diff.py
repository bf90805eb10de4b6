"""What changed between two référentiels: per structure, per offer, per field (pure).

Used three ways: ``referential diff`` shows it to a person, every new version stores it as its summary,
and the structures it names are the ones republished on the compacted référentiel topic. Entities are
matched by id, so reordering a file changes nothing; lists of items with an ``id`` (contacts) are
matched by id too, other lists (stages, zones) are compared as whole values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.orientation.domain.referential import Offer, Referential, Structure

__all__ = ["ChangeKind", "EntityChange", "EntityKind", "FieldChange", "ReferentialDiff", "diff_referentials"]


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


class EntityKind(StrEnum):
    STRUCTURE = "structure"
    OFFER = "offer"
    REFERENTIAL = "referential"


_MARKS = {ChangeKind.ADDED: "+", ChangeKind.REMOVED: "-", ChangeKind.CHANGED: "~"}


class _Absent:
    """A field or item present on one side only."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One value that differs. ``path`` is relative to the entity (``contacts(id=CD90-MAIL).email``);
    ``old`` / ``new`` are JSON values, ``ABSENT`` where the field or item exists on one side only."""

    path: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


@dataclass(frozen=True, slots=True)
class EntityChange:
    """A structure or offer added, removed or changed (with its field changes), or the default referent."""

    entity: EntityKind
    id: str
    kind: ChangeKind
    fields: tuple[FieldChange, ...] = ()

    def lines(self) -> list[str]:
        """``~ offer PJ90-INFO`` then one indented line per changed field."""
        return [f"{_MARKS[self.kind]} {self.entity} {self.id}", *(f"    {field}" for field in self.fields)]


@dataclass(frozen=True, slots=True)
class ReferentialDiff:
    """Every change from one référentiel to another, structures first, then offers, each sorted by id.

    ``affected_structures``: the structures whose published record changes: changed, added or removed
    ones, the structures of changed offers (before and after a move), and the old and new default
    referent when it changes.
    """

    changes: tuple[EntityChange, ...]
    affected_structures: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def text(self) -> str:
        """The diff for a person; ``no change`` when there is none."""
        if not self.changes:
            return "no change"
        return "\n".join(line for change in self.changes for line in change.lines())

    def summary(self) -> list[str]:
        """One line per changed entity (``~ structure CD90 (2 fields)``), as stored with a version."""
        return [f"{_MARKS[c.kind]} {c.entity} {c.id}{_count(len(c.fields))}" for c in self.changes]


def diff_referentials(old: Referential | None, new: Referential) -> ReferentialDiff:
    """The changes that turn ``old`` into ``new``; ``old=None`` (no référentiel yet) adds everything."""
    changes: list[EntityChange] = []
    old_default = old.default_referent if old is not None else None
    if old_default != new.default_referent:
        field = FieldChange("default_referent", old_default if old_default else ABSENT, new.default_referent)
        changes.append(EntityChange(EntityKind.REFERENTIAL, "default_referent", ChangeKind.CHANGED, (field,)))
    old_structures = _by_id(old.structures) if old is not None else {}
    old_offers = _by_id(old.offers) if old is not None else {}
    new_offers = _by_id(new.offers)
    changes += _entity_changes(EntityKind.STRUCTURE, old_structures, _by_id(new.structures))
    offer_changes = _entity_changes(EntityKind.OFFER, old_offers, new_offers)
    changes += offer_changes
    affected = {c.id for c in changes if c.entity is EntityKind.STRUCTURE}
    for change in offer_changes:
        affected |= {side[change.id].structure_id for side in (old_offers, new_offers) if change.id in side}
    if old_default != new.default_referent:
        affected |= {new.default_referent} | ({old_default} if old_default else set())
    return ReferentialDiff(tuple(changes), frozenset(affected))


def _by_id(items: tuple[Structure, ...] | tuple[Offer, ...]) -> dict[str, Any]:
    return {item.id: item for item in items}


def _entity_changes(
    entity: EntityKind, old: Mapping[str, Structure | Offer], new: Mapping[str, Structure | Offer]
) -> list[EntityChange]:
    changes = []
    for item_id in sorted(old.keys() | new.keys()):
        before, after = old.get(item_id), new.get(item_id)
        if before is None:
            changes.append(EntityChange(entity, item_id, ChangeKind.ADDED))
        elif after is None:
            changes.append(EntityChange(entity, item_id, ChangeKind.REMOVED))
        elif before != after:
            fields = _field_changes(before.model_dump(mode="json"), after.model_dump(mode="json"), "")
            changes.append(EntityChange(entity, item_id, ChangeKind.CHANGED, tuple(fields)))
    return changes


def _field_changes(old: Any, new: Any, path: str) -> list[FieldChange]:
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in dict.fromkeys([*old, *new]):
            found += _field_changes(old.get(key, ABSENT), new.get(key, ABSENT), _join(path, key))
        return found
    if _items_with_ids(old) and _items_with_ids(new):
        old_items = {item["id"]: item for item in old}
        new_items = {item["id"]: item for item in new}
        found = []
        for item_id in dict.fromkeys([*old_items, *new_items]):
            item_path = f"{path}(id={item_id})"
            found += _field_changes(old_items.get(item_id, ABSENT), new_items.get(item_id, ABSENT), item_path)
        return found
    return [FieldChange(path, old, new)]


def _items_with_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) and "id" in item for item in value)


def _count(fields: int) -> str:
    if not fields:
        return ""
    return f" ({fields} field{'s' if fields > 1 else ''})"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
