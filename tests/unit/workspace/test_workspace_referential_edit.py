"""The desk's référentiel forms: a form's fields → orientation's admin-API body, and an item → the form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.orientation.domain.referential import Offer, Structure
from services.workspace.bootstrap import build
from services.workspace.domain.referential_edit import (
    MAX_CONTACTS,
    EditFormError,
    new_offer_payload,
    offer_fields,
    offer_form,
    offer_payload,
    preview_key,
    structure_fields,
    structure_form,
    structure_payload,
)
from services.workspace.settings import WorkspaceSettings

OFFER: dict[str, Any] = {
    "id": "PJ90-INFO",
    "structure_id": "CDAD90",
    "nom": "Information juridique",
    "description": "Consultations juridiques gratuites.",
    "type": "information",
    "thematiques": ["difficultes-administratives-ou-juridiques--prendre-en-compte-une-problematique-judiciaire"],
    "priority": 60,
    "mandatory_stages": [],
    "eligibility": {"stages": ["COMMANDEMENT_PAYER", "ASSIGNATION"], "parc": "PRIVE", "debt_max": 6000},
    "zone": {"include": [{"kind": "DEPARTEMENT", "code": "90"}], "exclude_communes": []},
    "max_new_assignments_per_week": None,
    "status": "active",
}

STRUCTURE: dict[str, Any] = {
    "id": "CCAS-BELFORT",
    "nom": "CCAS de Belfort",
    "typologie": "CCAS",
    "code_insee": "90010",
    "reseaux_porteurs": ["ccas-cias"],
    "status": "active",
    "contacts": [
        {
            "id": "CCAS-BELFORT-SMS",
            "label": "Permanence",
            "email": None,
            "mobile": "+33612345678",
            "channels_enabled": {"email": False, "sms": True},
            "is_generic_mailbox": False,
            "quiet_hours": {"start": "20:00:00", "end": "08:00:00"},
        }
    ],
}


def _offer_fields(**changes: str | list[str]) -> dict[str, list[str]]:
    fields: dict[str, str | list[str]] = {
        "nom": "Information juridique",
        "description": "Consultations juridiques gratuites.",
        "priorite": "60",
        "capacite": "",
        "statut": "active",
        "etapes": ["ASSIGNATION", "COMMANDEMENT_PAYER"],
        "obligatoires": [],
        "parc": "PRIVE",
        "zone": "90",
        "zone_exclues": "",
        **changes,
    }
    return {name: value if isinstance(value, list) else [value] for name, value in fields.items()}


def test_an_unchanged_offer_form_gives_back_the_item_and_orientation_accepts_it() -> None:
    body = offer_payload(OFFER, offer_fields(_offer_fields()))

    assert body == OFFER
    Offer.model_validate_json(json.dumps(body), strict=True)  # as the admin API validates a body


def test_the_offer_form_changes_its_fields_and_keeps_the_rules_it_does_not_show() -> None:
    fields = _offer_fields(
        priorite=" 65 ",
        capacite="4",
        etapes=["AUDIENCE", "ASSIGNATION"],
        obligatoires=["AUDIENCE"],
        parc="",
        zone="90010, 200069052 ; 2a",
        zone_exclues="90011",
    )
    body = offer_payload(OFFER, offer_fields(fields))

    assert body["priority"] == 65
    assert body["max_new_assignments_per_week"] == 4
    assert body["eligibility"] == {"stages": ["ASSIGNATION", "AUDIENCE"], "debt_max": 6000}  # parc: no constraint
    assert body["mandatory_stages"] == ["AUDIENCE"]
    assert body["zone"] == {
        "include": [
            {"kind": "COMMUNE", "code": "90010"},
            {"kind": "EPCI", "code": "200069052"},
            {"kind": "DEPARTEMENT", "code": "2A"},
        ],
        "exclude_communes": ["90011"],
    }
    assert body["thematiques"] == OFFER["thematiques"]
    Offer.model_validate_json(json.dumps(body), strict=True)


def test_no_stage_ticked_means_every_stage() -> None:
    body = offer_payload(OFFER, offer_fields(_offer_fields(etapes=[])))
    assert "stages" not in body["eligibility"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"priorite": "beaucoup"}, "priorite"),
        ({"capacite": "0"}, "capacite"),
        ({"zone": ""}, "zone"),
        ({"zone": "90, Belfort"}, "zone"),
        ({"zone_exclues": "Belfort"}, "zone_exclues"),
        ({"etapes": ["PAS_UNE_ETAPE"]}, "etapes"),
        ({"parc": "TOUS"}, "parc"),
        ({"statut": "deleted"}, "statut"),
    ],
)
def test_what_a_field_gets_wrong_on_its_own_is_named(changes: dict[str, str | list[str]], field: str) -> None:
    with pytest.raises(EditFormError) as raised:
        offer_payload(OFFER, offer_fields(_offer_fields(**changes)))
    assert [name for name, _ in raised.value.problems] == [field]


def test_an_offer_round_trips_through_its_form() -> None:
    form = offer_form(OFFER)
    assert (form.priority, form.zone, form.parc, form.capacity) == ("60", "90", "PRIVE", "")
    assert form.stages == {"COMMANDEMENT_PAYER", "ASSIGNATION"}


def _structure_fields(**changes: str) -> dict[str, list[str]]:
    fields = {
        "nom": "CCAS de Belfort",
        "typologie": "CCAS",
        "code_insee": "90010",
        "statut": "active",
        "contact-0-id": "CCAS-BELFORT-SMS",
        "contact-0-libelle": "Permanence sociale",
        "contact-0-mobile": "+33612345678",
        "contact-0-canal-sms": "1",
        **changes,
    }
    return {name: [value] for name, value in fields.items()}


def test_a_contact_keeps_its_quiet_hours_and_a_new_one_is_added() -> None:
    fields = _structure_fields(
        **{
            "contact-1-id": "CCAS-BELFORT-MAIL",
            "contact-1-libelle": "Accueil",
            "contact-1-email": "accueil@ccas-belfort.test",
            "contact-1-canal-email": "1",
            "contact-1-generique": "1",
        }
    )
    body = structure_payload(STRUCTURE, structure_fields(fields))

    first, added = body["contacts"]
    assert first["label"] == "Permanence sociale"
    assert first["quiet_hours"] == {"start": "20:00:00", "end": "08:00:00"}  # not on the form: kept
    assert added == {
        "id": "CCAS-BELFORT-MAIL",
        "label": "Accueil",
        "email": "accueil@ccas-belfort.test",
        "mobile": None,
        "channels_enabled": {"email": True, "sms": False},
        "is_generic_mailbox": True,
    }
    assert body["reseaux_porteurs"] == ["ccas-cias"]
    Structure.model_validate_json(json.dumps(body), strict=True)


def test_a_contact_marked_for_removal_and_an_empty_new_row_are_left_out() -> None:
    fields = _structure_fields(**{"contact-0-supprimer": "1", "contact-1-id": "", "contact-1-libelle": "x"})
    assert structure_payload(STRUCTURE, structure_fields(fields))["contacts"] == []


def test_a_structure_form_names_a_bad_commune_or_kind() -> None:
    with pytest.raises(EditFormError) as raised:
        structure_payload(STRUCTURE, structure_fields(_structure_fields(code_insee="Belfort", typologie="MAIRIE")))
    assert [name for name, _ in raised.value.problems] == ["typologie", "code_insee"]


def test_a_structure_form_shows_its_contacts_and_one_empty_row() -> None:
    form = structure_form(STRUCTURE)
    assert [row.id for row in form.contacts] == ["CCAS-BELFORT-SMS", ""]
    many = {**STRUCTURE, "contacts": [{**STRUCTURE["contacts"][0], "id": f"C{i}"} for i in range(MAX_CONTACTS + 3)]}
    assert len(structure_form(many).contacts) == MAX_CONTACTS  # every row the form reads back
    # A contact beyond the form's rows is not on it: saving keeps it as it is.
    body = structure_payload(many, structure_fields(_structure_fields(**{"contact-0-id": "C0"})))
    assert [c["id"] for c in body["contacts"]] == [f"C{i}" for i in range(MAX_CONTACTS + 3)]


def test_the_preview_key_binds_the_body_and_its_revision() -> None:
    key = preview_key(OFFER, "3")
    assert key == preview_key(dict(reversed(list(OFFER.items()))), "3")  # key order does not matter
    assert key != preview_key(OFFER, "4")
    assert key != preview_key({**OFFER, "priority": 61}, "3")


def test_the_orientation_settings_go_together_and_the_token_file_must_hold_one(tmp_path: Path) -> None:
    token_file = tmp_path / "orientation.token"
    token_file.write_text("pvx_workspace-token\n", "utf-8")
    secret = "a-link-secret-of-at-least-32-characters"
    assert WorkspaceSettings(link_secrets=secret).orientation_token() is None  # not configured: no forms
    configured = WorkspaceSettings(
        link_secrets=secret, orientation_url="http://orientation:8082", orientation_token_path=token_file
    )
    assert configured.orientation_token() == "pvx_workspace-token"
    assert build(configured).name == "workspace"
    with pytest.raises(ValueError, match="go together"):
        WorkspaceSettings(link_secrets=secret, orientation_url="http://orientation:8082").orientation_token()
    blank = WorkspaceSettings(link_secrets=secret, orientation_url="", orientation_token_path="")
    assert (blank.orientation_url, blank.orientation_token_path, blank.orientation_token()) == (None, None, None)
    token_file.write_text("\n", "utf-8")
    with pytest.raises(ValueError, match="no token"):
        build(configured)


def test_a_new_offer_takes_its_identifier_and_type_from_the_form() -> None:
    types = ("aide-financiere", "information")
    fields = _offer_fields(identifiant="CCAS-BELFORT-ENERGIE", type="aide-financiere")
    body = new_offer_payload("CCAS-BELFORT", offer_fields(fields), types)

    assert (body["id"], body["structure_id"], body["type"]) == (
        "CCAS-BELFORT-ENERGIE",
        "CCAS-BELFORT",
        "aide-financiere",
    )
    Offer.model_validate_json(json.dumps(body), strict=True)
    with pytest.raises(EditFormError) as raised:
        new_offer_payload("CCAS-BELFORT", offer_fields(_offer_fields(identifiant="../x", type="x", zone="")), types)
    assert [name for name, _ in raised.value.problems] == ["identifiant", "type", "zone"]
