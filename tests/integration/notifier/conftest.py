"""The notifier's application service on a real PostgreSQL (a database of its own), a real SMTP server and
the SMS provider emulator, driven in-process with a controllable clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from importlib.resources import files
from typing import Any

import asyncpg
import pytest

from devtools import PostgresEndpoint, SmtpSink, create_database, drop_database
from devtools.sms_emulator import SmsProviderEmulator, SmtpReplies, decided_event, structure_event
from schemas import topics
from schemas.notification import Channel as ChannelCode
from schemas.orientation import OrientationDecidedEvent
from schemas.referential import (
    Channels,
    Contact,
    QuietHours,
)
from services.notifier.bootstrap import build_channels, dispatch_config
from services.notifier.channels import Channel
from services.notifier.dispatch import SCHEMA, Dispatcher, SendReport
from services.notifier.intake import record_decisions, record_structure
from services.notifier.settings import NotifierSettings
from services.notifier.templates import load_templates
from services.platform.db import apply_migrations, connect_pool, migration_files

TUESDAY_NOON = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)  # 12:00 in Paris: no quiet hours


@pytest.fixture(scope="package")
async def notifier_pool(pg_server: PostgresEndpoint) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own: a notifier started by another test must not pick these deliveries up."""
    name = f"prevex_notifier_it_{uuid.uuid4().hex[:10]}"
    url = await create_database(pg_server, name)
    pool = await connect_pool(url, schema=SCHEMA)
    async with pool.acquire() as conn:
        migrations = migration_files(
            files("services.platform") / "migrations", files("services.notifier") / "migrations"
        )
        await apply_migrations(conn, SCHEMA, migrations)
    yield pool
    await pool.close()
    await drop_database(pg_server, name)


@pytest.fixture(scope="package")
def smtp_replies() -> SmtpReplies:
    return SmtpReplies()


@pytest.fixture(scope="package")
def smtp_sink(smtp_replies: SmtpReplies) -> Iterator[SmtpSink]:
    with SmtpSink(responder=smtp_replies) as sink:
        yield sink


@pytest.fixture
def sms_provider() -> Iterator[SmsProviderEmulator]:
    with SmsProviderEmulator() as emulator:
        yield emulator


