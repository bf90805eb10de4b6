"""Composition root of orientation: référentiel file → database → matching on each notice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import files

from aiokafka import ConsumerRecord

from schemas import topics
from schemas.procedure import ProcedureNotificationEvent
from services.orientation.domain.referential_yaml import load_referential
from services.orientation.orient import SCHEMA, Orientation, activate_referential
from services.orientation.settings import OrientationSettings
from services.platform.consume import decode_or_park
from services.platform.kafka import subscribe_batch
from services.platform.runtime import Runtime

__all__ = ["build"]

GROUP_ID = "prevex-orientation"


class _Started:
    """Holds the orientation service built at start-up, once the référentiel is loaded."""

    orientation: Orientation | None = None


def build(settings: OrientationSettings) -> Runtime:
    """Wire orientation: load the référentiel at start, then orient every procedure notice."""
    runtime = Runtime("orientation", settings, schema=SCHEMA, migrations=files("services.orientation") / "migrations")
    started = _Started()
    # Read and validated before anything starts: a broken référentiel file stops the service at once.
    referential = load_referential(settings.referential_path.read_text("utf-8"))

    async def load(rt: Runtime) -> None:
        async with rt.pool.acquire() as conn:
            active = await activate_referential(conn, referential, source=settings.referential_path.name)
        started.orientation = Orientation(active, max_structures=settings.max_structures)

    async def on_notice(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        if started.orientation is None:
            raise RuntimeError("référentiel not loaded yet")  # the batch is redelivered
        today = datetime.now(UTC).date()
        async with runtime.pool.acquire() as conn, conn.transaction():
            for event in await decode_or_park(conn, records, ProcedureNotificationEvent):
                await started.orientation.handle(conn, event, today=today)

    runtime.add_startup(load)
    subscribe_batch(
        runtime.broker, topics.PROCEDURE_NOTIFICATION, group_id=GROUP_ID, settings=settings, handler=on_notice
    )
    return runtime
