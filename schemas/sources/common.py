"""Blocks shared by the inbound source formats (CJ acts and bailleur notices).

Design rule: a source model is **strict about structure and lenient about content**.

- Structure is checked here: unknown fields are refused (``extra="forbid"``, with the JSON path in the
  rejection), scalars must have the right JSON type, enumerations must use a known value, strings have the
  canonical record's length limits. A violation becomes ``SCHEMA_INVALID``.
- Content that has its own rejection code is kept raw and checked by ingest's normaliser: amounts
  (``AMOUNT_INVALID``, ``DEBT_NEGATIVE``, ``RENT_NEGATIVE``), dates (``DATE_INVALID``, ``DATE_IN_FUTURE``,
  ``DATE_OUT_OF_RANGE`` outside 1900-01-01 – 2100-12-31),
  the stage (``STAGE_UNKNOWN``), the address (``ADDRESS_MISSING``, ``COMMUNE_*``), the tenants
  (``TENANT_MISSING``) and per-stage requirements (``REQUIRED_FOR_STAGE_MISSING:<field>``). Those fields
  are therefore optional or typed ``Any`` here, on purpose.

The models validate the Python value of ``json.loads(raw, parse_float=Decimal)`` so amounts keep their exact
decimal value. Because the models are strict, enumerations are marked :data:`Lax` so that their JSON string
form is accepted (and only that: an enumeration never accepts a number).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import ConfigDict, Field, JsonValue, PlainSerializer, Strict, WithJsonSchema
from pydantic.config import JsonDict

from schemas.common import Contract
from schemas.procedure import (
    E164,
    Allocataire,
    ClotureReason,
    Composition,
    LandlordType,
    Parc,
    Siren,
    TenantRole,
)
from schemas.stages import Stage

__all__ = [
    "Lax",
    "RawAmount",
    "RawDate",
    "RawNumber",
    "SourceAddress",
    "SourceCaf",
    "SourceCloture",
    "SourceContact",
    "SourceDebt",
    "SourceDwelling",
    "SourceEmitter",
    "SourceHousehold",
    "SourceLandlord",
    "SourceLease",
    "SourceRecord",
    "SourceTenant",
]

_T = TypeVar("_T")

Lax = Annotated[_T, Strict(False)]
"""An enumeration given as its JSON string value (strict models would demand the Python enum member)."""


def _plain_number(value: Any) -> Any:
    """A decimal as the JSON number it stands for: integral ones without a fraction (``2400.0`` → ``2400``).

    Amounts are parsed as exact decimals; serialised back (ingest hashes the content of an act this way),
    ``2400`` and ``2400.0`` must be the same number, and an amount's float is exact for 2 decimals.
    """
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    return value


_PlainNumber = PlainSerializer(_plain_number, when_used="json")

RawAmount = Annotated[Any, WithJsonSchema({"type": ["number", "null"], "minimum": 0}), _PlainNumber]
"""Euro amount. Must be a JSON number with at most 2 decimals; kept raw so that a string such as
``"1 200,50"`` becomes ``AMOUNT_INVALID`` and a negative debt ``DEBT_NEGATIVE`` rather than a schema error."""

RawNumber = Annotated[Any, WithJsonSchema({"type": ["number", "null"]}), _PlainNumber]
"""A JSON number (coordinates), kept raw for the same reason as :data:`RawAmount`."""

RawDate = Annotated[str, Field(max_length=32), WithJsonSchema({"type": "string", "format": "date"})]
"""ISO date ``YYYY-MM-DD``. Must be a JSON string; its content is checked by ingest (``DATE_INVALID``,
``DATE_OUT_OF_RANGE``)."""


def _document_stages(schema: JsonDict, model_class: type[Any]) -> None:
    """Publish the format's accepted stage codes in its JSON Schema (validation keeps any string)."""
    stages: frozenset[Stage] = getattr(model_class, "STAGES", frozenset())
    properties = schema["properties"]
    if isinstance(properties, dict) and stages:
        codes: list[JsonValue] = [stage.value for stage in sorted(stages)]
        properties["stage"] = {"type": "string", "enum": codes}


