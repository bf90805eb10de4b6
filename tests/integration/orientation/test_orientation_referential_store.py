"""The référentiel in PostgreSQL: versions, revisions, publication, migration of 001's documents, replicas."""

from __future__ import annotations

import asyncio
import json
import uuid
from importlib.resources import files

import asyncpg
import pytest

from schemas import topics
from schemas.referential import RecordStatus, ReferentialChangedEvent
from services.orientation import referential_repository as ref_repo
from services.orientation.domain import EntityKind, Referential, content_hash
from services.orientation.referential_store import Change, ReferentialHolder, commit_referential, load_active
from services.platform.db import apply_migrations, connect_pool, migration_files

pytestmark = pytest.mark.integration


async def _records(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> list[ReferentialChangedEvent]:
    rows = await conn.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topics.REFERENTIAL_CHANGED)
    return [ReferentialChangedEvent.model_validate_json(row["value"]) for row in rows]


def _becomes(content: Referential) -> Change:
    """The change that makes the référentiel ``content``, whatever it was."""
    return lambda _: content


def _with_structure(referential: Referential, structure_id: str, **changes: object) -> Referential:
    structures = tuple(s.model_copy(update=changes) if s.id == structure_id else s for s in referential.structures)
    return referential.model_copy(update={"structures": structures})


async def test_the_seed_round_trips_through_the_tables(pool: asyncpg.Pool, seed: Referential) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            commit = await commit_referential(conn, lambda _: seed, source="test", author="alice")
        loaded = await load_active(conn, commit.active.version)
        row = await ref_repo.version_row(conn, 1)
        records = await _records(conn)

    assert (commit.active.version, commit.created) == (1, True)
    assert loaded.referential == seed
    assert loaded.revisions == commit.active.revisions
    assert row is not None
    assert (row.content_hash, row.author, row.source, row.default_referent) == (
        content_hash(seed),
        "alice",
        "test",
        "CCAPEX90",
    )
    assert len(row.changes) == len(seed.structures) + len(seed.offers) + 1  # + the default referent
    assert sorted(r.payload.structure_id for r in records) == sorted(s.id for s in seed.structures)
    assert {r.payload.referentiel_version for r in records} == {1}


async def test_the_same_content_makes_no_new_version(
    pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential
) -> None:
    async with pool.acquire() as conn:
        before = len(await _records(conn))
        async with conn.transaction():
            commit = await commit_referential(conn, lambda _: seed, source="t", author="t")
        after = len(await _records(conn))

    assert (commit.active.version, commit.created) == (1, False)
    assert after == before


async def test_a_change_writes_new_revisions_of_what_changed_only(
    pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential
) -> None:
    changed = _with_structure(seed, "FSL90", nom="FSL 90 – Fonds de solidarité logement")
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM outbox")
        async with conn.transaction():
            commit = await commit_referential(conn, lambda _: changed, source="t", author="bob")
        structure_rows = await conn.fetch("SELECT structure_id, from_version, until_version FROM structure")
        offer_rows = await conn.fetchval("SELECT count(*) FROM offer")
        version_1 = await load_active(conn, 1)
        version_2 = await load_active(conn, 2)
        records = await _records(conn)

    assert commit.active.version == 2
    assert commit.diff.text() == (
        "~ structure FSL90\n"
        '    nom: "FSL 90 – Fonds de solidarité pour le logement" → "FSL 90 – Fonds de solidarité logement"'
    )
    fsl = sorted((r["from_version"], r["until_version"]) for r in structure_rows if r["structure_id"] == "FSL90")
    assert fsl == [(1, 2), (2, None)]
    assert len(structure_rows) == len(seed.structures) + 1
    assert offer_rows == len(seed.offers)
    assert version_1.referential == seed
    assert version_2.referential == changed
    assert version_2.revision(EntityKind.STRUCTURE, "FSL90") == 2
    assert version_2.revision(EntityKind.STRUCTURE, "CD90") == 1
    assert [(r.payload.structure_id, r.payload.referentiel_version) for r in records] == [("FSL90", 2)]