class Clock:
    """The dispatcher's clock: moved by the test, never by the wall clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def notifier_settings(sink: SmtpSink, sms: SmsProviderEmulator, **overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {
        "smtp_host": sink.host,
        "smtp_port": sink.port,
        "sms_provider": "ovh",
        "ovh_endpoint": sms.ovh_endpoint,
        "ovh_application_key": sms.ovh_application_key,
        "ovh_application_secret": sms.ovh_application_secret,
        "ovh_consumer_key": sms.ovh_consumer_key,
        "ovh_service_name": sms.ovh_service_name,
        "sms_timeout_s": 0.5,
        "send_timeout_s": 5,
        "send_lease_s": 30,
        "retry_window_s": 60,
        "link_secrets": "notifier-integration-tests-link-secret",
    }
    return NotifierSettings(**(values | overrides))


class World:
    """Référentiel records and decisions in; dispatcher rounds with time travel; rows and receipts out."""

    def __init__(
        self, pool: asyncpg.Pool, sink: SmtpSink, replies: SmtpReplies, sms: SmsProviderEmulator, clock: Clock
    ) -> None:
        self.pool, self.smtp, self.smtp_replies, self.sms = pool, sink, replies, sms
        self.clock: Any = clock  # a Clock, or another callable with a settable ``now``
        self.channels: list[Channel] = []
        self.configure()

    def configure(self, *, expand_batch: int = 500, **overrides: Any) -> None:
        """(Re)build the dispatcher from settings, as the bootstrap does."""
        self.settings = notifier_settings(self.smtp, self.sms, **overrides)
        self.dispatcher = self.another_dispatcher(expand_batch=expand_batch)

    def another_dispatcher(
        self,
        *,
        expand_batch: int = 500,
        wrap_email: Callable[[Channel], Channel] | None = None,
        on_accepted: Callable[[datetime, datetime], None] | None = None,
    ) -> Dispatcher:
        """A dispatcher with its own channels, as a second notifier replica would have; its email channel
        wrapped by ``wrap_email`` (a test's instrument), when given. The world closes the channels."""
        channels = build_channels(self.settings)
        self.channels += channels.values()
        if wrap_email is not None:
            channels[ChannelCode.EMAIL] = wrap_email(channels[ChannelCode.EMAIL])
        return Dispatcher(
            channels=channels,
            templates=load_templates(prefix=self.settings.alert_prefix, sms_prefix=self.settings.sms_prefix),
            config=replace(dispatch_config(self.settings), expand_batch=expand_batch),
            clock=lambda: self.clock(),  # noqa: PLW0108 (late binding: a test may swap the clock)
            on_accepted=on_accepted,
        )

    async def structure(
        self, structure_id: str, *contacts: Contact, default_referent: bool = False, version: int = 1
    ) -> None:
        event = structure_event(structure_id, contacts, default_referent=default_referent, version=version)
        async with self.pool.acquire() as conn, conn.transaction():
            await record_structure(conn, event)

    async def decide(self, *structure_ids: str, ref: str = "90-2026-000001", **options: Any) -> OrientationDecidedEvent:
        """Record a decision assigning ``structure_ids`` (options: see ``emulator.decided_event``)."""
        event = decided_event(ref, structure_ids, **options)
        await self.record(event)
        return event

    async def record(self, event: OrientationDecidedEvent) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            return await record_decisions(conn, [event], topics.ORIENTATION_DECIDED)

    async def step(self) -> SendReport:
        async with self.pool.acquire() as conn:
            await self.dispatcher.expand_alerts(conn)
            await self.dispatcher.plan_digests(conn)
        return await self.dispatcher.send_due(self.pool)

    async def run(self, rounds: int = 60) -> None:
        """Dispatch until nothing is left to send, moving the clock to each next due retry."""
        for _ in range(rounds):
            report = await self.step()
            if report.claimed:
                continue
            next_due = await self.pool.fetchval(
                "SELECT min(next_attempt_at) FROM delivery WHERE state IN ('pending', 'retrying')"
            )
            if next_due is None:
                return
            self.clock.now = max(self.clock.now, next_due)
        raise AssertionError(f"deliveries still pending after {rounds} rounds")

    async def deliveries(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM delivery ORDER BY seq")

    async def receipts(self, topic: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topic)
        return [json.loads(row["value"])["payload"] for row in rows]

    def mails_to(self, address: str) -> list[Any]:
        return [mail for mail in self.smtp.messages if address in mail.rcpt_tos]


@pytest.fixture
async def world(
    notifier_pool: asyncpg.Pool, smtp_sink: SmtpSink, smtp_replies: SmtpReplies, sms_provider: SmsProviderEmulator
) -> AsyncIterator[World]:
    async with notifier_pool.acquire() as conn:
        tables = "delivery, digest_item, digest, alert, contact, structure_directory, outbox, inbox, dead_letter"
        await conn.execute(f"TRUNCATE {tables} CASCADE")
    smtp_sink.clear()
    the_world = World(notifier_pool, smtp_sink, smtp_replies, sms_provider, Clock(TUESDAY_NOON))
    await the_world.structure(
        "CCAPEX90", email_contact("CCAPEX90-SECRETARIAT", "ccapex90@pref.test"), default_referent=True
    )
    yield the_world
    for channel in the_world.channels:
        await channel.close()


def email_contact(contact_id: str, email: str, *, generic: bool = True) -> Contact:
    return Contact(
        id=contact_id,
        label=contact_id,
        email=email,
        channels_enabled=Channels(email=True),
        is_generic_mailbox=generic,
    )


def sms_contact(contact_id: str, mobile: str, *, quiet: tuple[str, str] | None = None) -> Contact:
    window = QuietHours(start=time.fromisoformat(quiet[0]), end=time.fromisoformat(quiet[1])) if quiet else None
    return Contact(
        id=contact_id, label=contact_id, mobile=mobile, channels_enabled=Channels(sms=True), quiet_hours=window
    )


class ContactBuilders:
    """``contacts.email(id, address)``, ``contacts.sms(id, mobile)``: the contacts a structure event carries."""

    email = staticmethod(email_contact)
    sms = staticmethod(sms_contact)


@pytest.fixture
def contacts() -> type[ContactBuilders]:
    """The contact builders, for tests."""
    return ContactBuilders
