"""The référentiel as other services see it: one structure per record on a compacted topic (docs/domain.md §4).

``referentiel.changed`` is keyed by ``structure_id`` so that compaction keeps, for every structure, the
last state published. A record carries what its consumers need and no more:

- the notifier reads the structure's **contacts** (channels, addresses, quiet hours) and whether the
  structure is the **default referent** (fallback F3);
- the partner workspace and ops read the **offers** by id, name, stages and, since schema 1.1, **zone**
  (the territory an offer covers: the workspace's référentiel is searchable by commune), **description**
  and **conditions_acces** (who may benefit, in plain French: the partners' référentiel shows them).

Eligibility rules stay inside orientation: no other service decides who is eligible. The zone is where an
offer is *available*, which partners need to know; ``Zone.covering_entry`` is the one rule saying whether
it covers a commune, used by orientation's matching and by the workspace's search alike.

The value objects shared with orientation's référentiel model (``Contact``, ``Channels``, ``QuietHours``,
``StructureTypology``, ``RecordStatus``, ``Zone``) are defined here, once, so the notifier, the workspace
and orientation validate them with the same rules. Partner contacts are professional addresses, not
household data.
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, PlainSerializer, WithJsonSchema, model_validator

from schemas.common import Contract
from schemas.envelope import Envelope
from schemas.stages import Stage

__all__ = [
    "Channels",
    "CommuneCode",
    "Contact",
    "FrenchMobile",
    "OfferSummary",
    "QuietHours",
    "RecordStatus",
    "RefId",
    "ReferentialChangedEvent",
    "StructureRecord",
    "StructureTypology",
    "Zone",
    "ZoneEntry",
    "ZoneKind",
]

RefId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""A référentiel identifier (structure, offer or contact id), e.g. ``CD90`` or ``FSL90-MAINTIEN``."""

FrenchMobile = Annotated[str, Field(pattern=r"^\+33[67]\d{8}$")]
"""A French mobile number in E.164 (+336…, +337…): SMS are only sent to mobiles (RDV-Solidarités' check)."""

Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]

_COMMUNE_PATTERN = r"^[0-9][0-9AB][0-9]{3}$"  # INSEE code, Corsica's 2A/2B included
CommuneCode = Annotated[str, Field(pattern=_COMMUNE_PATTERN)]
"""A commune's INSEE code (``90010``, ``2A004``)."""


def _without_offset(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time has no UTC offset: HH:MM or HH:MM:SS")
    return value


LocalTime = Annotated[
    time,
    AfterValidator(_without_offset),
    # Not JSON Schema's "format: time", which is RFC 3339's full-time and demands an offset.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$",
            "description": "A local wall-clock time (HH:MM[:SS]), without an offset",
        }
    ),
]
"""A time of day in the contact's zone (Europe/Paris): written ``20:00:00``, never with an offset."""


class StructureTypology(StrEnum):
    """Kind of partner structure (Histologe ``PartnerType``-like, narrowed to eviction prevention)."""

    DEPARTEMENT_SERVICE_SOCIAL = "DEPARTEMENT_SERVICE_SOCIAL"
    FSL = "FSL"
    CAF_MSA = "CAF_MSA"
    BAILLEUR_SOCIAL = "BAILLEUR_SOCIAL"
    ADIL = "ADIL"
    CDAD_POINT_JUSTICE = "CDAD_POINT_JUSTICE"
    CCAS = "CCAS"
    ASSOCIATION = "ASSOCIATION"
    BANQUE_DE_FRANCE = "BANQUE_DE_FRANCE"
    SIAO = "SIAO"
    PREFECTURE_CCAPEX = "PREFECTURE_CCAPEX"
    AUTRE = "AUTRE"


