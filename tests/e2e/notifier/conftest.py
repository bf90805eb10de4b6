"""The notifier alone, as a real process, on a broker, a database, an SMTP server and an SMS provider of its own.

Its own broker and database: another test's notifier (the walking skeleton's stack, same consumer group)
must neither consume these decisions nor send these deliveries. Retries, leases and timeouts are
shortened through the environment, as an operator would set them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import PostgresEndpoint, SmtpSink, create_database, create_topics, drop_database, kafka_broker
from devtools.sms_emulator import SmsProviderEmulator, SmtpReplies, structure_event
from devtools.stack import ServiceProcesses, StackConfig
from schemas import topics
from schemas.envelope import Envelope
from schemas.referential import Contact, ReferentialChangedEvent

SEED = Path(__file__).resolve().parents[3] / "deploy" / "referential" / "seed-90.yaml"
# Structures of these tests only (fictional, ".test" domains, reserved mobile range).
E2E_STRUCTURES: list[dict[str, Any]] = [
    {"id": "E2E-FLAKY", "contacts": [{"id": "FLAKY", "email": "flaky@e2e.test", "generic": True}]},
    {
        "id": "E2E-BOUNCE",
        "contacts": [
            {"id": "BOUNCE-NAMED", "email": "bounce@e2e.test", "generic": False},
            {"id": "BOUNCE-GENERIC", "email": "bounce-generic@e2e.test", "generic": True},
        ],
    },
    {"id": "E2E-SMS-OK", "contacts": [{"id": "SMS-OK", "mobile": "+33612000001"}]},
    {"id": "E2E-SMS-BAD", "contacts": [{"id": "SMS-BAD", "mobile": "+33612000002"}]},
    {"id": "E2E-EMPTY", "contacts": []},
    {"id": "E2E-KILL", "contacts": [{"id": "KILL", "email": "kill@e2e.test", "generic": True}]},
]
SEND_CONCURRENCY = 8
NOTIFIER_ENV = {
    "NOTIFIER_SMS_PROVIDER": "ovh",
    "NOTIFIER_RETRY_WINDOW_S": "2",
    "NOTIFIER_SEND_LEASE_S": "3",
    "NOTIFIER_SEND_TIMEOUT_S": "2",
    "NOTIFIER_SMTP_TIMEOUT_S": "1.5",
    "NOTIFIER_SMS_TIMEOUT_S": "1",
    "NOTIFIER_SEND_CONCURRENCY": str(SEND_CONCURRENCY),
    "NOTIFIER_CONTACT_WAIT_S": "120",
    # Whatever the hour and day the tests run at, SMS go at once (quiet hours: integration tests).
    "NOTIFIER_SMS_QUIET_HOURS": "",
    "NOTIFIER_SMS_QUIET_SUNDAYS": "false",
    # The scenarios' time (the domain brief's S-06: expulsion possible from 1 April 2026), the clock running
    # from there: alerts are worded as on that day ("Expulsion impossible avant le 01/04/2026"), whatever
    # day the tests run on.
    "PREVEX_CLOCK": "2026-03-25T10:00:00+01:00",
}


class SlowableReplies(SmtpReplies):
    """Scripted replies, plus an optional pause per accepted message to one address (to kill mid-run)."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_address: str | None = None
        self.slow_s = 0.004

    def __call__(self, envelope: Any) -> str | None:
        if self.slow_address is not None and self.slow_address in envelope.rcpt_tos:
            time.sleep(self.slow_s)
        return super().__call__(envelope)


class NotifierWorld:
    """The running notifier and what it talks to."""

    def __init__(
        self,
        *,
        bootstrap: str,
        db: asyncpg.Pool,
        smtp: SmtpSink,
        replies: SlowableReplies,
        sms: SmsProviderEmulator,
        services: ServiceProcesses,
        sms_dir: Path,
    ) -> None:
        self.bootstrap, self.db, self.smtp, self.replies, self.sms, self.services = (
            bootstrap,
            db,
            smtp,
            replies,
            sms,
            services,
        )
        self.sms_dir = sms_dir  # the ``log`` SMS provider's folder

    async def publish(self, topic: str, events: list[tuple[str, Envelope]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False)
        await producer.start()
        try:
            futures = [await producer.send(topic, e.model_dump_json().encode(), key=k.encode()) for k, e in events]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def receipts(
        self, topic: str, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 60
    ) -> list[dict[str, Any]]:
        """Payloads of ``topic`` from the beginning, read until ``until(payloads)`` holds."""
        # No consumer group: nothing to join (a Tansu group join costs seconds), every partition from the start.
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        payloads: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout_s):
                while not until(payloads):
                    for batch in (await consumer.getmany(timeout_ms=200)).values():
                        payloads += [json.loads(r.value)["payload"] for r in batch]
        finally:
            await consumer.stop()
        return payloads

    async def settled(self, timeout_s: float = 60) -> None:
        """Wait until no delivery is pending, retrying or being sent (a state, not a duration)."""
        async with asyncio.timeout(timeout_s):
            while await self.db.fetchval(  # noqa: ASYNC110 (a database state: there is no event to wait on)
                "SELECT count(*) FROM delivery WHERE state IN ('pending', 'retrying', 'sending')"
            ) or await self.db.fetchval("SELECT count(*) FROM alert WHERE state = 'AWAITING_CONTACTS'"):
                await asyncio.sleep(0.1)

    async def consumed(self, event_id: uuid.UUID, timeout_s: float = 60) -> None:
        """Wait until the notifier has recorded the event ``event_id`` (its inbox row commits with its alerts)."""
        async with asyncio.timeout(timeout_s):
            while not await self.db.fetchval(  # noqa: ASYNC110 (a database state: there is no event to wait on)
                "SELECT count(*) FROM inbox WHERE event_id = $1", event_id
            ):
                await asyncio.sleep(0.1)

    def mails_to(self, address: str) -> list[Any]:
        return [mail for mail in self.smtp.messages if address in mail.rcpt_tos]


