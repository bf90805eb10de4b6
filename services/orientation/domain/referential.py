"""The référentiel of partner structures and their offers (docs/domain.md §4).

Field names follow data·inclusion (``nom``, ``typologie``, ``reseaux_porteurs``, ``thematiques``,
``modes_mobilisation``, ``mobilisable_par``, ``conditions_acces``, ``date_maj``) and HSDS
(``assured_date``, ``status``) where those exist; the eviction-specific eligibility (stages, parc,
debt, resources…) is the local extension data·inclusion lacks (docs/domain.md §4).

Every model is immutable and validated once, at construction: a ``Referential`` that exists is
consistent (unique ids, offers pointing at known structures, enabled channels with addresses, stage
sets that can match, one default referent).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, PlainSerializer, model_validator

from schemas.common import Contract
from schemas.procedure import Composition, LandlordType
from schemas.referential import (
    CommuneCode,
    Contact,
    RecordStatus,
    RefId,
    StructureTypology,
    Zone,
    ZoneEntry,
    ZoneKind,
)
from schemas.stages import Stage, stage_rank, stages_between

__all__ = [
    "INT4_MAX",
    "INT4_MIN",
    "AllocataireFilter",
    "Eligibility",
    "MobilisablePar",
    "ModeMobilisation",
    "Offer",
    "ParcFilter",
    "Referential",
    "Structure",
    "TypeService",
    "Zone",
    "ZoneEntry",
    "ZoneKind",
    "as_stage_range",
    "int4",
    "nul_paths",
    "sorted_stages",
]

INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1
"""PostgreSQL's ``integer`` (int4): the columns of priorities, capacities, counts and versions."""


# Sort key of every stage, computed once: matching sorts stage sets for every explanation it writes.
_STAGE_ORDER: dict[Stage, tuple[int, int]] = {
    stage: (stage_rank(stage) or 1000, position) for position, stage in enumerate(Stage)
}


def sorted_stages(stages: Iterable[Stage]) -> list[Stage]:
    """Stages in procedure order (by rank), side events (no rank) last in enum order."""
    return sorted(stages, key=_STAGE_ORDER.__getitem__)


@functools.lru_cache(maxsize=1024)
def as_stage_range(stages: frozenset[Stage]) -> tuple[Stage, Stage] | None:
    """``(first, last)`` when ``stages`` is exactly ``stages_between(first, last)`` with 3 stages or more.

    Shorter runs read better as a list; a set with a gap or a side event is not a range. Cached: a
    référentiel has few distinct stage sets and matching formats them for every evaluated offer.
    """
    ordered = sorted_stages(stages)
    if len(ordered) < 3 or any(stage_rank(stage) is None for stage in ordered):
        return None
    first, last = ordered[0], ordered[-1]
    return (first, last) if stages_between(first, last) == stages else None


def int4(value: int) -> bool:
    """Whether ``value`` fits a PostgreSQL ``integer`` column (a référentiel version, a priority…)."""
    return INT4_MIN <= value <= INT4_MAX


def nul_paths(value: object, path: str = "") -> list[str]:
    """Paths (``contacts[0].label``) of the strings in ``value`` (a model's dump) that hold a NUL character,
    which PostgreSQL cannot store in ``text``: refused at the edge rather than by the database."""
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in nul_paths(item, f"{path}.{key}" if path else key)]
    if isinstance(value, list | tuple | frozenset):
        return [found for index, item in enumerate(value) for found in nul_paths(item, f"{path}[{index}]")]
    return []


def _sorted_values(values: frozenset[Any]) -> list[Any]:
    return sorted(values)


def _amount_json(value: Decimal) -> int | float:
    # A number, not pydantic's default string, so the YAML dump reads "debt_max: 6000"; amounts have at
    # most 2 decimals, which a float's shortest repr gives back exactly.
    return int(value) if value == value.to_integral_value() else float(value)


# Sets serialise sorted so that dumps and content hashes do not depend on hash randomisation.
StageSet = Annotated[frozenset[Stage], PlainSerializer(sorted_stages, return_type=list[Stage], when_used="json")]
Amount = Annotated[
    Decimal, Field(ge=0, max_digits=12, decimal_places=2), PlainSerializer(_amount_json, when_used="json")
]
Int4 = Annotated[int, Field(ge=INT4_MIN, le=INT4_MAX)]
Ratio = Annotated[Decimal, Field(ge=0, max_digits=6, decimal_places=2), PlainSerializer(_amount_json, when_used="json")]
_SIREN_PATTERN = r"^\d{9}$"
Siren = Annotated[str, Field(pattern=_SIREN_PATTERN)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9]+(-{1,2}[a-z0-9]+)*$")]
_SORTED = PlainSerializer(_sorted_values, when_used="json")


