"""Where an accepted notification goes in its procedure's history (docs/domain.md §1.2, §1.3).

Pure decisions; the application service (``services.ingest.intake``) finds the candidate procedures in
the database and applies what these functions decide:

- :func:`link_keys`: the hashed keys that find a household's procedure (no personal data in clear);
- :func:`place`: late, advanced, reopened, skipped stages, and the procedure's state afterwards;
- :func:`with_saisine`: the derived fields again, once the procedure's CCAPEX saisine date is known.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from schemas.procedure import LandlordType, ProcedureNotification
from schemas.stages import Stage, stage_rank
from services.ingest.domain.rejections import WarningCode
from services.ingest.domain.rules import derive

__all__ = [
    "LEGAL_CHAIN",
    "LinkKeys",
    "Placement",
    "ProcedureState",
    "ProcedureStatus",
    "fold",
    "link_keys",
    "place",
    "with_saisine",
]


class ProcedureStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


# The acts a procedure cannot lawfully do without, in order: the commandement before the assignation
# (art. 24 loi 89-462), a decision before the commandement de quitter (L.411-1 CPCE), the commandement
# de quitter before the réquisition of the force publique (R.153-1 CPCE). Audience, DSF, signification and
# the préfet's decision may legitimately never reach us, so skipping them is not flagged.
LEGAL_CHAIN: tuple[Stage, ...] = (
    Stage.COMMANDEMENT_PAYER,
    Stage.ASSIGNATION,
    Stage.DECISION,
    Stage.COMMANDEMENT_QUITTER,
    Stage.DEMANDE_CFP,
)

# Art. 24 II loi 89-462: the saisine delay binds landlords that are legal persons, SCI familiales excepted.
_SAISINE_BOUND = frozenset({LandlordType.BAILLEUR_SOCIAL, LandlordType.PERSONNE_MORALE_PRIVEE})


@dataclass(frozen=True, slots=True)
class LinkKeys:
    """``link_key`` = commune | address | first tenant; ``address_key`` = commune | address (sha256 hex)."""

    link_key: str
    address_key: str


_COMBINING_MARKS = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_NOT_ALNUM = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form: 'Rue de  l’Église' == 'RUE DE L EGLISE'.

    Letters of every script are kept (dropping non-Latin ones would fold distinct names together).
    """
    decomposed = _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", text))
    return _NOT_ALNUM.sub(" ", decomposed).lower().strip()


def link_keys(record: ProcedureNotification) -> LinkKeys:
    """The household's keys (docs/domain.md §1.3, step 2), hashed so no name is stored in clear for them."""
    address = record.dwelling.address
    tenant = record.household.tenants[0]
    address_part = f"{address.commune_insee}|{fold(address.line1)}"
    person_part = f"{fold(tenant.last_name)}|{fold(tenant.first_name)}"
    return LinkKeys(
        link_key=hashlib.sha256(f"{address_part}|{person_part}".encode()).hexdigest(),
        address_key=hashlib.sha256(address_part.encode()).hexdigest(),
    )


@dataclass(frozen=True, slots=True)
class ProcedureState:
    """What :func:`place` needs to know of the procedure an act is linked to."""

    current_rank: int
    """Rank of the highest stage received so far; 0 when only unranked events were."""
    status: ProcedureStatus
    is_new: bool
    """Created for this act: it has no history to be late against or to skip stages of."""

    @classmethod
    def new(cls) -> ProcedureState:
        return cls(current_rank=0, status=ProcedureStatus.OPEN, is_new=True)


@dataclass(frozen=True, slots=True)
class Placement:
    """An act's place in its procedure, and the procedure's state once the act is recorded."""

    is_late: bool
    advanced: bool
    reopened: bool
    skipped: tuple[Stage, ...]
    status: ProcedureStatus
    current_rank: int

    @property
    def warnings(self) -> tuple[WarningCode, ...]:
        """The linking warnings this placement implies, in a stable order."""
        if not (self.is_late or self.skipped or self.reopened):
            return ()  # the common case, on the hot path of every batch
        flags = (
            (self.is_late, WarningCode.LATE_EARLIER_STAGE),
            (bool(self.skipped), WarningCode.STAGE_SKIPPED),
            (self.reopened, WarningCode.REOPENED),
        )
        return tuple(code for applies, code in flags if applies)


def _skipped(current_rank: int, rank: int) -> tuple[Stage, ...]:
    return tuple(s for s in LEGAL_CHAIN if current_rank < (stage_rank(s) or 0) < rank)


def place(state: ProcedureState, stage: Stage) -> Placement:
    """docs/domain.md §1.2 rules for one act of ``stage`` on a procedure in ``state``.

    - ``current_stage`` is the highest rank received; a lower rank is stored as late (``LATE_EARLIER_STAGE``)
      and triggers nothing downstream.
    - ``CLOTURE`` closes the procedure; a later *ranked* act reopens it (``REOPENED``), restarting the stage
      history from that act, even at a lower rank (a new impayé starts again at the beginning).
    - An advance over a stage of :data:`LEGAL_CHAIN` never received is ``STAGE_SKIPPED`` (procedures the
      act creates have no history, and one known only by unranked events has no position to skip from).
    - Unranked side events (plan d'apurement, protocole, surendettement) change neither rank nor status.
    """
    rank = stage_rank(stage)
    if rank is None:
        status = ProcedureStatus.CLOSED if stage is Stage.CLOTURE else state.status
        return Placement(False, False, False, (), status, state.current_rank)
    if state.status is ProcedureStatus.CLOSED:
        return Placement(False, True, True, (), ProcedureStatus.OPEN, rank)
    if rank < state.current_rank:
        return Placement(True, False, False, (), state.status, state.current_rank)
    if rank == state.current_rank:
        return Placement(False, False, False, (), state.status, rank)
    skipped = () if state.is_new or state.current_rank == 0 else _skipped(state.current_rank, rank)
    return Placement(False, True, False, skipped, state.status, rank)


def with_saisine(record: ProcedureNotification, saisine_date: date | None, *, clock: date) -> ProcedureNotification:
    """The record with ``earliest_assignation_date`` bounded by its procedure's CCAPEX saisine as well.

    Normalisation sees one act only; the saisine (docs/domain.md §2.5: no assignation before 2 months
    after it, for landlords that are legal persons) may have come in an earlier notification of the
    procedure. Unchanged when there is no such saisine or the landlord is not bound by it.
    """
    if saisine_date is None or record.landlord.type not in _SAISINE_BOUND:
        return record
    landlord_type = record.landlord.type
    derived = derive(record.act, landlord_type, record.lease, record.debt, clock=clock, saisine_date=saisine_date)
    return record if derived == record.derived else record.model_copy(update={"derived": derived})
