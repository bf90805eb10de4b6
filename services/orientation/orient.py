"""Orientation's application service: procedure notices in, assignments and decisions out.

Runs in the caller's transaction: the inbox rows, the assignments, the decisions and their outbox
events commit together, so a redelivered notice changes nothing and a crash leaves nothing half-done.
A batch is matched against one référentiel version (the latest when the batch starts), with the
procedures it touches locked; it reads their state and this week's capacity once and writes its
results in a few statements at the end: a batch of 500 notices costs about ten round trips to
PostgreSQL, not ten per notice.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas import topics
from schemas.orientation import AssignmentKind, OrientationDecidedEvent, OrientationUnmatchedEvent
from schemas.procedure import ProcedureNotificationEvent
from services.orientation import repository as repo
from services.orientation.domain.events import (
    alert_header,
    decided_payload,
    override_payload,
    unmatched_payload,
    with_overrides,
)
from services.orientation.domain.facts import facts_from_notice, should_orient
from services.orientation.domain.working_days import add_working_days
from services.orientation.referential_store import PRODUCER, SCHEMA, ActiveReferential, ReferentialHolder
from services.platform.db import Conn
from services.platform.inbox import claim_events
from services.platform.logging import get_logger, log_context
from services.platform.outbox import OutboxMessage, enqueue

__all__ = ["CapacityLedger", "Orientation", "respond_by"]

log = get_logger(__name__)
_level = logging.getLogger(__name__)  # the stdlib logger behind ``log``: its level decides what is emitted

_ESCALATION_ZONE = ZoneInfo(repo.ESCALATION_ZONE)


class CapacityLedger:
    """This week's use of the offers that have a weekly capacity, for one batch.

    Read once when the batch starts and updated as the batch creates assignments, so a batch of 500
    notices makes one capacity query instead of 500 and still never overbooks an offer.
    """

    def __init__(self, active: ActiveReferential, used: dict[str, int]) -> None:
        self._capacity = {
            offer.id: offer.max_new_assignments_per_week
            for offer in active.matcher.offers
            if offer.id in active.matcher.capped_offers
        }
        self._used = used

    @classmethod
    async def load(cls, conn: Conn, active: ActiveReferential, *, now: datetime) -> CapacityLedger:
        return cls(active, await repo.weekly_assignment_counts(conn, active.matcher.capped_offers, now=now))

    def remaining(self) -> dict[str, int | None]:
        """Offer id → new assignments still possible this week, for the capped offers."""
        return {
            offer_id: cap - self._used.get(offer_id, 0) for offer_id, cap in self._capacity.items() if cap is not None
        }

    def record(self, offer_ids: Iterable[str]) -> None:
        """Count one new assignment against each of ``offer_ids``."""
        for offer_id in offer_ids:
            if offer_id in self._capacity:
                self._used[offer_id] = self._used.get(offer_id, 0) + 1


@dataclass
class _Batch:
    """One batch: the référentiel version and capacity it decides with, and what it writes, flushed in a
    few statements at its end (one round trip per table)."""

    active: ActiveReferential
    ledger: CapacityLedger
    now: datetime
    assignments: list[repo.NewAssignment] = field(default_factory=list)
    decisions: list[repo.DecisionRow] = field(default_factory=list)
    messages: list[OutboxMessage] = field(default_factory=list)
    headers: list[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    """What the batch's line says (:meth:`Orientation.handle_batch`): notices matched, fallbacks, assignments."""

    async def flush(self, conn: Conn) -> None:
        await repo.insert_assignments(conn, self.assignments, now=self.now)
        await repo.store_notice_headers(conn, self.headers)
        await repo.insert_decisions(conn, self.decisions)
        await enqueue(conn, SCHEMA, self.messages)


def respond_by(now: datetime, working_days: int | None) -> date | None:
    """The day a NEW assignment opened at ``now`` is to be answered by: ``working_days`` working days later
    (``None``: no such day). The escalation counts from the day the assignment opened, in its zone
    (escalation.py, the same ``repo.ESCALATION_ZONE``): the deadline an alert states is the day the reminder
    is due."""
    if working_days is None:
        return None
    return add_working_days(now.astimezone(_ESCALATION_ZONE).date(), working_days)


