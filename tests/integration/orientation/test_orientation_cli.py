"""``cli referential import/export/diff`` and ``cli simulate`` against a database."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from schemas import topics
from schemas.procedure import ProcedureNotificationEvent
from services.orientation import cli
from services.orientation.domain import Referential, dump_referential, load_referential

pytestmark = pytest.mark.integration

Run = Callable[..., Any]


@pytest.fixture
def run(database_url: str, schema_pool: tuple[str, asyncpg.Pool]) -> Run:
    """``code, out, err = await run("referential", "export")`` against this test's schema."""
    schema = schema_pool[0]

    async def call(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        database = ["--database-url", database_url, "--schema", schema]
        code = await cli.run([*argv, *database], out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    return call


async def test_import_creates_versions_only_when_the_file_changes(
    run: Run, pool: asyncpg.Pool, seed: Referential, tmp_path: Path
) -> None:
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text(dump_referential(seed), "utf-8")
    edited = tmp_path / "edited.yaml"
    edited.write_text(dump_referential(seed).replace("debt_max: 6000", "debt_max: 6500"), "utf-8")

    first = await run("referential", "import", str(seed_file), "--author", "alice")
    unchanged = await run("referential", "import", str(seed_file))
    dry = await run("referential", "import", str(edited), "--dry-run")
    second = await run("referential", "import", str(edited), "--author", "bob")

    assert first[0] == unchanged[0] == dry[0] == second[0] == 0
    assert first[1].startswith("version 1 created:")
    assert unchanged[1] == "no change: version 1 is current\n"
    assert dry[1] == "~ offer FSL90-MAINTIEN\n    eligibility.debt_max: 6000 → 6500\n"
    assert second[1] == "version 2 created:\n~ offer FSL90-MAINTIEN\n    eligibility.debt_max: 6000 → 6500\n"
    authors = await pool.fetch("SELECT version, author, source FROM referential_version ORDER BY version")
    assert [(r["author"], r["source"]) for r in authors] == [
        ("alice", "cli import seed.yaml"),
        ("bob", "cli import edited.yaml"),
    ]
    # Published by the running service's relay, from the same transaction.
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", topics.REFERENTIAL_CHANGED) == (
        len(seed.structures) + 1
    )


async def test_export_and_diff_against_the_database(run: Run, seed: Referential, tmp_path: Path) -> None:
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text(dump_referential(seed), "utf-8")
    edited = tmp_path / "edited.yaml"
    edited.write_text(dump_referential(seed).replace("priority: 45", "priority: 55"), "utf-8")
    await run("referential", "import", str(seed_file))
    await run("referential", "import", str(edited))

    exported = await run("referential", "export", "--version", "1")
    same = await run("referential", "diff", "db:1", str(seed_file))
    changed = await run("referential", "diff", "db:1", "db:")
    missing = await run("referential", "export", "--version", "7")

    assert exported[0] == 0
    assert load_referential(exported[1]) == seed
    assert same == (0, "no change\n", "")
    assert changed == (1, "~ offer TH-PROTOCOLE\n    priority: 45 → 55\n", "")
    assert missing == (2, "", "error: no référentiel version 7\n")


async def test_reading_a_database_without_referential_says_so(run: Run) -> None:
    assert await run("referential", "export") == (2, "", "error: the database holds no référentiel\n")


async def test_simulate_from_the_database(
    run: Run, seed: Referential, tmp_path: Path, make_event: Callable[..., ProcedureNotificationEvent]
) -> None:
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text(dump_referential(seed), "utf-8")
    await run("referential", "import", str(seed_file))
    notice_file = tmp_path / "notice.json"
    notice_file.write_text(make_event("s06-cj-commandement-quitter").payload.model_dump_json(), "utf-8")

    code, out, _ = await run("simulate", str(notice_file))

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "Orientation of COMMANDEMENT_QUITTER in commune 90010"
        " (référentiel v1, rules orientation-1, cap 3, on 2025-12-10)"
    )
    assert lines[1] == "Decision: 3 assignment(s)"
    assert [line.split(" [")[0].strip() for line in lines if line.startswith("  ") and " [NEW" in line] == [
        "CCAS-BELFORT",
        "CD90",
        "TH90",
    ]
    assert any(line.startswith("  ALSO ELIGIBLE SIAO90 (SIAO90)") for line in lines)
