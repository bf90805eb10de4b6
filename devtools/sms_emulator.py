"""Stand-ins for the notifier's neighbours, for tests, benchmarks and local runs; never used in production.

- the partners' side: local emulators of the SMS providers (OVHcloud, Brevo) and scripted SMTP replies,
  so that the real adapters are exercised;
- the upstream side: ``decided_event``, ``truce_end_event`` and ``structure_event`` build the events
  orientation publishes.

``SmsProviderEmulator`` listens on 127.0.0.1 and answers like the providers' endpoints the adapters call:

- OVHcloud: ``GET /1.0/auth/time`` and ``POST /1.0/sms/{serviceName}/jobs``, with the ``X-Ovh-*`` headers
  and the signature checked as OVHcloud does (403 ``INVALID_SIGNATURE`` otherwise); success is a
  sending report ``{"ids": [...], "validReceivers": [...], "invalidReceivers": [], "totalCreditsRemoved": 1}``;
- Brevo: ``POST /v3/transactionalSMS/send`` with the ``api-key`` header (401 otherwise); success is
  ``201 {"messageId": ...}``.

Replies can be scripted per recipient (``script``): a server error, a rate limit, an invalid number, a
reply slower than the client's timeout…; once a recipient's script is used up, messages are accepted.
Only accepted messages are recorded in ``received``; every request is counted in ``attempts``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from schemas.envelope import new_envelope_fields
from schemas.orientation import (
    AssignmentKind,
    DecidedAssignment,
    DecisionTrigger,
    OrientationDecided,
    OrientationDecidedEvent,
)
from schemas.procedure import Urgency
from schemas.referential import Contact, RecordStatus, ReferentialChangedEvent, StructureRecord, StructureTypology
from schemas.stages import Stage
from services.notifier.sms import ovh_signature

__all__ = [
    "ReceivedSms",
    "Reply",
    "SmsProviderEmulator",
    "SmtpReplies",
    "decided_event",
    "structure_event",
    "truce_end_event",
]


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``status`` and ``body`` (``None``: the provider's usual success body), sent
    after ``delay_s`` seconds. ``invalid_number`` makes the provider refuse the recipient its own way."""

    status: int = 200
    body: dict[str, Any] | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    invalid_number: bool = False

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status, {"message": "Internal server error"})

    @classmethod
    def rate_limited(cls, retry_after_s: int = 1) -> Reply:
        return cls(429, {"message": "Too many requests"}, headers={"Retry-After": str(retry_after_s)})

    @classmethod
    def hang(cls, delay_s: float) -> Reply:
        """No answer for ``delay_s`` (longer than the client's timeout), then a 504: the message was not taken."""
        return cls(504, {"message": "Gateway timeout"}, delay_s=delay_s)

    @classmethod
    def invalid(cls) -> Reply:
        return cls(invalid_number=True)


@dataclass(frozen=True)
class ReceivedSms:
    provider: str
    recipient: str
    text: str
    message_id: str