_Name = Annotated[str, Field(min_length=1, max_length=100)]
_Label = Annotated[str, Field(min_length=1, max_length=200)]
_Ref = Annotated[str, Field(min_length=1, max_length=128)]


class SourceEmitter(Contract):
    """Who sent the document, as self-declared; ingest checks ``siret`` against the authenticated emitter."""

    siret: str = Field(pattern=r"^\d{14}$")
    name: _Label | None = None


class SourceTenant(Contract):
    last_name: _Name
    first_name: _Name
    birth_date: RawDate | None = None
    role: Lax[TenantRole] = TenantRole.TITULAIRE


class SourceContact(Contract):
    mobile: E164 | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)


class SourceCaf(Contract):
    allocataire: Lax[Allocataire] = Allocataire.INCONNU
    organisme: Literal["CAF", "MSA"] | None = None
    numero_allocataire: str | None = Field(default=None, min_length=1, max_length=32)
    tiers_payant: bool | None = None


class SourceHousehold(Contract):
    composition: Lax[Composition] = Composition.INCONNU
    children_count: int | None = Field(default=None, ge=0, le=30)
    contact: SourceContact | None = None
    caf: SourceCaf | None = None
    monthly_resources: RawAmount = None
    surendettement: bool | None = None


class SourceAddress(Contract):
    """Dwelling address. Every field is optional here: ingest reports ``ADDRESS_MISSING`` itself.

    ``commune_insee`` may be omitted when ``postal_code`` + ``commune_name`` identify one current commune.
    """

    line1: str | None = Field(default=None, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, pattern=r"^\d{5}$")
    commune_insee: str | None = Field(default=None, max_length=16)
    """Checked against the COG by ingest (``COMMUNE_UNKNOWN``), so its pattern is not enforced here."""
    commune_name: str | None = Field(default=None, max_length=100)
    ban_id: str | None = Field(default=None, max_length=64)
    lat: RawNumber = None
    lon: RawNumber = None


class SourceDwelling(Contract):
    address: SourceAddress | None = None
    parc: Lax[Parc] | None = None
    """Omitted: derived from ``landlord.type``."""


class SourceLandlord(Contract):
    type: Lax[LandlordType]
    name: _Label | None = None
    siren: Siren | None = None


class SourceLease(Contract):
    start_date: RawDate | None = None
    rent_excl_charges: RawAmount = None
    charges: RawAmount = None


class SourceDebt(Contract):
    amount: RawAmount = None
    as_of: RawDate | None = None
    first_unpaid_month: str | None = Field(default=None, max_length=16)
    """``YYYY-MM``."""
    months_unpaid: int | None = Field(default=None, ge=0, le=600)


class SourceCloture(Contract):
    reason: Lax[ClotureReason] | None = None


class SourceRecord(Contract):
    """Fields every source format shares. Subclasses pin ``format`` and list their accepted stages.

    ``stage`` is a plain string so that a code outside :attr:`STAGES` becomes ``STAGE_UNKNOWN``.
    ``tenants`` may be empty here: ingest reports ``TENANT_MISSING``.
    """

    model_config = ConfigDict(json_schema_extra=_document_stages)

    FORMAT_ID: ClassVar[str]
    STAGES: ClassVar[frozenset[Stage]]

    emitter: SourceEmitter
    external_ref: _Ref
    procedure_ref: _Ref | None = None
    stage: str = Field(max_length=64)
    act_date: RawDate
    tenants: list[SourceTenant] = Field(default_factory=list, max_length=20)
    household: SourceHousehold | None = None
    dwelling: SourceDwelling | None = None
    landlord: SourceLandlord
    lease: SourceLease | None = None
    debt: SourceDebt | None = None
    cloture: SourceCloture | None = None
