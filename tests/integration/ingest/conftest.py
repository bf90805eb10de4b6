"""Fixtures of ingest's integration tests: a fresh ingest schema per test on the session's PostgreSQL.

Tests run with ``--import-mode=importlib``, so shared helpers are fixtures returning callables.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from schemas.procedure import SourceSystem
from schemas.sources.samples import variant
from services.ingest.bootstrap import MIGRATIONS
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.emitters import EmitterRegistry, load_emitters
from services.ingest.http import create_app
from services.ingest.intake import Intake, IntakeResult, RawInput
from services.ingest.settings import IngestSettings
from services.platform.db import apply_migrations, connect_pool, schema_migrations

EMITTERS_FILE = Path(__file__).resolve().parents[3] / "deploy" / "emitters" / "emitters.yaml"
CLOCK = date(2026, 6, 20)  # after every example act, so none is "in the future"
RECEIVED_AT = datetime(2026, 6, 20, 9, 0, tzinfo=UTC)

Example = Callable[..., bytes]
MakeRaw = Callable[..., RawInput]
Process = Callable[..., Any]


@pytest.fixture
async def schema(database_url: str) -> AsyncIterator[str]:
    """A freshly migrated ingest schema of this test's own, dropped afterwards."""
    name = f"ingest_t{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn, name, schema_migrations(MIGRATIONS))
        yield name
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url, schema=schema, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def emitters() -> EmitterRegistry:
    """The development emitters registry (``deploy/emitters/emitters.yaml``)."""
    return load_emitters(EMITTERS_FILE)


@pytest.fixture(scope="session")
def intake() -> Intake:
    return Intake(
        communes=CommuneDirectory.from_packaged_data(),
        territory=Territory(frozenset({"90"})),
        max_payload_bytes=256_000,
    )


@pytest.fixture(scope="session")
def example() -> Example:
    """``example(name, debt__amount=2460)``: an example payload's bytes, as is or with ``__``-dotted changes."""
    return variant


@pytest.fixture(scope="session")
def make_raw(emitters: EmitterRegistry) -> MakeRaw:
    """``make_raw(payload, emitter=CJ, offset=None, **fields)``: a raw input as the Kafka adapter makes it
    (the key ``emitter`` looked up in the registry)."""

    def _raw(
        payload: bytes, emitter: str | None = "12345678900011", offset: int | None = None, **fields: Any
    ) -> RawInput:
        position = {"kafka_topic": "t", "kafka_partition": 0, "kafka_offset": offset} if offset is not None else {}
        defaults: dict[str, Any] = {"source_system": SourceSystem.CJ_API, "channel": "test", "received_at": RECEIVED_AT}
        resolved = {"emitter_key": emitter, "emitter": emitters.get(emitter)}
        return RawInput(payload=payload, **(defaults | resolved | position | fields))

    return _raw


@pytest.fixture
def process(pool: asyncpg.Pool, intake: Intake) -> Callable[..., Any]:
    """``await process(*inputs, clock=CLOCK)``: one intake batch in one transaction."""

    async def _process(*inputs: RawInput, clock: date = CLOCK) -> Sequence[IntakeResult]:
        async with pool.acquire() as conn, conn.transaction():
            return await intake.process(conn, inputs, clock=clock)

    return _process


@pytest.fixture
def outbox(pool: asyncpg.Pool) -> Callable[[str], Any]:
    """``await outbox(topic)``: the values enqueued for ``topic``, in order."""

    async def _outbox(topic: str) -> list[bytes]:
        rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topic)
        return [bytes(row["value"]) for row in rows]

    return _outbox


# Development API keys of deploy/emitters/emitters.yaml (their plaintext is documented in docs/ingest.md).
CJ_KEY = "prevex-dev-key-cj-0001"
TH_KEY = "prevex-dev-key-th-0002"
GESTION_KEY = "prevex-dev-key-gestion-0003"


@pytest.fixture(scope="session")
def api_keys() -> dict[str, str]:
    return {"cj": CJ_KEY, "territoire_habitat": TH_KEY, "gestionnaire": GESTION_KEY}


@pytest.fixture
def settings(database_url: str) -> IngestSettings:
    return IngestSettings(database_url=database_url, emitters_path=EMITTERS_FILE)


MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
"""``make_client(**create_app options)``: an ``async with`` of a client on the app."""


@pytest.fixture
def make_client(pool: asyncpg.Pool, intake: Intake, emitters: EmitterRegistry, settings: IngestSettings) -> MakeClient:
    """``async with make_client(limiter=…, settings=…) as client``: the HTTP app on this test's schema.

    Reception time is fixed at the scenario day, so the example payloads are never "in the future".
    """

    @asynccontextmanager
    async def _client(**options: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(
            intake=intake,
            emitters=emitters,
            pool=lambda: pool,
            settings=options.pop("settings", settings),
            now=lambda: RECEIVED_AT,
            **options,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as client:
            yield client

    return _client


@pytest.fixture
async def client(make_client: MakeClient) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as client:
        yield client


_CSV_DEFAULTS = {
    "reference": "TH-CSV-0",
    "etape": "SIGNALEMENT_CAF",
    "date_acte": "02/03/2026",
    "locataire_nom": "Roux",
    "locataire_prenom": "Léon",
    "adresse": "9 rue de Lyon",
    "code_postal": "90000",
    "code_insee": "90010",
    "bailleur_type": "BAILLEUR_SOCIAL",
    "loyer_hc": "420",
    "dette_montant": "900",
    "dette_date": "28/02/2026",
}


@pytest.fixture(scope="session")
def csv_text() -> Callable[..., str]:
    """``csv_text({"reference": "TH-1", "dette_montant": "1 200,50"}, …)``: a header and one line per dict.

    Each line takes the defaults of a valid Territoire habitat signalement for its missing cells; a
    ``"+"`` key adds cells after the last column.
    """

    def _text(*rows: dict[str, str]) -> str:
        lines = [";".join(_CSV_DEFAULTS)]
        for row in rows:
            cells = [row.get(name, default) for name, default in _CSV_DEFAULTS.items()]
            lines.append(";".join([*cells, *([row["+"]] if "+" in row else [])]))
        return "\n".join(lines) + "\n"

    return _text