async def test_a_structure_taken_out_is_published_archived(
    pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential
) -> None:
    without = seed.model_copy(
        update={
            "structures": tuple(s for s in seed.structures if s.id != "BDF90"),
            "offers": tuple(o for o in seed.offers if o.structure_id != "BDF90"),
        }
    )
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM outbox")
        async with conn.transaction():
            commit = await commit_referential(conn, lambda _: without, source="t", author="t")
        records = await _records(conn)
        current = await load_active(conn, 2)

    assert commit.diff.text() == "- structure BDF90\n- offer BDF90-SURENDET"
    [record] = records
    assert (record.payload.structure_id, record.payload.status, record.payload.offers) == (
        "BDF90",
        RecordStatus.ARCHIVED,
        [],
    )
    assert "BDF90" not in {s.id for s in current.referential.structures}


async def test_going_back_to_an_earlier_content_is_a_new_version(
    pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential
) -> None:
    suspended = _with_structure(seed, "CDAD90", status=RecordStatus.SUSPENDED)
    async with pool.acquire() as conn:
        for content in (suspended, seed):
            async with conn.transaction():
                await commit_referential(conn, _becomes(content), source="t", author="t")
        rows = await ref_repo.list_versions(conn, limit=10)
        latest = await load_active(conn, 3)

    assert [row.version for row in rows] == [3, 2, 1]
    assert rows[0].content_hash == rows[2].content_hash != rows[1].content_hash
    assert latest.referential == seed


async def test_concurrent_writers_get_one_version_each(
    pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential
) -> None:
    async def write(nom: str) -> int:
        async with pool.acquire() as conn, conn.transaction():
            changed = _with_structure(seed, "SIAO90", nom=nom)
            return (await commit_referential(conn, lambda _: changed, source="t", author="t")).active.version

    versions = await asyncio.gather(write("SIAO 90 (écrit A)"), write("SIAO 90 (écrit B)"))

    assert sorted(versions) == [2, 3]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM structure WHERE until_version IS NULL") == len(seed.structures)


async def test_a_holder_loads_the_version_another_process_committed(
    pool: asyncpg.Pool, seeded: ReferentialHolder, seed: Referential
) -> None:
    other_replica = ReferentialHolder()
    async with pool.acquire() as conn:
        assert (await other_replica.refresh(conn)).version == 1
        async with conn.transaction():
            await commit_referential(
                conn,
                lambda _: _with_structure(seed, "CCAS-BELFORT", nom="CCAS de Belfort (accueil)"),
                source="t",
                author="t",
            )
        refreshed = await other_replica.refresh(conn)
        again = await other_replica.refresh(conn)

    assert refreshed.version == 2
    assert again is refreshed  # no reload while the version is current
    assert refreshed.referential.structure("CCAS-BELFORT").nom == "CCAS de Belfort (accueil)"


async def test_migration_002_turns_stored_documents_into_rows(database_url: str, seed: Referential) -> None:
    schema = f"m_{uuid.uuid4().hex[:10]}"
    platform = migration_files(files("services.platform") / "migrations")
    orientation = migration_files(files("services.orientation") / "migrations")
    pool = await connect_pool(database_url, schema=schema)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema, [*platform, orientation[0]])  # as deployed before this change
            changed = _with_structure(seed, "CD90", nom="Département 90 – Service prévention")
            for version, content in ((1, seed), (2, changed)):
                await conn.execute(
                    "INSERT INTO referential_version (version, content_hash, document, source)"
                    " VALUES ($1, $2, $3, 'seed')",
                    version,
                    content_hash(content),
                    json.loads(content.model_dump_json()),
                )
            applied = await apply_migrations(conn, schema, [*platform, *orientation[:2]])
            first, second = await load_active(conn, 1), await load_active(conn, 2)
            current_rows = await conn.fetchval("SELECT count(*) FROM structure WHERE until_version IS NULL")
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await pool.close()

    assert applied == ["migrations/002_referential_tables_lifecycle"]
    assert first.referential == seed
    assert second.referential == changed
    assert current_rows == len(seed.structures)
