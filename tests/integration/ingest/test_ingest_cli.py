"""The ops CLI on a real PostgreSQL: CSV files, rejections (list, show, re-submit), raw payload purge."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.ingest.bootstrap import purge_expired_raw
from services.ingest.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, run
from services.ingest.emitters import hash_api_key
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

Example = Callable[..., bytes]
MakeRaw = Callable[..., Any]
Process = Callable[..., Any]
BAILLEUR = "99990000100015"
GOOD = {"reference": "TH-CLI-1", "locataire_nom": "Faure", "locataire_prenom": "Anaïs", "dette_montant": "1 100,00"}
NEGATIVE = {"reference": "TH-CLI-2", "locataire_nom": "Blanc", "dette_montant": "-10"}


@pytest.fixture
def cli(settings: IngestSettings, schema: str) -> Callable[..., Any]:
    """``code, output = await cli("rejections", "list")``: the CLI on this test's schema."""

    async def _cli(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = await run(list(argv), settings=settings, schema=schema, out=out)
        return code, out.getvalue()

    return _cli


@pytest.fixture
def csv_file(tmp_path: Path, csv_text: Callable[..., str]) -> Callable[..., Path]:
    def _write(*rows: dict[str, str], encoding: str = "utf-8") -> Path:
        path = tmp_path / f"{uuid.uuid4().hex}.csv"
        path.write_bytes(csv_text(*rows).encode(encoding))
        return path

    return _write


async def test_csv_prints_a_line_report_and_exits_1_when_a_line_is_rejected(
    cli: Callable[..., Any], csv_file: Callable[..., Path], pool: asyncpg.Pool
) -> None:
    code, output = await cli("csv", str(csv_file(GOOD, NEGATIVE, encoding="latin-1")), "--emitter", BAILLEUR)
    assert code == EXIT_REJECTED
    lines = output.splitlines()
    assert lines[0] == "file: windows-1252, 2 lines: 1 accepted, 0 corrections, 0 duplicates, 1 rejected"
    assert lines[1].startswith("line 2: ACCEPTED 90-2026-")
    assert lines[1].endswith("(ref TH-CLI-1) [AMOUNT_COERCED]")
    assert lines[2].startswith("line 3: REJECTED DEBT_NEGATIVE at debt.amount (ref TH-CLI-2) rejection ")
    assert "Blanc" not in output
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound WHERE channel = 'cli:csv'") == 2


async def test_csv_json_report_is_the_http_report_and_a_rerun_finds_duplicates(
    cli: Callable[..., Any], csv_file: Callable[..., Path]
) -> None:
    path = csv_file(GOOD)
    assert (await cli("csv", str(path), "--emitter", BAILLEUR))[0] == EXIT_OK
    code, output = await cli("csv", str(path), "--emitter", BAILLEUR, "--json")
    assert code == EXIT_OK
    report = json.loads(output)
    assert report["counts"] == {"accepted": 0, "corrections": 0, "duplicates": 1, "rejected": 0}
    assert report["lines"][0]["outcome"] == "DUPLICATE_IGNORED"


@pytest.mark.parametrize("emitter", ["12345678900011", "00000000000000"])
async def test_csv_refuses_an_emitter_that_is_not_a_registered_bailleur(
    cli: Callable[..., Any], csv_file: Callable[..., Path], pool: asyncpg.Pool, emitter: str
) -> None:
    assert (await cli("csv", str(csv_file(GOOD)), "--emitter", emitter))[0] == EXIT_USAGE
    assert await pool.fetchval("SELECT count(*) FROM raw_inbound") == 0


async def test_rejections_are_listed_with_filters(
    cli: Callable[..., Any], process: Process, make_raw: MakeRaw, example: Example
) -> None:
    await process(
        make_raw(example("s07-cj-address-missing")),
        make_raw(example("s08-bailleur-debt-negative"), BAILLEUR),
        make_raw(example("s04-cj-assignation", court_case=None)),
    )
    code, output = await cli("rejections", "list", "--json")
    assert code == EXIT_OK
    listed = [json.loads(line) for line in output.splitlines()]
    assert {item["external_ref"] for item in listed} == {"CP-2026-0777", "TH-CAF-2026-0311", "AS-2026-0601"}
    by_emitter = [
        json.loads(line) for line in (await cli("rejections", "list", "--json", "--emitter", BAILLEUR))[1].splitlines()
    ]
    assert [item["codes"] for item in by_emitter] == [["DEBT_NEGATIVE"]]
    # A qualified code matches by its prefix.
    _, by_code = await cli("rejections", "list", "--code", "REQUIRED_FOR_STAGE_MISSING")
    assert "AS-2026-0601" in by_code
    assert "CP-2026-0777" not in by_code
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert (await cli("rejections", "list", "--since", tomorrow))[1] == ""


async def test_a_corrected_payload_resolves_its_rejection(
    *,
    cli: Callable[..., Any],
    process: Process,
    make_raw: MakeRaw,
    example: Example,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    [rejected] = await process(make_raw(example("s07-cj-address-missing")))
    rejection_id = str(rejected.rejection.rejection_id)
    code, shown = await cli("rejections", "show", rejection_id)
    assert code == EXIT_OK
    assert "ADDRESS_MISSING  dwelling.address.line1" in shown
    assert "CP-2026-0777" in shown
    assert "90000" not in shown  # the payload is only printed on request
    assert "postal_code" in (await cli("rejections", "show", rejection_id, "--payload"))[1]

    still_wrong = tmp_path / "still-wrong.json"
    still_wrong.write_bytes(example("s07-cj-address-missing"))
    assert (await cli("rejections", "resubmit", rejection_id, str(still_wrong)))[0] == EXIT_REJECTED
    corrected = tmp_path / "corrected.json"
    address = {"line1": "4 rue de la Paix", "postal_code": "90000", "commune_insee": "90010"}
    corrected.write_bytes(example("s07-cj-address-missing", dwelling__address=address))
    code, output = await cli("rejections", "resubmit", rejection_id, str(corrected))
    assert code == EXIT_OK
    assert output.startswith("ACCEPTED 90-2026-")

    row = await pool.fetchrow(
        "SELECT raw_id, source_system, corrects_rejection_id FROM raw_inbound"
        " WHERE corrects_rejection_id IS NOT NULL AND outcome = 'ACCEPTED'"
    )
    assert row is not None
    assert (row["source_system"], row["corrects_rejection_id"]) == ("manual", rejected.rejection.rejection_id)
    assert "resolved by" not in shown
    assert f"resolved by {row['raw_id']}" in (await cli("rejections", "show", rejection_id))[1]
    _, unresolved = await cli("rejections", "list", "--unresolved")
    assert rejection_id not in unresolved  # the failed re-submission left its own rejection, unresolved
    assert len(unresolved.splitlines()) == 1


async def test_unknown_rejections_are_reported(cli: Callable[..., Any], tmp_path: Path) -> None:
    missing = str(uuid.uuid4())
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    assert (await cli("rejections", "show", missing))[0] == EXIT_NOT_FOUND
    assert (await cli("rejections", "resubmit", missing, str(payload)))[0] == EXIT_NOT_FOUND


async def test_the_retention_job_blanks_old_payloads_only(
    cli: Callable[..., Any], process: Process, make_raw: MakeRaw, example: Example, pool: asyncpg.Pool
) -> None:
    """docs/domain.md §8.5: raw payloads go after the retention; the rows, hashes and outcomes stay."""
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=91), now - timedelta(days=89)
    await process(
        make_raw(example("s01-cj-commandement-payer"), received_at=old),
        make_raw(example("s07-cj-address-missing"), received_at=old),
        make_raw(example("s04-cj-assignation"), received_at=recent),
    )
    assert await purge_expired_raw(pool, 90, now=now) == 2
    rows = await pool.fetch(
        "SELECT received_at, payload, outcome, payload_sha256 FROM raw_inbound ORDER BY received_at"
    )
    assert [(bytes(r["payload"]) == b"", r["outcome"]) for r in rows] == [
        (True, "ACCEPTED"),
        (True, "REJECTED"),
        (False, "ACCEPTED"),
    ]
    assert all(len(r["payload_sha256"]) == 64 for r in rows)
    assert await pool.fetchval("SELECT count(*) FROM procedure_stage_event") == 2  # normalised records stay
    # The CLI purges on demand, with the retention given or configured.
    assert (await cli("purge-raw"))[1] == "0 raw payloads purged (older than 90 days)\n"
    assert (await cli("purge-raw", "--older-than-days", "1"))[1] == "1 raw payloads purged (older than 1 days)\n"
    [rejection] = await pool.fetch("SELECT rejection_id FROM rejection")
    _, shown = await cli("rejections", "show", str(rejection["rejection_id"]), "--payload")
    assert "(purged after the retention period)" in shown


async def test_api_key_prints_a_key_and_its_hash(cli: Callable[..., Any]) -> None:
    code, output = await cli("api-key")
    key, digest = (line.split()[-1] for line in output.splitlines())
    assert code == EXIT_OK
    assert key.startswith("pvx_")
    assert len(key) > 40
    assert hash_api_key(key) == digest
