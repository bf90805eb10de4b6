"""The desk's référentiel forms (pure): a form's fields → the body orientation's admin API takes, and back.

Orientation owns the référentiel and validates every change (``services/orientation/http.py``): a body
is the **whole** structure or offer, so a form edits some fields of the item as the API returned it and
keeps the others as they were (a contact's quiet hours, an offer's thematiques, amounts of its
eligibility…). What is checked here is only what a form field can get wrong on its own (a number that
is not one, a zone code of no known kind); everything else is orientation's 422, shown with its path.

Field names are French, the form's; the body's are the API's. ``preview_key`` binds a save to the
preview the person saw: the same body on the same revision, or the save shows the diff again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from schemas.referential import RecordStatus, StructureTypology
from schemas.stages import Stage

__all__ = [
    "MAX_CONTACTS",
    "PARC_CHOICES",
    "ContactRow",
    "EditFormError",
    "FormFields",
    "OfferForm",
    "StructureForm",
    "new_offer_payload",
    "offer_fields",
    "offer_form",
    "offer_payload",
    "preview_key",
    "structure_fields",
    "structure_form",
    "structure_payload",
    "zone_text",
]

FormFields = Mapping[str, Sequence[str]]
"""A posted form: every field name with its values (checkboxes repeat a name)."""

MAX_CONTACTS: Final = 100
"""Contact rows a structure's form reads (its contacts plus one empty row to add one); a contact beyond
them is not on the form and is kept as it is."""

PARC_CHOICES: Final = ("", "SOCIAL", "PRIVE", "ALL")
"""The offer's parc filter: none (no constraint), social, private, both."""

_COMMUNE = re.compile(r"^[0-9][0-9AB][0-9]{3}$")
_EPCI = re.compile(r"^\d{9}$")
_DEPARTEMENT = re.compile(r"^(\d{2}|2[AB]|97\d)$")
_SPLIT = re.compile(r"[\s,;]+")
_REF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # schemas.referential.RefId
_INT4_MAX = 2**31 - 1


class EditFormError(ValueError):
    """Fields the form itself got wrong: ``problems`` are ``(field, message in French)``."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One contact row of the structure's form (``id`` empty on the row that adds one)."""

    id: str
    label: str
    email: str
    mobile: str
    by_email: bool
    by_sms: bool
    generic: bool


_EMPTY_CONTACT = ContactRow(id="", label="", email="", mobile="", by_email=False, by_sms=False, generic=False)


@dataclass(frozen=True, slots=True)
class StructureForm:
    """What the structure's form shows: its fields' values, the existing contacts and an empty row."""

    nom: str
    typologie: str
    code_insee: str
    status: str
    contacts: tuple[ContactRow, ...]
    removed: frozenset[str] = frozenset()
    """Contacts ticked « Retirer ce contact »."""


@dataclass(frozen=True, slots=True)
class OfferForm:
    """What the offer's form shows."""

    nom: str
    description: str
    priority: str
    stages: frozenset[str]
    mandatory_stages: frozenset[str]
    parc: str
    zone: str
    exclude_communes: str
    capacity: str
    status: str
    id: str = ""
    """A new offer's identifier (an existing offer's is in the address)."""
    type: str = ""
    """A new offer's data·inclusion type (an existing offer keeps its own)."""


def _one(form: FormFields, name: str) -> str:
    values = form.get(name, ())
    return values[-1].strip() if values else ""


def _checked(form: FormFields, name: str) -> bool:
    return bool(form.get(name))


def _check_choice(value: str, name: str, allowed: Sequence[str], problems: list[tuple[str, str]]) -> None:
    if value not in allowed:
        problems.append((name, "choisissez une valeur de la liste"))


def _stages(chosen: frozenset[str], name: str, problems: list[tuple[str, str]]) -> list[str]:
    if any(value not in Stage.__members__ for value in chosen):
        problems.append((name, "étape inconnue"))
    # In procedure order (the enum's): the body then reads like the référentiel file.
    return [stage.value for stage in Stage if stage.value in chosen]


def _integer(text: str, name: str, problems: list[tuple[str, str]], *, minimum: int) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"-?\d{1,10}", text) or not minimum <= int(text) <= _INT4_MAX:
        problems.append((name, f"un nombre entier d'au moins {minimum} est attendu"))
        return None
    return int(text)