class RecordStatus(StrEnum):
    """Life of a structure or an offer. Only ``active`` ones are matched; the others are kept for history."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    ARCHIVED = "archived"


class Channels(Contract):
    """Channels a contact agreed to be alerted on (RDV-Solidarités ``notify_by_*``)."""

    email: bool = False
    sms: bool = False


class QuietHours(Contract):
    """Local (Europe/Paris) hours during which SMS wait; ``start > end`` spans midnight (20:00–08:00)."""

    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end are equal")
        return self


class Contact(Contract):
    """Who a structure is alerted through: a generic mailbox or a named professional contact.

    An enabled channel must have its address: an ``email`` for ``channels_enabled.email``, a French
    ``mobile`` for ``channels_enabled.sms``. An address without its channel enabled is allowed (kept,
    not used).
    """

    id: RefId
    label: str = Field(min_length=1, max_length=150)
    email: Email | None = None
    mobile: FrenchMobile | None = None
    channels_enabled: Channels
    is_generic_mailbox: bool = False
    quiet_hours: QuietHours | None = None

    @model_validator(mode="after")
    def _enabled_channels_have_addresses(self) -> Self:
        if self.channels_enabled.email and self.email is None:
            raise ValueError("channels_enabled.email is true but email is missing")
        if self.channels_enabled.sms and self.mobile is None:
            raise ValueError("channels_enabled.sms is true but mobile is missing")
        return self

    @property
    def deliverable(self) -> bool:
        """True when at least one channel is enabled (and therefore has an address)."""
        return self.channels_enabled.email or self.channels_enabled.sms


class ZoneKind(StrEnum):
    """Zone granularity, listed from the most to the least specific (ranking criterion (a))."""

    COMMUNE = "COMMUNE"
    EPCI = "EPCI"
    DEPARTEMENT = "DEPARTEMENT"


_ZONE_CODE_PATTERNS = {
    ZoneKind.COMMUNE: _COMMUNE_PATTERN,
    ZoneKind.EPCI: r"^\d{9}$",  # SIREN
    ZoneKind.DEPARTEMENT: r"^(\d{2}|2[AB]|97\d)$",
}


class ZoneEntry(Contract):
    """One covered area: a commune (INSEE code), an EPCI (SIREN) or a département (code)."""

    kind: ZoneKind
    code: str

    @model_validator(mode="after")
    def _code_matches_kind(self) -> Self:
        if not re.fullmatch(_ZONE_CODE_PATTERNS[self.kind], self.code):
            raise ValueError(f"code {self.code!r} is not a valid {self.kind} code")
        return self

    def __str__(self) -> str:
        return f"{self.kind} {self.code}"


def _sorted_codes(values: frozenset[str]) -> list[str]:
    return sorted(values)


_ZONE_RANK = {kind: rank for rank, kind in enumerate(ZoneKind)}


class Zone(Contract):
    """Where an offer applies (data·inclusion ``zone_eligibilite`` + Histologe's include/exclude)."""

    include: tuple[ZoneEntry, ...] = Field(min_length=1)
    exclude_communes: Annotated[frozenset[CommuneCode], PlainSerializer(_sorted_codes, when_used="json")] = frozenset()

    def covering_entry(
        self, commune_insee: str | None, departement: str | None, epci_siren: str | None
    ) -> ZoneEntry | None:
        """The most specific entry covering a commune (its INSEE code, département and EPCI's SIREN, any of
        them possibly unknown), ``None`` when the commune is excluded or no entry covers it. The rule
        orientation's matching applies and the workspace's search by commune shows."""
        if commune_insee in self.exclude_communes:
            return None
        best: ZoneEntry | None = None
        for entry in self.include:
            kind = entry.kind
            code = (
                commune_insee
                if kind is ZoneKind.COMMUNE
                else departement
                if kind is ZoneKind.DEPARTEMENT
                else epci_siren
            )
            if entry.code == code and (best is None or _ZONE_RANK[kind] < _ZONE_RANK[best.kind]):
                best = entry
        return best


class OfferSummary(Contract):
    """An offer as partners and ops see it: what it is and at which stages it applies."""

    id: RefId
    nom: str = Field(min_length=1, max_length=150)
    status: RecordStatus
    stages: list[Stage] = Field(description="Stages the offer is eligible at; empty = every stage")
    mandatory_stages: list[Stage]
    zone: Zone | None = Field(
        default=None,
        description="Since schema 1.1: the territory the offer covers; absent in 1.0 records (unknown)",
    )
    description: str | None = Field(
        default=None, max_length=10000, description="Since schema 1.1: what the offer is, for partners"
    )
    conditions_acces: str | None = Field(
        default=None,
        max_length=2000,
        description="Since schema 1.1: who may benefit, in the référentiel's words (data·inclusion); may be absent",
    )


class StructureRecord(Contract):
    """Payload of ``referentiel.changed``: one structure, its offers and contacts, in a référentiel version."""

    structure_id: RefId
    nom: str = Field(min_length=1, max_length=150)
    typologie: StructureTypology
    status: RecordStatus
    referentiel_version: int = Field(ge=1)
    default_referent: bool = Field(description="The structure that receives files no offer matched (F1, F3)")
    contacts: list[Contact]
    offers: list[OfferSummary]


class ReferentialChangedEvent(Envelope):
    """The state of one structure in a référentiel version; Kafka key = ``structure_id`` (compacted topic).

    Schema 1.1 added ``OfferSummary.zone``, ``description`` and ``conditions_acces`` (optional): a 1.0 record
    is still read, its offers' zones unknown.
    """

    SCHEMA_VERSION: ClassVar[str] = "1.1"
    event_type: Literal["referentiel.changed"] = "referentiel.changed"
    schema_version: Literal["1.0", "1.1"]
    payload: StructureRecord

    @property
    def key(self) -> str:
        """The Kafka key: compaction keeps the last record per structure."""
        return self.payload.structure_id