def structure_events() -> list[ReferentialChangedEvent]:
    """The seed référentiel's structures and contacts, plus the test structures, in one version."""
    seed = yaml.safe_load(SEED.read_text("utf-8"))
    structures = [
        (s["id"], s["nom"], s.get("contacts", []), s["id"] == seed["default_referent"]) for s in seed["structures"]
    ]
    for s in E2E_STRUCTURES:
        contacts = [
            {
                "id": c["id"],
                "label": c["id"],
                **({"email": c["email"]} if "email" in c else {"mobile": c["mobile"]}),
                "channels_enabled": {"email": True} if "email" in c else {"sms": True},
                "is_generic_mailbox": c.get("generic", False),
            }
            for c in s["contacts"]
        ]
        structures.append((s["id"], f"Structure de test {s['id']}", contacts, False))
    return [
        # Contacts through JSON, as a consumer reads them ("20:00" quiet hours are strings there).
        structure_event(
            structure_id,
            [Contact.model_validate_json(json.dumps(c)) for c in contacts],
            nom=nom,
            default_referent=default,
        )
        for structure_id, nom, contacts, default in structures
    ]


@asynccontextmanager
async def running_notifier(
    pg_server: PostgresEndpoint, tmp_path_factory: pytest.TempPathFactory, env: Mapping[str, str]
) -> AsyncIterator[NotifierWorld]:
    """A notifier process on a database, broker, SMTP server and SMS provider emulator of its own, set with
    ``NOTIFIER_ENV`` overridden by ``env``; the seed and test structures published."""
    name = f"prevex_notifier_e2e_{uuid.uuid4().hex[:10]}"
    database_url = await create_database(pg_server, name)
    replies = SlowableReplies()
    with (
        kafka_broker() as broker,
        SmtpSink(tmp_path_factory.mktemp("notifier-mail"), responder=replies) as smtp,
        SmsProviderEmulator() as sms,
    ):
        await create_topics(broker.bootstrap_servers, topics.ALL_TOPICS)
        extra_env = {
            **NOTIFIER_ENV,
            "NOTIFIER_OVH_ENDPOINT": sms.ovh_endpoint,
            "NOTIFIER_OVH_APPLICATION_KEY": sms.ovh_application_key,
            "NOTIFIER_OVH_APPLICATION_SECRET": sms.ovh_application_secret,
            "NOTIFIER_OVH_CONSUMER_KEY": sms.ovh_consumer_key,
            "NOTIFIER_OVH_SERVICE_NAME": sms.ovh_service_name,
            **env,
        }
        sms_dir = tmp_path_factory.mktemp("notifier-sms")
        config = StackConfig(broker.bootstrap_servers, database_url, smtp.host, smtp.port, sms_dir)
        services = ServiceProcesses(config, tmp_path_factory.mktemp("notifier-logs"), extra_env=extra_env)
        services.start("notifier")
        db = await asyncpg.create_pool(
            database_url, min_size=1, max_size=2, server_settings={"search_path": "notifier"}
        )
        try:
            world = NotifierWorld(
                bootstrap=broker.bootstrap_servers,
                db=db,
                smtp=smtp,
                replies=replies,
                sms=sms,
                services=services,
                sms_dir=sms_dir,
            )
            await world.publish(topics.REFERENTIAL_CHANGED, [(e.key, e) for e in structure_events()])
            yield world
        finally:
            services.stop()
            await db.close()
    await drop_database(pg_server, name)


@pytest.fixture(scope="package")
async def notifier_world(
    pg_server: PostgresEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[NotifierWorld]:
    async with running_notifier(pg_server, tmp_path_factory, {}) as world:
        yield world


CRASH_LEASE_S = 600
"""Far longer than the crash test may run: what it sees taken back was not taken back by lease expiry."""


@pytest.fixture(scope="module")
async def crash_world(
    pg_server: PostgresEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[NotifierWorld]:
    env = {
        "NOTIFIER_SEND_LEASE_S": str(CRASH_LEASE_S),
        "NOTIFIER_SEND_TIMEOUT_S": "20",
        "NOTIFIER_SMS_PROVIDER": "log",
        # The system clock: a replayed one restarts at its instant with each process, and the test compares
        # the instants of the killed notifier's leases with those of the restarted one's sends.
        "PREVEX_CLOCK": "",
    }
    async with running_notifier(pg_server, tmp_path_factory, env) as world:
        yield world