class SmsProviderEmulator:
    """OVHcloud and Brevo SMS endpoints on one local port; thread-safe accessors.

    ``ovh_clock_skew_s`` shifts the time ``/auth/time`` reports, to check that clients sign with the
    API's clock rather than their own.
    """

    def __init__(
        self,
        *,
        ovh_application_key: str = "ak-test",
        ovh_application_secret: str = "as-test",  # noqa: S107 (the emulator's own test credential)
        ovh_consumer_key: str = "ck-test",
        ovh_service_name: str = "sms-test-1",
        brevo_api_key: str = "brevo-test",
        ovh_clock_skew_s: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.ovh_application_key = ovh_application_key
        self.ovh_application_secret = ovh_application_secret
        self.ovh_consumer_key = ovh_consumer_key
        self.ovh_service_name = ovh_service_name
        self.brevo_api_key = brevo_api_key
        self.ovh_clock_skew_s = ovh_clock_skew_s
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._received: list[ReceivedSms] = []
        self._attempts: dict[str, int] = defaultdict(int)
        self._ids = itertools.count(100_001)
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def ovh_endpoint(self) -> str:
        return f"{self.base_url}/1.0"

    @property
    def brevo_endpoint(self) -> str:
        return f"{self.base_url}/v3"

    @property
    def received(self) -> list[ReceivedSms]:
        """Accepted messages, in arrival order (a copy)."""
        with self._lock:
            return list(self._received)

    def attempts(self, recipient: str) -> int:
        """How many send requests named ``recipient`` (E.164), accepted or not."""
        with self._lock:
            return self._attempts[_e164(recipient)]

    def script(self, recipient: str, *replies: Reply) -> None:
        """Answer the next requests for ``recipient`` with ``replies``, in order, then accept again."""
        with self._lock:
            self._scripts[_e164(recipient)].extend(replies)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="sms-emulator", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _next_reply(self, recipient: str) -> Reply:
        with self._lock:
            self._attempts[recipient] += 1
            script = self._scripts[recipient]
            return script.popleft() if script else Reply()

    def _accept(self, provider: str, recipient: str, text: str) -> str:
        with self._lock:
            message_id = str(next(self._ids))
            self._received.append(ReceivedSms(provider, recipient, text, message_id))
            return message_id


def _e164(number: str) -> str:
    return number if number.startswith("+") else f"+{number}"


def _handler(emulator: SmsProviderEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: numbers would end up on stderr

        def do_GET(self) -> None:
            if self.path == "/1.0/auth/time":
                self._send(200, int(time.time()) + emulator.ovh_clock_skew_s)
            else:
                self._send(404, {"message": "not found"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == f"/1.0/sms/{emulator.ovh_service_name}/jobs":
                self._ovh(body)
            elif self.path == "/v3/transactionalSMS/send":
                self._brevo(body)
            else:
                self._send(404, {"message": "not found"})

        def _ovh(self, body: bytes) -> None:
            if not self._ovh_signed(body):
                self._send(403, {"errorCode": "INVALID_SIGNATURE", "message": "Invalid signature"})
                return
            job = json.loads(body)
            recipient = _e164(job["receivers"][0])
            reply = self._reply(recipient)
            if reply.invalid_number:
                report = {"ids": [], "validReceivers": [], "invalidReceivers": [recipient], "totalCreditsRemoved": 0}
                self._send(200, report)
            elif reply.status == 200 and reply.body is None:
                message_id = emulator._accept("ovh", recipient, job["message"])
                report = {
                    "ids": [int(message_id)],
                    "validReceivers": [recipient],
                    "invalidReceivers": [],
                    "totalCreditsRemoved": 1,
                }
                self._send(200, report)
            else:
                self._send(reply.status, reply.body or {}, reply.headers)

        def _brevo(self, body: bytes) -> None:
            if self.headers.get("api-key") != emulator.brevo_api_key:
                self._send(401, {"code": "unauthorized", "message": "Key not found"})
                return
            request = json.loads(body)
            recipient = _e164(request["recipient"])
            reply = self._reply(recipient)
            if reply.invalid_number:
                self._send(400, {"code": "invalid_parameter", "message": "Invalid phone number"})
            elif reply.status == 200 and reply.body is None:
                self._send(201, {"messageId": int(emulator._accept("brevo", recipient, request["content"]))})
            else:
                self._send(reply.status, reply.body or {}, reply.headers)

        def _reply(self, recipient: str) -> Reply:
            reply = emulator._next_reply(recipient)
            time.sleep(reply.delay_s)
            return reply

        def _ovh_signed(self, body: bytes) -> bool:
            timestamp = self.headers.get("X-Ovh-Timestamp", "")
            if (
                self.headers.get("X-Ovh-Application") != emulator.ovh_application_key
                or self.headers.get("X-Ovh-Consumer") != emulator.ovh_consumer_key
                or not timestamp.isdigit()
                # OVHcloud refuses requests signed with a clock too far from its own.
                or abs(int(timestamp) - (int(time.time()) + emulator.ovh_clock_skew_s)) > 30
            ):
                return False
            expected = ovh_signature(
                secret=emulator.ovh_application_secret,
                consumer_key=emulator.ovh_consumer_key,
                method="POST",
                url=f"http://{self.headers['Host']}{self.path}",
                body=body.decode("utf-8"),
                timestamp=int(timestamp),
            )
            return self.headers.get("X-Ovh-Signature") == expected

        def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                return  # the client went away (it timed out)

    return Handler


class SmtpReplies:
    """Scripted SMTP replies per recipient, as a ``responder`` for ``devtools.SmtpSink``.

    ``script("a@x.test", "451 4.3.0 try again", "451 4.3.0 try again")`` makes the next two messages to
    that address fail with 451; later ones are accepted (``None``). Thread-safe: the sink answers from its
    own thread. ``refused`` counts the refusals given per recipient.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self.refused: dict[str, int] = defaultdict(int)

    def script(self, recipient: str, *replies: str) -> None:
        with self._lock:
            self._scripts[recipient].extend(replies)

    def __call__(self, envelope: Any) -> str | None:
        recipients = getattr(envelope, "rcpt_tos", None) or [""]
        with self._lock:
            script = self._scripts[recipients[0]]
            if not script:
                return None
            self.refused[recipients[0]] += 1
            return script.popleft()


def decided_event(
    ref: str,
    structure_ids: Sequence[str],
    *,
    stage: Stage = Stage.COMMANDEMENT_PAYER,
    urgency: Urgency = Urgency.NORMAL,
    commune: tuple[str, str] = ("90010", "Belfort"),
    kind: AssignmentKind = AssignmentKind.NEW,
    is_correction: bool = False,
    earliest: date | None = None,
    fallback_used: bool = False,
    procedure_id: uuid.UUID | None = None,
    assignment_ids: Sequence[uuid.UUID] = (),
    warnings: Mapping[str, Sequence[str]] | None = None,
) -> OrientationDecidedEvent:
    """An ``orientation.decided`` event as orientation publishes it: one assignment per structure, of
    ``kind``, with fresh ids unless ``assignment_ids`` (a later decision on the same assignments) are given;
    ``warnings``: the warning codes each structure id is told."""
    ids = list(assignment_ids) or [uuid.uuid4() for _ in structure_ids]
    payload = OrientationDecided(
        procedure_id=procedure_id or uuid.uuid4(),
        procedure_short_ref=ref,
        notification_id=uuid.uuid4(),
        stage=stage,
        urgency=urgency,
        commune_insee=commune[0],
        commune_name=commune[1],
        earliest_expulsion_date=earliest,
        is_correction=is_correction,
        referentiel_version=1,
        rules_version="stand-in",
        assignments=[
            _assignment(i, s, kind, (warnings or {}).get(s, ())) for i, s in zip(ids, structure_ids, strict=True)
        ],
        also_eligible=[],
        fallback_used=fallback_used,
    )
    fields = new_envelope_fields("orientation", schema_version=OrientationDecidedEvent.SCHEMA_VERSION)
    return OrientationDecidedEvent(**fields, payload=payload)


def truce_end_event(
    last: OrientationDecidedEvent, added: Sequence[str], *, truce_ends: date
) -> OrientationDecidedEvent:
    """The ``WINTER_TRUCE_END`` reminder orientation publishes for a procedure whose last decision is
    ``last`` (docs/domain.md §7): that decision repeated (same notification, not a correction) with
    ``earliest_expulsion_date = truce_ends``, each of its assignments as a stage update, and one new
    assignment per structure of ``added`` (the SIAO or Département structures found eligible)."""
    held = [a.model_copy(update={"kind": AssignmentKind.STAGE_UPDATE}) for a in last.payload.assignments]
    new = [_assignment(uuid.uuid4(), structure_id, AssignmentKind.NEW) for structure_id in added]
    payload = last.payload.model_copy(
        update={
            "trigger": DecisionTrigger.WINTER_TRUCE_END,
            "earliest_expulsion_date": truce_ends,
            "is_correction": False,
            "assignments": [*held, *new],
        }
    )
    return OrientationDecidedEvent(**new_envelope_fields("orientation"), payload=payload)


def _assignment(
    assignment_id: uuid.UUID, structure_id: str, kind: AssignmentKind, warnings: Sequence[str] = ()
) -> DecidedAssignment:
    return DecidedAssignment(
        assignment_id=assignment_id,
        structure_id=structure_id,
        offer_ids=[],
        kind=kind,
        mandatory=False,
        priority=0,
        over_capacity=False,
        matched_rules=[],
        explanation="stand-in decision",
        warnings=list(warnings),
    )


def structure_event(
    structure_id: str,
    contacts: Sequence[Contact],
    *,
    nom: str | None = None,
    default_referent: bool = False,
    version: int = 1,
) -> ReferentialChangedEvent:
    """A ``referentiel.changed`` event for one structure and its contacts (no offers: the notifier reads none)."""
    record = StructureRecord(
        structure_id=structure_id,
        nom=nom or f"Structure {structure_id}",
        typologie=StructureTypology.AUTRE,
        status=RecordStatus.ACTIVE,
        referentiel_version=version,
        default_referent=default_referent,
        contacts=list(contacts),
        offers=[],
    )
    return ReferentialChangedEvent(**new_envelope_fields("orientation"), payload=record)
