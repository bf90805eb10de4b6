"""The workspace's pure domain: actions and their folding, deadlines, ordering, référentiel search, sessions."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TypedDict

import pytest

from schemas.assignment import AssignmentOverride, AssignmentStatus, AssignmentStatusChange, StatusActor
from schemas.procedure import Allocataire, Composition, EmitterType, LandlordType, Parc, TenantRole, Urgency
from schemas.referential import Channels, Contact, OfferSummary, RecordStatus, StructureRecord, StructureTypology
from schemas.stages import Stage
from services.orientation.domain.lifecycle import Verdict
from services.workspace.domain.actions import Action, ActionError, allowed_actions, fold_status, status_change
from services.workspace.domain.casefile import ReceivedStage, deadlines, stage_lines, urgency_rank, why_assigned
from services.workspace.domain.labels import label
from services.workspace.domain.referential import search_structures
from services.workspace.domain.sessions import SessionPolicy, hash_secret, new_session

S = AssignmentStatus


class _Ids(TypedDict):
    """The keyword arguments naming one assignment, spread into ``status_change`` and the events."""

    assignment_id: uuid.UUID
    procedure_id: uuid.UUID
    structure_id: str


IDS: _Ids = {"assignment_id": uuid.uuid4(), "procedure_id": uuid.uuid4(), "structure_id": "CCAS-BELFORT"}


@pytest.mark.parametrize(
    ("status", "actions"),
    [
        (S.OUVERTE, [Action.ACCEPT, Action.REFUSE, Action.CLOSE]),
        (S.ACCEPTEE, [Action.CLOSE]),
        (S.REFUSEE, []),
        (S.EXPIREE, []),
        (S.CLOTUREE, []),
    ],
)
def test_the_actions_offered_are_the_transitions_orientation_applies(status: S, actions: list[Action]) -> None:
    assert allowed_actions(status) == actions


def test_an_action_is_a_partner_status_change_with_its_reason_code() -> None:
    change = status_change(Action.REFUSE, current=S.OUVERTE, reason="DEJA_SUIVI", **IDS)
    assert (change.status, change.reason, change.by) == (S.REFUSEE, "DEJA_SUIVI", StatusActor.PARTNER)
    assert status_change(Action.ACCEPT, current=S.OUVERTE, reason=None, **IDS).reason is None


@pytest.mark.parametrize(
    ("action", "current", "reason", "code"),
    [
        (Action.ACCEPT, S.ACCEPTEE, None, "NOT_ALLOWED"),
        (Action.REFUSE, S.EXPIREE, "DEJA_SUIVI", "NOT_ALLOWED"),
        (Action.REFUSE, S.OUVERTE, None, "REASON_REQUIRED"),
        (Action.CLOSE, S.ACCEPTEE, "", "REASON_REQUIRED"),
        (Action.REFUSE, S.OUVERTE, "DETTE_SOLDEE", "REASON_UNKNOWN"),  # a closure code, not a refusal one
        (Action.ACCEPT, S.OUVERTE, "DEJA_SUIVI", "REASON_UNKNOWN"),
    ],
)
def test_actions_that_cannot_be_taken_say_why(action: Action, current: S, reason: str | None, code: str) -> None:
    with pytest.raises(ActionError) as raised:
        status_change(action, current=current, reason=reason, **IDS)
    assert raised.value.code == code


def _change(status: S, by: StatusActor = StatusActor.PARTNER, **fields: object) -> AssignmentStatusChange:
    return AssignmentStatusChange(status=status, by=by, reason=fields.pop("reason", "X"), **IDS, **fields)  # type: ignore[arg-type]


def test_folding_a_status_uses_orientations_rules() -> None:
    assert fold_status(S.OUVERTE, _change(S.ACCEPTEE)).status is S.ACCEPTEE
    twice = fold_status(S.ACCEPTEE, _change(S.ACCEPTEE))
    assert (twice.status, twice.verdict) == (S.ACCEPTEE, Verdict.UNCHANGED)
    late = fold_status(S.REFUSEE, _change(S.ACCEPTEE))
    assert (late.status, late.verdict) == (S.REFUSEE, Verdict.REFUSED)
    assert fold_status(S.OUVERTE, _change(S.EXPIREE, StatusActor.SYSTEM)).status is S.EXPIREE
    assert fold_status(S.OUVERTE, _change(S.EXPIREE)).verdict is Verdict.REFUSED  # only the timer expires
    removal = _change(S.CLOTUREE, StatusActor.CCAPEX, override=AssignmentOverride.REMOVE)
    assert fold_status(S.ACCEPTEE, removal).status is S.CLOTUREE
    assert fold_status(S.REFUSEE, removal).status is S.REFUSEE


def _stage(stage: Stage, day: date, hearing: date | None = None, *, late: bool = False) -> ReceivedStage:
    return ReceivedStage(stage, day, hearing, EmitterType.COMMISSAIRE_JUSTICE, False, late)


def test_deadlines_give_the_latest_hearing_and_the_truce_of_the_day() -> None:
    stages = [
        _stage(Stage.ASSIGNATION, date(2026, 5, 4), hearing=date(2026, 6, 1)),
        _stage(Stage.AUDIENCE, date(2026, 6, 1), hearing=date(2026, 9, 7)),
    ]
    summer = deadlines(None, stages, date(2026, 7, 1))
    assert [(d.label, d.day, d.past) for d in summer] == [
        ("Audience", "07/09/2026", False),
        ("Prochaine trêve hivernale à partir du", "01/11/2026", False),
    ]
    winter = deadlines(None, stages, date(2026, 12, 2))
    assert winter[0].past
    assert (winter[-1].label, winter[-1].day) == (
        "Trêve hivernale en cours : expulsions de nouveau possibles le",
        "01/04/2027",
    )
    assert deadlines(None, [], date(2026, 3, 31))[-1].day == "01/04/2026"
    assert deadlines(None, [], date(2026, 4, 1))[-1].label.startswith("Prochaine trêve")


def test_stages_are_listed_by_act_date_with_their_markers() -> None:
    lines = stage_lines(
        [_stage(Stage.ASSIGNATION, date(2026, 5, 4)), _stage(Stage.COMMANDEMENT_PAYER, date(2026, 1, 5), late=True)]
    )
    assert [(line.stage, line.act_date, line.emitter, line.note) for line in lines] == [
        ("Commandement de payer", "05/01/2026", "Commissaire de justice", "reçu tardivement"),
        ("Assignation", "04/05/2026", "Commissaire de justice", ""),
    ]


def test_most_urgent_first_then_earliest_expulsion_then_longest_waiting() -> None:
    at = datetime(2026, 3, 2, tzinfo=UTC)
    cases = {
        "normal-old": (Urgency.NORMAL, None, at),
        "normal-new": (Urgency.NORMAL, None, at + timedelta(days=1)),
        "normal-dated": (Urgency.NORMAL, date(2026, 6, 1), at + timedelta(days=2)),
        "critical": (Urgency.CRITICAL, None, at + timedelta(days=3)),
        "unknown": (None, date(2026, 4, 1), at),
        "low": (Urgency.LOW, date(2026, 4, 1), at),
    }
    order = sorted(cases, key=lambda name: urgency_rank(*cases[name]))
    assert order == ["critical", "normal-dated", "normal-old", "normal-new", "low", "unknown"]


def _structure(
    sid: str, nom: str, kind: StructureTypology, *offers: OfferSummary, status: RecordStatus = RecordStatus.ACTIVE
) -> StructureRecord:
    contact = Contact(
        id=f"{sid}-M",
        label="Accueil",
        email=f"{sid.lower()}@x.test",
        channels_enabled=Channels(email=True),
        is_generic_mailbox=True,
    )
    return StructureRecord(
        structure_id=sid,
        nom=nom,
        typologie=kind,
        status=status,
        referentiel_version=4,
        default_referent=False,
        contacts=[contact],
        offers=list(offers),
    )


def _offer(oid: str, nom: str, *stages: Stage, status: RecordStatus = RecordStatus.ACTIVE) -> OfferSummary:
    return OfferSummary(id=oid, nom=nom, status=status, stages=list(stages), mandatory_stages=[])


def test_the_referential_search_by_name_stage_and_kind() -> None:
    records = [
        _structure("CCAS", "CCAS de Belfort", StructureTypology.CCAS, _offer("C1", "Aide d'urgence")),
        _structure("SIAO", "SIAO 90", StructureTypology.SIAO, _offer("S1", "Hébergement", Stage.DEMANDE_CFP)),
        _structure("OLD", "Défense des locataires", StructureTypology.ASSOCIATION, status=RecordStatus.ARCHIVED),
        _structure(
            "PJ",
            "Point-justice",
            StructureTypology.CDAD_POINT_JUSTICE,
            _offer("P1", "Défense", Stage.ASSIGNATION, status=RecordStatus.SUSPENDED),
        ),
    ]

    def names(text: str = "", stage: Stage | None = None, kind: StructureTypology | None = None) -> list[str]:
        return [c.name for c in search_structures(records, text=text, stage=stage, kind=kind)]

    assert names() == ["CCAS de Belfort", "Point-justice", "SIAO 90"]  # the archived one is not shown
    assert names(text="HEBERGEMENT") == ["SIAO 90"]  # an offer's name, without accents or case
    assert names(text="defense") == []  # archived structure, suspended offer
    # An offer without stages applies at every stage.
    assert names(stage=Stage.DEMANDE_CFP) == ["CCAS de Belfort", "SIAO 90"]
    assert names(kind=StructureTypology.SIAO) == ["SIAO 90"]
    [card] = search_structures(records, text="ccas")
    assert card.contacts == ["Accueil – ccas@x.test"]
    assert card.offers[0].stages == "toutes les étapes"


def test_a_session_ends_when_idle_or_too_old() -> None:
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert policy.alive(created_at=start, last_seen_at=start, now=start + timedelta(minutes=29))
    assert not policy.alive(created_at=start, last_seen_at=start, now=start + timedelta(minutes=30))
    late = start + timedelta(hours=12)
    assert not policy.alive(created_at=start, last_seen_at=late - timedelta(minutes=1), now=late)


def test_session_secrets_are_random_and_only_their_hash_is_kept() -> None:
    one, two = new_session(), new_session()
    assert one.secret != two.secret
    assert one.csrf_token != two.csrf_token
    assert one.secret_hash == hash_secret(one.secret) != hash_secret(two.secret)
    assert one.secret.encode() not in one.secret_hash


@pytest.mark.parametrize(
    "code_list",
    [
        AssignmentStatus,
        Urgency,
        Composition,
        Allocataire,
        Parc,
        LandlordType,
        TenantRole,
        EmitterType,
        StructureTypology,
    ],
)
def test_every_code_shown_has_its_own_french_label(code_list: type[StrEnum]) -> None:
    acronyms = {"CAF", "ADIL", "CCAS", "SIAO"}  # their label is their name
    unlabelled = [m for m in code_list if label(m) == m.value and m.value not in acronyms]
    assert not unlabelled


def test_lists_sharing_a_value_keep_their_own_labels() -> None:
    assert (label(Parc.INCONNU), label(Composition.INCONNU), label(Allocataire.INCONNU)) == (
        "Parc non renseigné",
        "Non renseignée",
        "Non renseigné",
    )


def test_why_a_structure_was_asked_in_plain_french() -> None:
    names = {"FSL90-MAINTIEN": "Aide FSL au maintien dans le logement"}
    assert why_assigned(["FSL90-MAINTIEN", "X"], names, mandatory=True, over_capacity=True) == [
        "Dispositifs concernés : « Aide FSL au maintien dans le logement », « X ».",
        "Votre saisine est obligatoire à cette étape de la procédure.",
        "Votre capacité d'accompagnement de la semaine était atteinte ; l'orientation est maintenue.",
    ]
    assert why_assigned([], {}, mandatory=False, over_capacity=False)[0].startswith("Aucun dispositif")