class Orientation:
    """Matches procedure notices against the latest référentiel and records the outcome."""

    def __init__(
        self, holder: ReferentialHolder, *, max_structures: int, response_working_days: int | None = None
    ) -> None:
        """``response_working_days``: the escalation's reminder delay (``ORIENTATION_ESCALATION_REMINDER_
        WORKING_DAYS``); each NEW assignment's ``respond_by`` is that many working days after the day it
        opens, the day the escalation sweep reminds its structure. ``None``: decisions carry no such day."""
        self._holder = holder
        self._k = max_structures
        self._response_days = response_working_days

    async def handle_batch(self, conn: Conn, events: Sequence[ProcedureNotificationEvent], *, now: datetime) -> None:
        """Orient a batch of notices in the caller's transaction, at ``now`` (the service's clock: the day
        offers are judged on, the week capacity is counted in, the new assignments' creation time).

        Notices already seen (inbox) are skipped; late ones and clôtures are not matched, only their alert
        header is kept (for a later CCAPEX ``ADD``). The first notice of a procedure also announces the
        structures the CCAPEX added before orientation knew it (``repo.unannounced_overrides``): as NEW
        assignments of its decision, or, from a notice not matched, in a ``CCAPEX_OVERRIDE`` decision.
        The batch reads the procedures' state and this week's capacity once, keeps both current as it decides
        (a procedure twice in a batch sees its first notice's assignments), and writes everything at the end.
        """
        if not events:
            return
        active = await self._holder.refresh(conn)
        # The procedures locked, then their notices claimed, in one statement.
        fresh = await claim_events(
            conn,
            [event.event_id for event in events],
            topics.PROCEDURE_NOTIFICATION,
            after_locking=repo.procedure_locks(event.payload.procedure_id for event in events),
        )
        claimed = []
        for event in events:
            with log_context(event_id=str(event.event_id), correlation_id=str(event.correlation_id)):
                if event.event_id not in fresh:
                    log.info("notice_already_oriented")
                else:
                    claimed.append(event)
                    if not should_orient(event.payload):
                        notice = event.payload
                        stage = notice.notification.act.stage.value
                        log.info("notice_not_oriented", is_late=notice.is_late, stage=stage)
            fresh.discard(event.event_id)  # the same event twice in one batch is oriented once
        if not claimed:
            return
        procedures = [event.payload.procedure_id for event in claimed]
        states = await repo.procedure_states(conn, procedures)
        unannounced = await repo.unannounced_overrides(conn, procedures)
        batch = _Batch(active, await CapacityLedger.load(conn, active, now=now), now)
        for event in claimed:
            # Popped: the first notice of the procedure announces its structures added by the CCAPEX, once.
            added = unannounced.pop(event.payload.procedure_id, {})
            with log_context(event_id=str(event.event_id), correlation_id=str(event.correlation_id)):
                if should_orient(event.payload):
                    self._orient(event, states[event.payload.procedure_id], added, batch)
                else:
                    _keep_header(event, added, batch)
        await batch.flush(conn)
        # One line per batch at INFO (a line per notice cost about a tenth of orientation's CPU at a trickle);
        # each notice's own line is at DEBUG.
        log.info(
            "notices_oriented",
            notices=len(events),
            claimed=len(claimed),
            referentiel_version=active.version,
            **batch.counts,
        )

    def _orient(
        self,
        event: ProcedureNotificationEvent,
        state: repo.ProcedureState,
        added: Mapping[str, uuid.UUID],
        batch: _Batch,
    ) -> None:
        notice = event.payload
        active, ledger = batch.active, batch.ledger
        result = active.matcher.decide(
            facts_from_notice(notice),
            open_structures=frozenset(state.open_assignments),
            excluded_structures=state.removed_structures,
            remaining_capacity=ledger.remaining(),
            k=self._k,
            on=batch.now.date(),
        )
        ids = {a.structure_id: state.open_assignments.get(a.structure_id) or uuid.uuid4() for a in result.assignments}
        typologies = {s.id: s.typologie for s in active.referential.structures}
        payload = decided_payload(
            notice,
            result,
            referentiel_version=active.version,
            assignment_ids=ids,
            typologies=typologies,
            referential=active.referential,
            respond_by=respond_by(batch.now, self._response_days),
        )
        payload = with_overrides(payload, added, respond_by=respond_by(batch.now, self._response_days))
        decided = OrientationDecidedEvent.caused_by(event, producer=PRODUCER, payload=payload)
        new = [a for a in result.assignments if a.kind is AssignmentKind.NEW]
        for assignment in new:
            batch.assignments.append(
                repo.NewAssignment(
                    assignment_id=ids[assignment.structure_id],
                    procedure_id=notice.procedure_id,
                    structure_id=assignment.structure_id,
                    offer_ids=list(assignment.offer_ids),
                    mandatory=assignment.mandatory,
                    priority=assignment.priority,
                    over_capacity=assignment.over_capacity,
                    explanation=assignment.explanation,
                    referentiel_version=active.version,
                    notification_id=notice.notification.notification_id,
                    correlation_id=event.correlation_id,
                    event_id=decided.event_id,
                )
            )
            state.open_assignments[assignment.structure_id] = ids[assignment.structure_id]
            ledger.record(assignment.offer_ids)
        batch.decisions.append(repo.DecisionRow.of(decided))
        batch.messages.append(OutboxMessage.of(topics.ORIENTATION_DECIDED, str(notice.procedure_id), decided))
        unmatched = unmatched_payload(notice, result)
        if unmatched is not None:
            unmatched_event = OrientationUnmatchedEvent.caused_by(event, producer=PRODUCER, payload=unmatched)
            batch.messages.append(
                OutboxMessage.of(topics.ORIENTATION_UNMATCHED, str(notice.procedure_id), unmatched_event)
            )
        batch.counts.update(
            matched=1, new_assignments=len(new), fallback_used=result.fallback_used, over_capacity=result.over_capacity
        )
        if _level.isEnabledFor(logging.DEBUG):  # skip building a line the handler would drop
            log.debug(
                "notice_oriented",
                procedure_ref=notice.procedure_short_ref,
                referentiel_version=active.version,
                structures=[a.structure_id for a in result.assignments],
                announced_overrides=sorted(added),
                new=len(new),
                fallback_used=result.fallback_used,
                over_capacity=result.over_capacity,
            )


def _keep_header(event: ProcedureNotificationEvent, added: Mapping[str, uuid.UUID], batch: _Batch) -> None:
    """A notice not oriented (late, clôture): its alert header is kept for a later CCAPEX ``ADD``, and the
    structures the CCAPEX already added without anything to show (``added``) are announced from it."""
    notice = event.payload
    header = alert_header(notice)
    batch.headers.append((notice.procedure_id, notice.notification.notification_id, header))
    if not added:
        return
    payload = override_payload(header, added=added, referentiel_version=batch.active.version)
    decided = OrientationDecidedEvent.caused_by(event, producer=PRODUCER, payload=payload)
    batch.decisions.append(repo.DecisionRow.of(decided))
    batch.messages.append(OutboxMessage.of(topics.ORIENTATION_DECIDED, str(notice.procedure_id), decided))
    log.info("overrides_announced", procedure_ref=notice.procedure_short_ref, structures=sorted(added))
