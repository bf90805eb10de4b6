"""The end-to-end latency's observation point: an alert's first delivery accepted by its provider.

An alert keeps when ingest received the act that caused it (``act_received_at``, from ``orientation.decided``
1.2). The first time one of its deliveries is accepted, in the transaction that records it as sent, the alert
is stamped ``first_accepted_at``; that stamp is what makes the observation once per alert, whatever the
recipients, channels, retries or a crash between the send and its record (the delivery is then sent again
and stamped then). The caller observes the pairs returned once the transaction committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from services.platform.db import Conn

__all__ = ["first_acceptances"]


async def first_acceptances(
    conn: Conn, accepted: Sequence[tuple[uuid.UUID, datetime]]
) -> list[tuple[datetime, datetime]]:
    """Stamp each ``(alert id, accepted at)`` not stamped yet; return ``(act received at, accepted at)`` for
    those stamped now whose act's reception time is known (an alert no act caused has none)."""
    earliest: dict[uuid.UUID, datetime] = {}
    for alert_id, at in accepted:  # two deliveries of one alert recorded together: the first one counts
        earliest[alert_id] = min(at, earliest.get(alert_id, at))
    if not earliest:
        return []
    rows = await conn.fetch(
        "UPDATE alert AS a SET first_accepted_at = u.at"
        " FROM unnest($1::uuid[], $2::timestamptz[]) AS u(alert_id, at)"
        " WHERE a.alert_id = u.alert_id AND a.first_accepted_at IS NULL"
        " RETURNING a.act_received_at, u.at",
        list(earliest),
        list(earliest.values()),
    )
    return [(row["act_received_at"], row["at"]) for row in rows if row["act_received_at"] is not None]
