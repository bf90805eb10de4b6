"""Orientation inputs as ingest publishes them, built from the source examples: for tests and benchmarks.

Not used by the service. Each example payload of ``schemas/sources/examples`` goes through ingest's pure
``normalise`` (the emitter authenticated from ``deploy/emitters/emitters.yaml``, the reference clock
equal to the act date as in docs/domain.md §9) and is wrapped in the ``ProcedureNotice`` ingest would
publish. People, places and identifiers in the examples are fictional.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import schemas.sources
from schemas.envelope import new_envelope_fields
from schemas.procedure import (
    EmitterType,
    ProcedureNotice,
    ProcedureNotification,
    ProcedureNotificationEvent,
    SourceSystem,
)
from services.ingest.domain.cog import CommuneDirectory, Territory
from services.ingest.domain.normalise import Accepted, normalise
from services.ingest.emitters import EmitterRegistry, load_emitters

__all__ = ["EXAMPLES", "example_record", "notice", "notice_event"]

EXAMPLES = Path(schemas.sources.__file__).parent / "examples"
_EMITTERS_PATH = Path(__file__).resolve().parents[1] / "deploy" / "emitters" / "emitters.yaml"
_CHANNELS = {
    EmitterType.COMMISSAIRE_JUSTICE: SourceSystem.CJ_API,
    EmitterType.BAILLEUR_SOCIAL: SourceSystem.BAILLEUR_API,
    EmitterType.BAILLEUR_PRIVE_PM: SourceSystem.BAILLEUR_API,
    EmitterType.ADMINISTRATEUR_BIENS: SourceSystem.BAILLEUR_SFTP,
}


@functools.cache
def _emitters() -> EmitterRegistry:
    return load_emitters(_EMITTERS_PATH)


def example_record(name: str, *, notification_id: uuid.UUID | None = None) -> ProcedureNotification | None:
    """The canonical record of example ``name`` (file stem), or ``None`` when ingest rejects it."""
    raw = (EXAMPLES / f"{name}.json").read_bytes()
    document = json.loads(raw)
    emitter = _emitters().get(document["emitter"]["siret"])
    if emitter is None:
        raise LookupError(f"{name}: emitter {document['emitter']['siret']} is not in {_EMITTERS_PATH}")
    act_day = datetime.fromisoformat(document["act_date"]).replace(hour=10, tzinfo=UTC)
    outcome = normalise(
        raw,
        source_system=_CHANNELS[emitter.emitter_type],
        emitter=emitter,
        communes=CommuneDirectory.from_packaged_data(),
        territory=Territory(frozenset({"90"})),
        received_at=act_day,
        clock=act_day.date(),
        notification_id=notification_id or uuid.uuid4(),
    )
    return outcome.notification if isinstance(outcome, Accepted) else None


def notice(
    record: ProcedureNotification,
    *,
    procedure_id: uuid.UUID,
    short_ref: str = "90-2026-000001",
    revision: int = 1,
    is_late: bool = False,
    is_correction: bool = False,
) -> ProcedureNotice:
    """``record`` as ingest links it to a procedure."""
    return ProcedureNotice(
        procedure_id=procedure_id,
        procedure_short_ref=short_ref,
        revision=revision,
        is_late=is_late,
        is_correction=is_correction,
        stage_advanced=not is_late and not is_correction,
        notification=record,
    )


def notice_event(payload: ProcedureNotice, *, correlation_id: uuid.UUID | None = None) -> ProcedureNotificationEvent:
    """The ``procedure.notification`` event ingest would publish for ``payload``."""
    return ProcedureNotificationEvent(**new_envelope_fields("ingest", correlation_id=correlation_id), payload=payload)
