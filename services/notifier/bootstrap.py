"""Composition root of the notifier: contacts and decisions in, deliveries out.

One consumer reads five topics (référentiel, decisions, the partners' refusals and the CCAPEX's removals on
``assignment.status``, orientation's escalations of unanswered assignments, the workspace's requests for a
new link) and writes alerts; two background loops move them on: the planner expands alerts into deliveries
and plans the daily digests, the sender sends what is due.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from importlib.resources import files
from typing import TypeVar

from aiokafka import ConsumerRecord

from schemas import topics
from schemas.assignment import AssignmentEscalationEvent, AssignmentStatusEvent
from schemas.envelope import Envelope
from schemas.notification import Channel as ChannelCode
from schemas.orientation import OrientationDecidedEvent
from schemas.referential import ReferentialChangedEvent
from schemas.workspace import LinkRequestedEvent
from services.notifier import repository as repo
from services.notifier.channels import Channel
from services.notifier.dispatch import SCHEMA, DispatchConfig, Dispatcher
from services.notifier.domain.alerts import check_templates
from services.notifier.domain.removal import check_removal_templates
from services.notifier.domain.schedule import RetryPolicy
from services.notifier.intake import (
    record_decisions,
    record_escalations,
    record_link_requests,
    record_refusals,
    record_removals,
    record_structure,
)
from services.notifier.link_requests import check_new_link_templates
from services.notifier.loops import forever
from services.notifier.settings import NotifierSettings
from services.notifier.sms import BrevoSmsChannel, LogSmsChannel, OvhSmsChannel
from services.notifier.smtp import SmtpChannel
from services.notifier.templates import load_templates
from services.platform.clock import announce_clock
from services.platform.consume import decode_topic, parking
from services.platform.db import Conn
from services.platform.kafka import subscribe_batch
from services.platform.links import LinkKeys
from services.platform.logging import get_logger
from services.platform.runtime import Runtime

__all__ = ["GROUP_ID", "TOPICS", "build", "build_channels", "dispatch_config"]

GROUP_ID = "prevex-notifier"
TOPICS = (
    topics.REFERENTIAL_CHANGED,
    topics.ORIENTATION_DECIDED,
    topics.ASSIGNMENT_STATUS,
    topics.ASSIGNMENT_ESCALATION,
    topics.WORKSPACE_LINK_REQUESTED,
)
"""What the notifier consumes, in the order a batch is handled."""

EventT = TypeVar("EventT", bound=Envelope)

log = get_logger(__name__)


def build_channels(settings: NotifierSettings) -> dict[ChannelCode, Channel]:
    """The email channel and the configured SMS provider, keyed by channel code."""
    sms: Channel
    if settings.sms_provider == "ovh":
        sms = OvhSmsChannel(
            endpoint=settings.ovh_endpoint,
            application_key=settings.ovh_application_key,
            application_secret=settings.ovh_application_secret.get_secret_value(),
            consumer_key=settings.ovh_consumer_key.get_secret_value(),
            service_name=settings.ovh_service_name,
            sender=settings.ovh_sender,
            timeout_s=settings.sms_timeout_s,
        )
    elif settings.sms_provider == "brevo":
        sms = BrevoSmsChannel(
            endpoint=settings.brevo_endpoint,
            api_key=settings.brevo_api_key.get_secret_value(),
            sender=settings.brevo_sender,
            timeout_s=settings.sms_timeout_s,
        )
    else:
        sms = LogSmsChannel(settings.sms_log_dir)
    return {ChannelCode.EMAIL: SmtpChannel(settings), ChannelCode.SMS: sms}


def dispatch_config(settings: NotifierSettings) -> DispatchConfig:
    return DispatchConfig(
        link_base_url=settings.link_base_url,
        # Raises when NOTIFIER_LINK_SECRETS is empty or too short: the service does not start.
        link_keys=LinkKeys.parse(settings.link_secrets.get_secret_value()),
        link_lifetime=timedelta(days=settings.link_lifetime_days),
        retry=RetryPolicy(max_attempts=settings.max_attempts, window_s=settings.retry_window_s),
        contact_wait_s=settings.contact_wait_s,
        lease_s=settings.send_lease_s,
        send_timeout_s=settings.send_timeout_s,
        concurrency=settings.send_concurrency,
        quiet_hours=settings.default_quiet_hours,
        quiet_sundays=settings.sms_quiet_sundays,
        zone=settings.zone,
        digest_time=settings.digest_time,
    )


def build(settings: NotifierSettings) -> Runtime:
    """Wire the notifier: one consumer of :data:`TOPICS` and the planner and sender loops.

    The templates are loaded and every stage × urgency rendered once here: a template or an SMS budget
    problem stops the service at start instead of failing partners' alerts one by one.
    """
    runtime = Runtime("notifier", settings, schema=SCHEMA, migrations=files("services.notifier") / "migrations")
    templates = load_templates(prefix=settings.alert_prefix, sms_prefix=settings.sms_prefix)
    check_templates(templates, link_base_url=settings.link_base_url)
    check_removal_templates(templates)
    check_new_link_templates(templates, link_base_url=settings.link_base_url)
    channels = build_channels(settings)
    dispatcher = Dispatcher(
        channels=channels,
        templates=templates,
        config=dispatch_config(settings),
        clock=settings.make_clock().now,
        on_accepted=runtime.metrics.observe_end_to_end,
    )

    async def on_records(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        # One transaction for the batch, in this order: a refusal, removal, escalation or link request finds
        # the alert of a decision consumed in the same batch, and the default referent a référentiel record
        # of it names; the decision's alert takes the earlier place in its procedure's sending order. A
        # failure rolls the batch back whole, as its offsets are committed whole: isolation then handles its
        # halves, where what committed before comes again as a no-op (inbox, référentiel versions).
        async with runtime.pool.acquire() as conn, conn.transaction():
            await _intake(conn, records, topics.REFERENTIAL_CHANGED, ReferentialChangedEvent, _record_structures)
            await _intake(conn, records, topics.ORIENTATION_DECIDED, OrientationDecidedEvent, record_decisions)
            await _intake(
                conn, records, topics.ASSIGNMENT_STATUS, AssignmentStatusEvent, record_refusals, record_removals
            )
            await _intake(conn, records, topics.ASSIGNMENT_ESCALATION, AssignmentEscalationEvent, record_escalations)
            await _intake(conn, records, topics.WORKSPACE_LINK_REQUESTED, LinkRequestedEvent, record_link_requests)

    # One consumer for the five topics: each consumer fetches every KAFKA_FETCH_MAX_WAIT_MS and heartbeats,
    # idle or not, a cost in this process and in the broker that five consumers paid five times.
    subscribe_batch(
        runtime.broker,
        *TOPICS,
        group_id=GROUP_ID,
        settings=settings,
        handler=on_records,
        on_poison=parking(lambda: runtime.pool),
    )

    async def plan(rt: Runtime) -> bool:
        async with rt.pool.acquire() as conn:
            return await dispatcher.plan(conn)

    async def send(rt: Runtime) -> bool:
        return (await dispatcher.send_due(rt.pool)).more

    runtime.add_health_http(host=settings.http_host, port=settings.http_port)
    runtime.add_startup(announce_clock)
    idle_s = settings.dispatch_interval_s
    runtime.add_loop(forever("planner", plan, idle_s, wake_on=repo.ALERTS_CHANNEL))
    runtime.add_loop(forever("sender", send, idle_s, wake_on=repo.DELIVERIES_CHANNEL, on_stop=_closer(channels)))
    return runtime


async def _intake(
    conn: Conn,
    records: Sequence[ConsumerRecord[bytes, bytes]],
    topic: str,
    event_type: type[EventT],
    *recorders: Callable[[Conn, list[EventT], str], Awaitable[object]],
) -> None:
    """Decode the batch's records of ``topic`` (parking what is not an ``event_type``), then give the events
    to each of ``recorders`` in turn; a topic absent from the batch costs no statement."""
    events = await decode_topic(conn, records, topic, event_type)
    if not events:
        return
    for record in recorders:
        await record(conn, events, topic)


async def _record_structures(conn: Conn, events: list[ReferentialChangedEvent], _: str) -> None:
    for event in events:
        await record_structure(conn, event)


def _closer(channels: Mapping[ChannelCode, Channel]) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        for channel in channels.values():
            await channel.close()

    return close
