"""Simulation reports, the CLI on files (validate, diff, simulate, token), tokens, and the committed OpenAPI."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from schemas.procedure import ProcedureNotice
from services.orientation import cli
from services.orientation.auth import Role, TokenRegistry, hash_token, load_tokens
from services.orientation.domain import Matcher, Referential, dump_referential
from services.orientation.http import OPENAPI_PATH, openapi_document
from services.orientation.simulate import ProcedureState, parse_canonical, run_simulation

MakeNotice = Callable[..., ProcedureNotice]


async def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_simulation_accounts_for_every_offer(seed: Referential, make_notice: MakeNotice) -> None:
    result = run_simulation(Matcher(seed), make_notice(), referentiel_version=4, k=3)

    assert result.would_orient
    assert [a.structure_id for a in result.assignments] == ["CCAS-BELFORT", "CDAD90", "CD90"]
    outcomes = {o.offer_id: o.outcome.value for o in result.offers}
    assert sorted(outcomes) == sorted(o.id for o in seed.offers)
    assert [i for i, o in outcomes.items() if o == "ALSO_ELIGIBLE"] == ["CAF90-MAINTIEN", "FSL90-MAINTIEN"]
    [fsl] = [o for o in result.offers if o.offer_id == "FSL90-MAINTIEN"]
    assert [c.outcome.value for c in fsl.clauses] == ["PASS", "PASS", "PASS", "PASS", "UNKNOWN"]
    assert fsl.unknowns == ["resources"]
    [dsf] = [o for o in result.offers if o.offer_id == "CD90-DSF"]
    assert (dsf.reasons, dsf.unknowns) == (["stage COMMANDEMENT_PAYER ∉ {ASSIGNATION, AUDIENCE}"], [])
    assert result.text.splitlines()[0] == (
        "Orientation of COMMANDEMENT_PAYER in commune 90010 (référentiel v4, rules orientation-1, cap 3, on 2026-03-02)"
    )


def test_a_simulation_uses_the_procedure_state_it_is_given(seed: Referential, make_notice: MakeNotice) -> None:
    state = ProcedureState(open_structures=["CD90"], removed_structures=["CDAD90"], remaining_capacity={})

    result = run_simulation(Matcher(seed), make_notice(), referentiel_version=1, k=3, state=state)

    assert [(a.structure_id, a.kind.value) for a in result.assignments] == [
        ("CCAS-BELFORT", "NEW"),
        ("CD90", "STAGE_UPDATE"),
        ("CAF90", "NEW"),
    ]
    [pj90] = [o for o in result.offers if o.offer_id == "PJ90-INFO"]
    assert pj90.reasons == ["structure CDAD90 removed from this procedure by the CCAPEX (override)"]


def test_a_late_notice_is_simulated_but_flagged(seed: Referential, make_notice: MakeNotice) -> None:
    result = run_simulation(Matcher(seed), make_notice(is_late=True), referentiel_version=1, k=3)

    assert not result.would_orient
    assert result.not_oriented_because is not None
    assert result.not_oriented_because.startswith("late notice")


def test_canonical_input_is_a_notice_or_a_notification(make_notice: MakeNotice) -> None:
    notice = make_notice()

    assert parse_canonical(notice.model_dump_json()) == notice
    assert parse_canonical(notice.notification.model_dump_json()) == notice.notification
    with pytest.raises(ValueError, match="act"):
        parse_canonical(json.dumps({"notification_id": str(uuid.uuid4())}))


async def test_validate_names_each_file_and_each_problem(seed: Referential, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(dump_referential(seed), "utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump_referential(seed).replace("default_referent: CCAPEX90", "default_referent: NOBODY"), "utf-8")

    code, out, _ = await _cli("referential", "validate", str(good), str(bad))

    assert code == 1
    assert out.splitlines() == [
        f"{good}: ok, 10 structures, 10 offers",
        f"{bad}: invalid référentiel:",
        "  - default_referent: unknown structure 'NOBODY'",
    ]


async def test_diff_of_two_files(seed: Referential, tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(dump_referential(seed), "utf-8")
    new.write_text(dump_referential(seed).replace("resources_max: 1800", "resources_max: 1900"), "utf-8")

    assert await _cli("referential", "diff", str(old), str(old)) == (0, "no change\n", "")
    assert await _cli("referential", "diff", str(old), str(new)) == (
        1,
        "~ offer FSL90-MAINTIEN\n    eligibility.resources_max: 1800 → 1900\n",
        "",
    )
    assert await _cli("referential", "diff", str(old), str(tmp_path / "missing.yaml")) == (
        2,
        "",
        f"error: {tmp_path / 'missing.yaml'}: No such file or directory\n",
    )


async def test_simulate_against_a_file_as_json(seed: Referential, make_notice: MakeNotice, tmp_path: Path) -> None:
    referential = tmp_path / "seed.yaml"
    referential.write_text(dump_referential(seed), "utf-8")
    notice = tmp_path / "notice.json"
    notice.write_text(make_notice().model_dump_json(), "utf-8")

    code, out, _ = await _cli("simulate", str(notice), "--referential", str(referential), "--json", "--k", "1")

    result = json.loads(out)
    assert code == 0
    assert (result["referentiel_version"], result["k"]) == (None, 1)
    assert [a["structure_id"] for a in result["assignments"]] == ["CCAS-BELFORT"]


async def test_a_new_token_is_shown_once_and_stored_as_a_hash(tmp_path: Path) -> None:
    code, out, _ = await _cli("token", "new", "--name", "secretariat", "--role", "ccapex-viewer")
    token = out.splitlines()[0].rsplit(" ", 1)[1]
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text(yaml.safe_dump({"tokens": yaml.safe_load("\n".join(out.splitlines()[2:]))}), "utf-8")

    registry = load_tokens(tokens_file)

    assert code == 0
    assert token.startswith("pvx_")
    assert token not in tokens_file.read_text("utf-8")
    principal = registry.authenticate(token)
    assert principal is not None
    assert (principal.name, principal.roles) == ("secretariat", frozenset({Role.VIEWER}))
    assert registry.authenticate(token + "x") is None
    assert TokenRegistry.empty().authenticate(token) is None


def test_a_malformed_tokens_file_stops_the_service(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text(yaml.safe_dump({"tokens": [{"name": "x", "sha256": hash_token("t"), "roles": ["root"]}]}))

    with pytest.raises(ValueError, match=r"tokens\.0\.roles\.0"):
        load_tokens(tokens_file)


def test_the_committed_openapi_document_is_current() -> None:
    assert OPENAPI_PATH.read_text("utf-8") == openapi_document(), (
        "services/orientation/openapi.json is stale: run python -m services.orientation.cli openapi"
    )
