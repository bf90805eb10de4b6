"""Requests made in the partner workspace for the notifier: a new link for an expired one.

A partner who opens an alert's link after its last day sees the expired page, which offers to send a new
link to the contacts of its structure. The workspace checks that the expired token was genuine (signed for
that assignment and structure), that the assignment is still open and still the structure's, and that no
request was made for it a short while ago; then it publishes ``workspace.link_requested`` through its
outbox. The notifier sends a fresh link for that assignment and structure to the structure's contact (by
email, by SMS when the structure is reached by SMS only). No address travels: the notifier knows the
contacts from the référentiel topic.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from schemas.common import Contract
from schemas.envelope import Envelope
from schemas.referential import RefId

__all__ = ["LinkRequested", "LinkRequestedEvent"]


class LinkRequested(Contract):
    """Payload of ``workspace.link_requested``: a new link is asked for ``assignment_id``, held by
    ``structure_id`` on ``procedure_id`` (``procedure_short_ref`` for the logs and the message's subject).

    ``request_id`` names the request: the notifier sends one message per request id, however often the
    event is delivered. References and codes only, never an address or a person.
    """

    request_id: uuid.UUID
    assignment_id: uuid.UUID
    procedure_id: uuid.UUID
    procedure_short_ref: str = Field(min_length=1, max_length=32)
    structure_id: RefId


class LinkRequestedEvent(Envelope):
    """A partner asked for a new link to one assignment, keyed by ``procedure_id``."""

    event_type: Literal["workspace.link_requested"] = "workspace.link_requested"
    payload: LinkRequested