def structure_fields(form: FormFields) -> StructureForm:
    """The structure's form as posted (nothing checked yet: shown again as typed when a check fails).
    A contact row with « supprimer » ticked, or the new row left without an id, is left out."""
    rows, removed = [], set()
    for index in range(MAX_CONTACTS):
        prefix = f"contact-{index}-"
        contact_id = _one(form, prefix + "id")
        if not contact_id:
            continue
        if _checked(form, prefix + "supprimer"):
            removed.add(contact_id)
            continue
        rows.append(
            ContactRow(
                id=contact_id,
                label=_one(form, prefix + "libelle"),
                email=_one(form, prefix + "email"),
                mobile=_one(form, prefix + "mobile"),
                by_email=_checked(form, prefix + "canal-email"),
                by_sms=_checked(form, prefix + "canal-sms"),
                generic=_checked(form, prefix + "generique"),
            )
        )
    return StructureForm(
        nom=_one(form, "nom"),
        typologie=_one(form, "typologie"),
        code_insee=_one(form, "code_insee"),
        status=_one(form, "statut"),
        contacts=(*rows, _EMPTY_CONTACT),
        removed=frozenset(removed),
    )


def structure_payload(current: Mapping[str, Any], form: StructureForm) -> dict[str, Any]:
    """The structure ``current`` (as the API returned it) with the form's name, kind, commune, status and
    contacts: edited, removed (ticked), added (a new id); a contact keeps the fields the form does not show
    (its quiet hours). Raises ``EditFormError``."""
    problems: list[tuple[str, str]] = []
    _check_choice(form.typologie, "typologie", [k.value for k in StructureTypology], problems)
    _check_choice(form.status, "statut", [s.value for s in RecordStatus], problems)
    if form.code_insee and not _COMMUNE.match(form.code_insee):
        problems.append(("code_insee", "un code INSEE de commune a 5 caractères (90010, 2A004)"))
    if problems:
        raise EditFormError(problems)
    edited = {row.id: row for row in form.contacts if row.id}
    contacts = []
    # The contacts in their order, edited; one the form did not carry is kept as it is, never dropped.
    for contact in current.get("contacts", ()):
        if contact["id"] not in form.removed:
            row = edited.pop(contact["id"], None)
            contacts.append(_contact(contact, row) if row else dict(contact))
    contacts.extend(_contact({"id": row.id}, row) for row in edited.values() if row.id not in form.removed)
    return {
        **current,
        "nom": form.nom,
        "typologie": form.typologie,
        "code_insee": form.code_insee or None,
        "status": form.status,
        "contacts": contacts,
    }


def _contact(contact: Mapping[str, Any], row: ContactRow) -> dict[str, Any]:
    return {
        **contact,
        "label": row.label,
        "email": row.email or None,
        "mobile": row.mobile or None,
        "channels_enabled": {"email": row.by_email, "sms": row.by_sms},
        "is_generic_mailbox": row.generic,
    }


def _zone_entries(text: str, problems: list[tuple[str, str]]) -> list[dict[str, str]]:
    entries = []
    for code in (c for c in _SPLIT.split(text.upper()) if c):
        if _EPCI.match(code):
            entries.append({"kind": "EPCI", "code": code})
        elif _COMMUNE.match(code):
            entries.append({"kind": "COMMUNE", "code": code})
        elif _DEPARTEMENT.match(code):
            entries.append({"kind": "DEPARTEMENT", "code": code})
        else:
            problems.append(("zone", f"« {code[:12]} » n'est ni un département, ni une commune, ni un EPCI"))
    if not entries and not problems:
        problems.append(("zone", "indiquez au moins un territoire"))
    return entries


def offer_fields(form: FormFields) -> OfferForm:
    """The offer's form as posted (nothing checked yet)."""
    return OfferForm(
        nom=_one(form, "nom"),
        description=_one(form, "description"),
        priority=_one(form, "priorite"),
        stages=frozenset(value for value in form.get("etapes", ()) if value),
        mandatory_stages=frozenset(value for value in form.get("obligatoires", ()) if value),
        parc=_one(form, "parc"),
        zone=_one(form, "zone"),
        exclude_communes=_one(form, "zone_exclues"),
        capacity=_one(form, "capacite"),
        status=_one(form, "statut"),
        id=_one(form, "identifiant"),
        type=_one(form, "type"),
    )


