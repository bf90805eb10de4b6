"""Fixtures for the ingest domain tests.

The project runs pytest with ``--import-mode=importlib``: test directories are not importable, so shared
data reaches the tests as session-scoped fixtures (the COG directory, the example payloads, the emitters
and a normaliser configured with the scenario conventions of docs/domain.md §9).

People, places and identifiers are fictional, as in the example payloads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from schemas.procedure import EmitterType, ProcedureNotification, SourceSystem
from schemas.sources import samples
from schemas.sources.samples import example_document
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.domain.normalise import DEFAULT_MAX_BYTES, Accepted, Emitter, normalise
from services.ingest.domain.rejections import Rejected

NOTIFICATION_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
FALLBACK_CLOCK = date(2026, 6, 30)
CHANNELS = {
    EmitterType.COMMISSAIRE_JUSTICE: SourceSystem.CJ_API,
    EmitterType.BAILLEUR_SOCIAL: SourceSystem.BAILLEUR_API,
    EmitterType.ADMINISTRATEUR_BIENS: SourceSystem.BAILLEUR_SFTP,
    EmitterType.PREFECTURE: SourceSystem.EXPLOC_EXPORT,
}

Outcome = Accepted | Rejected


def _act_day(document: object) -> date:
    """Scenario convention (docs/domain.md §9): the reference clock equals the act date."""
    try:
        return date.fromisoformat(document["act_date"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return FALLBACK_CLOCK


def _emitter_of(document: object, emitters: dict[str, Emitter]) -> Emitter:
    """The registered emitter whose SIRET the payload claims (the CJ when it claims none we know)."""
    by_siret = {emitter.emitter_id: emitter for emitter in emitters.values()}
    try:
        return by_siret.get(document["emitter"]["siret"], emitters["cj"])  # type: ignore[index]
    except (TypeError, KeyError):
        return emitters["cj"]


@pytest.fixture(scope="session")
def communes() -> CommuneDirectory:
    return CommuneDirectory.from_packaged_data()


@pytest.fixture(scope="session")
def territory_90() -> Territory:
    return Territory(frozenset({"90"}))


@pytest.fixture(scope="session")
def emitters() -> dict[str, Emitter]:
    """Authenticated emitters of the examples, by role."""
    return {
        "cj": Emitter("12345678900011", EmitterType.COMMISSAIRE_JUSTICE, "Étude fictive de commissaires de justice"),
        "territoire_habitat": Emitter("99990000100015", EmitterType.BAILLEUR_SOCIAL, "Territoire habitat"),
        "gestionnaire": Emitter("55512345600019", EmitterType.ADMINISTRATEUR_BIENS, "Cabinet de gestion fictif"),
        "prefecture": Emitter("13000090000015", EmitterType.PREFECTURE, "Préfecture fictive"),
    }


@pytest.fixture(scope="session")
def example() -> Callable[[str], dict[str, Any]]:
    """A fresh (mutable) copy of ``schemas/sources/examples/<name>.json``."""
    return example_document


@pytest.fixture(scope="session")
def example_bytes() -> Callable[[str], bytes]:
    """The example file's exact bytes."""
    return samples.example_bytes


@pytest.fixture(scope="session")
def run(communes: CommuneDirectory, territory_90: Territory, emitters: dict[str, Emitter]) -> Callable[..., Outcome]:
    """Normalise a payload (dict or raw bytes) with the scenario defaults, each overridable by keyword."""

    def _run(
        payload: dict[str, Any] | bytes,
        *,
        emitter: Emitter | None = None,
        territory: Territory = territory_90,
        clock: date | None = None,
        max_bytes: int | None = None,
    ) -> Outcome:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        try:
            document: object = json.loads(raw)
        except (ValueError, RecursionError):
            document = None
        emitter = emitter or _emitter_of(document, emitters)
        clock = clock or _act_day(document)
        return normalise(
            raw,
            source_system=CHANNELS[emitter.emitter_type],
            emitter=emitter,
            communes=communes,
            territory=territory,
            received_at=datetime(clock.year, clock.month, clock.day, 10, 0, tzinfo=UTC),
            clock=clock,
            notification_id=NOTIFICATION_ID,
            max_bytes=DEFAULT_MAX_BYTES if max_bytes is None else max_bytes,
        )

    return _run


@pytest.fixture(scope="session")
def accept(
    run: Callable[..., Outcome], example_bytes: Callable[[str], bytes]
) -> Callable[[str], ProcedureNotification]:
    """The canonical record of an example that must be accepted."""

    def _accept(name: str) -> ProcedureNotification:
        outcome = run(example_bytes(name))
        assert isinstance(outcome, Accepted), outcome
        return outcome.notification

    return _accept