class TypeService(StrEnum):
    """data·inclusion ``TypeService``."""

    ACCOMPAGNEMENT = "accompagnement"
    AIDE_FINANCIERE = "aide-financiere"
    AIDE_MATERIELLE = "aide-materielle"
    ATELIER = "atelier"
    FORMATION = "formation"
    INFORMATION = "information"


class ModeMobilisation(StrEnum):
    """data·inclusion ``modes_mobilisation``: how a professional or a user reaches the offer."""

    ENVOYER_UN_COURRIEL = "envoyer-un-courriel"
    SE_PRESENTER = "se-presenter"
    TELEPHONER = "telephoner"
    UTILISER_LIEN_MOBILISATION = "utiliser-lien-mobilisation"


class MobilisablePar(StrEnum):
    """data·inclusion ``mobilisable_par``."""

    USAGERS = "usagers"
    PROFESSIONNELS = "professionnels"


class ParcFilter(StrEnum):
    SOCIAL = "SOCIAL"
    PRIVE = "PRIVE"
    ALL = "ALL"


class AllocataireFilter(StrEnum):
    OUI = "OUI"
    NON = "NON"
    ANY = "ANY"


class Eligibility(Contract):
    """Typed eligibility of an offer. Every field is optional; ``None`` means "no constraint".

    When the household value is unknown, ceilings (``*_max``) and categorical filters pass and are
    flagged UNKNOWN ("to check"); floors (``*_min``) and ``requires_surendettement`` fail, so an offer
    meant for large debts is never triggered without a known debt (docs/domain.md §4.3).
    """

    stages: StageSet | None = None
    parc: ParcFilter | None = None
    landlord_types: Annotated[frozenset[LandlordType], _SORTED] | None = None
    landlord_siren_in: Annotated[frozenset[Siren], _SORTED] | None = None
    debt_min: Amount | None = None
    debt_max: Amount | None = None
    months_of_rent_min: Ratio | None = None
    resources_max: Amount | None = None
    allocataire: AllocataireFilter | None = None
    compositions: Annotated[frozenset[Composition], _SORTED] | None = None
    children_min: int | None = Field(default=None, ge=0, le=INT4_MAX)
    requires_surendettement: bool = Field(default=False, description="False = no constraint")
    valid_from: date | None = None
    valid_to: date | None = None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        for name in ("stages", "landlord_types", "landlord_siren_in", "compositions"):
            if getattr(self, name) == frozenset():
                raise ValueError(f"{name} is empty: the offer could never match (omit it for no constraint)")
        if self.debt_min is not None and self.debt_max is not None and self.debt_min > self.debt_max:
            raise ValueError(f"debt_min {self.debt_min} > debt_max {self.debt_max}")
        if self.valid_from is not None and self.valid_to is not None and self.valid_from > self.valid_to:
            raise ValueError(f"valid_from {self.valid_from} is after valid_to {self.valid_to}")
        return self


class _Stored(Contract):
    """An item stored in the référentiel's tables: no text of it, nested contacts included, holds a NUL."""

    @model_validator(mode="after")
    def _no_nul(self) -> Self:
        paths = nul_paths(self.model_dump())
        if paths:
            raise ValueError(f"text may not contain a NUL character (\\u0000): {', '.join(paths)}")
        return self


class Structure(_Stored):
    """A partner structure (data·inclusion ``Structure``, HSDS ``organization``) and its contacts."""

    id: RefId
    nom: str = Field(min_length=3, max_length=150)
    siret: str | None = Field(default=None, pattern=r"^\d{14}$")
    typologie: StructureTypology
    reseaux_porteurs: Annotated[frozenset[Slug], _SORTED] = frozenset()
    code_insee: CommuneCode | None = None
    date_maj: date | None = None
    assured_date: date | None = Field(default=None, description="HSDS: when the data was last verified")
    status: RecordStatus = RecordStatus.ACTIVE
    contacts: tuple[Contact, ...] = ()

    @property
    def deliverable(self) -> bool:
        """True when one of its contacts has a channel enabled."""
        return any(contact.deliverable for contact in self.contacts)