def offer_payload(current: Mapping[str, Any], form: OfferForm) -> dict[str, Any]:
    """The offer ``current`` with the form's name, description, priority, stages, mandatory stages, parc,
    zone, weekly capacity and status; its other eligibility rules are kept. Raises ``EditFormError``.

    The zone field lists codes, each read by its shape: 2 or 3 characters a département (``90``,
    ``2A``, ``974``), 5 a commune's INSEE code, 9 digits an EPCI's SIREN. No stage ticked: every stage."""
    problems: list[tuple[str, str]] = []
    priority = _integer(form.priority, "priorite", problems, minimum=-_INT4_MAX)
    capacity = _integer(form.capacity, "capacite", problems, minimum=1)
    _check_choice(form.status, "statut", [s.value for s in RecordStatus], problems)
    _check_choice(form.parc, "parc", PARC_CHOICES, problems)
    stages = _stages(form.stages, "etapes", problems)
    mandatory = _stages(form.mandatory_stages, "obligatoires", problems)
    excluded = [code for code in _SPLIT.split(form.exclude_communes.upper()) if code]
    if any(not _COMMUNE.match(code) for code in excluded):
        problems.append(("zone_exclues", "des codes INSEE de communes sont attendus"))
    include = _zone_entries(form.zone, problems)
    if problems:
        raise EditFormError(problems)
    eligibility = {
        key: value for key, value in dict(current.get("eligibility") or {}).items() if key not in {"stages", "parc"}
    }
    if stages:
        eligibility["stages"] = stages
    if form.parc:
        eligibility["parc"] = form.parc
    return {
        **current,
        "nom": form.nom,
        "description": form.description,
        "priority": priority or 0,
        "max_new_assignments_per_week": capacity,
        "status": form.status,
        "eligibility": eligibility,
        "mandatory_stages": mandatory,
        "zone": {"include": include, "exclude_communes": excluded},
    }


def new_offer_payload(structure_id: str, form: OfferForm, types: Sequence[str]) -> dict[str, Any]:
    """A new offer of ``structure_id``: the form's identifier and type (one of ``types``, orientation's
    data·inclusion types), then every field an existing offer's form has. Raises ``EditFormError``."""
    problems: list[tuple[str, str]] = []
    if not _REF_ID.match(form.id):
        problems.append(("identifiant", "lettres, chiffres, « . », « _ » ou « - », 64 caractères au plus"))
    _check_choice(form.type, "type", types, problems)
    try:
        body = offer_payload({"id": form.id, "structure_id": structure_id, "type": form.type}, form)
    except EditFormError as error:
        problems.extend(error.problems)
    if problems:
        raise EditFormError(problems)
    return body


def zone_text(zone: Mapping[str, Any] | None) -> str:
    """The zone field's value for an offer's zone as the API returns it (``90`` or ``90010, 90011``)."""
    return ", ".join(entry["code"] for entry in (zone or {}).get("include", ()))


def structure_form(item: Mapping[str, Any]) -> StructureForm:
    """The structure's form filled with ``item`` (as the API returns it, or as a body built from a form)."""
    rows = [
        ContactRow(
            id=c["id"],
            label=c.get("label") or "",
            email=c.get("email") or "",
            mobile=c.get("mobile") or "",
            by_email=bool((c.get("channels_enabled") or {}).get("email")),
            by_sms=bool((c.get("channels_enabled") or {}).get("sms")),
            generic=bool(c.get("is_generic_mailbox")),
        )
        for c in item.get("contacts", ())
    ]
    return StructureForm(
        nom=item.get("nom") or "",
        typologie=item.get("typologie") or "",
        code_insee=item.get("code_insee") or "",
        status=item.get("status") or RecordStatus.ACTIVE.value,
        contacts=(*rows[: MAX_CONTACTS - 1], _EMPTY_CONTACT),
    )


def offer_form(item: Mapping[str, Any]) -> OfferForm:
    """The offer's form filled with ``item``."""
    eligibility = item.get("eligibility") or {}
    capacity = item.get("max_new_assignments_per_week")
    return OfferForm(
        nom=item.get("nom") or "",
        description=item.get("description") or "",
        priority=str(item.get("priority") or 0),
        stages=frozenset(eligibility.get("stages") or ()),
        mandatory_stages=frozenset(item.get("mandatory_stages") or ()),
        parc=eligibility.get("parc") or "",
        zone=zone_text(item.get("zone")),
        exclude_communes=", ".join((item.get("zone") or {}).get("exclude_communes", ())),
        capacity="" if capacity is None else str(capacity),
        status=item.get("status") or RecordStatus.ACTIVE.value,
    )


def preview_key(body: Mapping[str, Any], revision: str) -> str:
    """A digest of ``body`` on ``revision``: the preview's form carries it, the save checks the body it
    rebuilt from the same fields has the same one (else the person did not see that diff)."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{revision}\n{canonical}".encode()).hexdigest()
