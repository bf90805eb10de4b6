"""Référentiel diffs (what a version records and republishes) and the assignment transition rules."""

from __future__ import annotations

import uuid

import pytest

from schemas.assignment import AssignmentOverride, AssignmentStatus, AssignmentStatusChange, StatusActor
from schemas.referential import Channels, Contact, RecordStatus
from services.orientation.domain import Referential, Refusal, Verdict, check_change, diff_referentials

S, A = AssignmentStatus, StatusActor


def _replace(referential: Referential, collection: str, item_id: str, **changes: object) -> Referential:
    items = tuple(i.model_copy(update=changes) if i.id == item_id else i for i in getattr(referential, collection))
    return referential.model_copy(update={collection: items})


def test_no_change_is_an_empty_diff(seed: Referential) -> None:
    diff = diff_referentials(seed, seed.model_copy(update={"offers": tuple(reversed(seed.offers))}))

    assert not diff
    assert diff.text() == "no change"
    assert diff.affected_structures == frozenset()


def test_contacts_are_matched_by_id_and_fields_named_by_path(seed: Referential) -> None:
    cd90 = seed.structure("CD90")
    extra = Contact(id="CD90-SMS", label="Astreinte", mobile="+33612000000", channels_enabled=Channels(sms=True))
    edited = _replace(
        seed, "structures", "CD90", contacts=(cd90.contacts[0].model_copy(update={"label": "Prévention"}), extra)
    )

    diff = diff_referentials(seed, edited)

    assert diff.text().splitlines() == [
        "~ structure CD90",
        '    contacts(id=CD90-PREVENTION).label: "Service prévention des expulsions (boîte générique)" → "Prévention"',
        "    contacts(id=CD90-SMS): (absent) → "
        '{"channels_enabled": {"email": false, "sms": true}, "email": null, "id": "CD90-SMS",'
        ' "is_generic_mailbox": false, "label": "Astreinte", "mobile": "+33612000000", "quiet_hours": null}',
    ]
    assert diff.summary() == ["~ structure CD90 (2 fields)"]


def test_an_offer_change_republishes_its_structures_before_and_after_a_move(seed: Referential) -> None:
    moved = _replace(seed, "offers", "PJ90-INFO", structure_id="CD90", priority=61)

    diff = diff_referentials(seed, moved)

    assert diff.text().splitlines() == [
        "~ offer PJ90-INFO",
        '    structure_id: "CDAD90" → "CD90"',
        "    priority: 60 → 61",
    ]
    assert diff.affected_structures == {"CDAD90", "CD90"}


def test_a_first_referential_adds_everything_and_a_new_default_referent_republishes_both(seed: Referential) -> None:
    first = diff_referentials(None, seed)
    switched = diff_referentials(seed, seed.model_copy(update={"default_referent": "CD90"}))

    assert first.summary()[0] == "~ referential default_referent (1 field)"
    assert len(first.changes) == 1 + len(seed.structures) + len(seed.offers)
    assert first.affected_structures == {s.id for s in seed.structures}
    assert switched.text() == '~ referential default_referent\n    default_referent: "CCAPEX90" → "CD90"'
    assert switched.affected_structures == {"CCAPEX90", "CD90"}


def test_suspension_shows_as_a_status_change(seed: Referential) -> None:
    diff = diff_referentials(seed, _replace(seed, "offers", "SIAO90", status=RecordStatus.SUSPENDED))

    assert diff.text() == '~ offer SIAO90\n    status: "active" → "suspended"'


def _change(
    status: AssignmentStatus, by: StatusActor, override: AssignmentOverride | None = None
) -> AssignmentStatusChange:
    return AssignmentStatusChange(
        assignment_id=uuid.uuid4(),
        procedure_id=uuid.uuid4(),
        structure_id="CD90",
        status=status,
        by=by,
        reason="HORS_COMPETENCE" if status is S.REFUSEE else None,
        override=override,
    )


# (current status, requested change, verdict, refusal)
TRANSITIONS = [
    (S.OUVERTE, _change(S.ACCEPTEE, A.PARTNER), Verdict.APPLIED, None),
    (S.OUVERTE, _change(S.REFUSEE, A.PARTNER), Verdict.APPLIED, None),
    (S.OUVERTE, _change(S.REFUSEE, A.CCAPEX), Verdict.APPLIED, None),
    (S.OUVERTE, _change(S.EXPIREE, A.SYSTEM), Verdict.APPLIED, None),
    (S.OUVERTE, _change(S.CLOTUREE, A.PARTNER), Verdict.APPLIED, None),
    (S.ACCEPTEE, _change(S.CLOTUREE, A.PARTNER), Verdict.APPLIED, None),
    (S.ACCEPTEE, _change(S.CLOTUREE, A.CCAPEX, AssignmentOverride.REMOVE), Verdict.APPLIED, None),
    (S.ACCEPTEE, _change(S.ACCEPTEE, A.PARTNER), Verdict.UNCHANGED, None),
    (S.REFUSEE, _change(S.CLOTUREE, A.CCAPEX, AssignmentOverride.REMOVE), Verdict.UNCHANGED, None),
    (S.ACCEPTEE, _change(S.REFUSEE, A.PARTNER), Verdict.REFUSED, Refusal.TRANSITION_NOT_ALLOWED),
    (S.ACCEPTEE, _change(S.EXPIREE, A.SYSTEM), Verdict.REFUSED, Refusal.TRANSITION_NOT_ALLOWED),
    (S.EXPIREE, _change(S.ACCEPTEE, A.PARTNER), Verdict.REFUSED, Refusal.TRANSITION_NOT_ALLOWED),
    (S.CLOTUREE, _change(S.OUVERTE, A.PARTNER), Verdict.REFUSED, Refusal.TRANSITION_NOT_ALLOWED),
    (S.OUVERTE, _change(S.EXPIREE, A.PARTNER), Verdict.REFUSED, Refusal.ACTOR_NOT_ALLOWED),
    (S.OUVERTE, _change(S.ACCEPTEE, A.SYSTEM), Verdict.REFUSED, Refusal.ACTOR_NOT_ALLOWED),
]


@pytest.mark.parametrize(("current", "change", "verdict", "refusal"), TRANSITIONS)
def test_transitions(
    current: AssignmentStatus, change: AssignmentStatusChange, verdict: Verdict, refusal: Refusal | None
) -> None:
    check = check_change(current, change)

    assert (check.verdict, check.refusal) == (verdict, refusal)
    assert bool(check.detail) is (verdict is not Verdict.APPLIED)