class Offer(_Stored):
    """A service of a structure (data·inclusion ``Service``) with its eviction-specific matching data.

    ``priority``: higher ranks first (set by the CCAPEX). ``mandatory_stages``: stages at which the
    assignment is legally or charte-mandated; it then bypasses ranking and the cap.
    ``max_new_assignments_per_week``: soft weekly capacity, ``None`` = unlimited.
    """

    id: RefId
    structure_id: RefId
    nom: str = Field(min_length=3, max_length=150)
    description: str = Field(min_length=5, max_length=10000)
    type: TypeService
    thematiques: Annotated[frozenset[Slug], _SORTED] = frozenset()
    modes_mobilisation: Annotated[frozenset[ModeMobilisation], _SORTED] = frozenset()
    mobilisable_par: Annotated[frozenset[MobilisablePar], _SORTED] = frozenset()
    conditions_acces: str | None = Field(default=None, max_length=2000)
    priority: Int4 = 0
    mandatory_stages: StageSet = frozenset()
    eligibility: Eligibility = Eligibility()
    zone: Zone
    max_new_assignments_per_week: int | None = Field(default=None, ge=1, le=INT4_MAX)
    date_maj: date | None = None
    suspension_date: date | None = Field(default=None, description="DORA: suspended from this date on")
    status: RecordStatus = RecordStatus.ACTIVE

    @model_validator(mode="after")
    def _mandatory_within_stages(self) -> Self:
        # A mandatory stage outside the eligible stages could never fire: almost surely a typo.
        allowed = self.eligibility.stages
        if allowed is not None and not self.mandatory_stages <= allowed:
            outside = ", ".join(sorted_stages(self.mandatory_stages - allowed))
            raise ValueError(f"mandatory_stages {outside} not in eligibility.stages")
        return self


class Referential(Contract):
    """The whole référentiel: structures, offers and the default referent (fallback F1).

    Validated as a whole: structure, offer and contact ids are unique; every offer names a known
    structure; an offer mobilised by e-mail belongs to a structure with an e-mail contact; the default
    referent is one active structure with a deliverable contact.
    """

    default_referent: RefId
    structures: tuple[Structure, ...] = Field(min_length=1)
    offers: tuple[Offer, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = [
            *_duplicates("structures", [structure.id for structure in self.structures]),
            *_duplicates("offers", [offer.id for offer in self.offers]),
            *_duplicate_contacts(self.structures),
            *_unknown_structures(self),
            *_default_referent_problems(self),
        ]
        if problems:
            # One "path: message" per line: the YAML loader reports each as its own problem.
            raise ValueError("\n".join(problems))
        return self

    def structures_by_id(self) -> dict[str, Structure]:
        """Structures indexed by id (a fresh dict: the model stays a plain immutable value)."""
        return {structure.id: structure for structure in self.structures}

    def structure(self, structure_id: str) -> Structure:
        """The structure with this id; ``KeyError`` if there is none."""
        return self.structures_by_id()[structure_id]

    def offers_of(self, structure_id: str) -> tuple[Offer, ...]:
        """The offers of one structure, in file order."""
        return tuple(offer for offer in self.offers if offer.structure_id == structure_id)


def _item_path(collection: str, index: int, item_id: str) -> str:
    return f"{collection}[{index}](id={item_id})"


def _duplicates(collection: str, ids: list[str]) -> list[str]:
    first_seen: dict[str, int] = {}
    problems = []
    for index, item_id in enumerate(ids):
        if item_id in first_seen:
            first = _item_path(collection, first_seen[item_id], item_id)
            problems.append(f"{_item_path(collection, index, item_id)}.id: duplicate id (first at {first})")
        else:
            first_seen[item_id] = index
    return problems


def _duplicate_contacts(structures: tuple[Structure, ...]) -> list[str]:
    # Contact ids are unique across the référentiel: delivery receipts name a contact by id alone.
    first_seen: dict[str, str] = {}
    problems = []
    for s_index, structure in enumerate(structures):
        for c_index, contact in enumerate(structure.contacts):
            path = f"{_item_path('structures', s_index, structure.id)}.contacts[{c_index}](id={contact.id})"
            if contact.id in first_seen:
                problems.append(f"{path}.id: duplicate contact id (first at {first_seen[contact.id]})")
            else:
                first_seen[contact.id] = path
    return problems


def _unknown_structures(ref: Referential) -> list[str]:
    known = {structure.id: structure for structure in ref.structures}
    problems = []
    for index, offer in enumerate(ref.offers):
        path = _item_path("offers", index, offer.id)
        structure = known.get(offer.structure_id)
        if structure is None:
            problems.append(f"{path}.structure_id: unknown structure {offer.structure_id!r}")
        elif ModeMobilisation.ENVOYER_UN_COURRIEL in offer.modes_mobilisation and not any(
            contact.email for contact in structure.contacts
        ):
            # data·inclusion's quality rule: a declared mobilisation channel needs a matching contact.
            problems.append(f"{path}.modes_mobilisation: envoyer-un-courriel but structure has no e-mail contact")
    return problems


def _default_referent_problems(ref: Referential) -> list[str]:
    structure = next((s for s in ref.structures if s.id == ref.default_referent), None)
    if structure is None:
        return [f"default_referent: unknown structure {ref.default_referent!r}"]
    if structure.status is not RecordStatus.ACTIVE:
        return [f"default_referent: structure {structure.id!r} is {structure.status}"]
    if not structure.deliverable:
        # F1 and F3 end at the default referent: it must be reachable or files are lost silently.
        return [f"default_referent: structure {structure.id!r} has no contact with an enabled channel"]
    return []
