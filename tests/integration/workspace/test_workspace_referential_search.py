"""The partners' référentiel page searched by commune, on what the real orientation published (PostgreSQL)."""

from __future__ import annotations

import html
import re
import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.integration.workspace.conftest import World

pytestmark = pytest.mark.integration

CCAS = "CCAS de Belfort"
MEDIATION = "Association Médiation Locative Sud Territoire"


async def test_the_referential_is_searchable_by_commune_name_or_code(world: World) -> None:
    procedure_id = uuid.uuid4()
    await world.notify("s01-cj-commandement-payer", procedure_id=procedure_id, short_ref="90-2026-000001")
    assignment = await world.assignment(procedure_id, "CCAS-BELFORT")
    async with world.client() as browser:
        await browser.get(world.link(assignment["assignment_id"], "CCAS-BELFORT"))
        belfort = html.unescape((await browser.get("/referentiel", params={"commune": "belfort"})).text)
        delle = html.unescape((await browser.get("/referentiel", params={"commune": "90033"})).text)
        with_stage = html.unescape(
            (await browser.get("/referentiel", params={"commune": "Delle", "etape": "DEMANDE_CFP"})).text
        )
        unknown = html.unescape((await browser.get("/referentiel", params={"commune": "Nulle-Part-sur-Mer"})).text)
        everything = html.unescape((await browser.get("/referentiel")).text)
    assert "Commune : Belfort (90010)." in belfort
    assert CCAS in belfort  # its offer covers the commune of Belfort only
    assert MEDIATION not in belfort
    assert "Commune : Delle (90033)." in delle
    assert MEDIATION in delle
    assert CCAS not in delle
    assert "FSL 90 – Fonds de solidarité pour le logement" in delle  # the whole département
    assert MEDIATION not in with_stage  # and at that stage
    assert "Aucune commune ne porte le nom ou le code « Nulle-Part-sur-Mer »." in unknown
    assert re.search(r'role="status">0 structure<', unknown)
    # Where each offer applies, in words, on the page without a filter too.
    assert "territoire : Belfort (90010)" in everything
    assert "territoire : Delle (90033) ; Beaucourt (90009)" in everything
    # Who may benefit, in the référentiel's words.
    assert "Pour qui : Plafond de ressources du règlement intérieur du FSL" in everything
