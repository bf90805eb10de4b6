"""Composition root of the notifier: contacts and decisions in, deliveries out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from importlib.resources import files

from aiokafka import ConsumerRecord

from schemas import topics
from schemas.notification import Channel as ChannelCode
from schemas.orientation import OrientationDecidedEvent
from schemas.referential import ReferentialChangedEvent
from services.notifier.channels import LogSmsChannel, SmtpChannel
from services.notifier.dispatch import SCHEMA, Dispatcher, RetryPolicy
from services.notifier.intake import record_decision, record_structure
from services.notifier.settings import NotifierSettings
from services.notifier.templates import load_templates
from services.platform.consume import decode_or_park
from services.platform.kafka import subscribe_batch
from services.platform.logging import get_logger
from services.platform.runtime import Runtime

__all__ = ["build"]

GROUP_ID = "prevex-notifier"

log = get_logger(__name__)


def build(settings: NotifierSettings) -> Runtime:
    """Wire the notifier: two subscriptions and the dispatch loop."""
    runtime = Runtime("notifier", settings, schema=SCHEMA, migrations=files("services.notifier") / "migrations")
    dispatcher = Dispatcher(
        channels={
            ChannelCode.EMAIL.value: SmtpChannel(settings),
            ChannelCode.SMS.value: LogSmsChannel(settings.sms_log_dir),
        },
        templates=load_templates(settings.alert_prefix),
        link_base_url=settings.link_base_url,
        retry=RetryPolicy(max_attempts=settings.max_attempts, base_delay_s=settings.retry_base_delay_s),
        contact_wait_s=settings.contact_wait_s,
        lease_s=settings.send_lease_s,
    )

    async def on_referential(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        async with runtime.pool.acquire() as conn, conn.transaction():
            for event in await decode_or_park(conn, records, ReferentialChangedEvent):
                await record_structure(conn, event)

    async def on_decided(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        async with runtime.pool.acquire() as conn, conn.transaction():
            for event in await decode_or_park(conn, records, OrientationDecidedEvent):
                await record_decision(conn, event, topics.ORIENTATION_DECIDED)

    subscribe_batch(
        runtime.broker, topics.REFERENTIAL_CHANGED, group_id=GROUP_ID, settings=settings, handler=on_referential
    )
    subscribe_batch(
        runtime.broker, topics.ORIENTATION_DECIDED, group_id=GROUP_ID, settings=settings, handler=on_decided
    )

    async def dispatch(rt: Runtime) -> None:
        while True:
            try:
                async with rt.pool.acquire() as conn:
                    await dispatcher.expand_alerts(conn)
                    attempted = await dispatcher.send_due(conn)
            except (OSError, TimeoutError) as error:
                log.warning("dispatch_failed", error=type(error).__name__)
                attempted = 0
            if not attempted:
                await asyncio.sleep(settings.dispatch_interval_s)

    runtime.add_loop(dispatch)
    return runtime
