"""A case's journey as one list of steps in time order, with its personal data kept apart (pure, no I/O).

Each step is what one service recorded about the case: ``service``, ``kind`` (``act.accepted``,
``decision``, ``delivery.sent``…), ``facts`` (codes, dates, ids: never personal data) and ``personal``
(names, amounts, addresses, recipients, free texts quoting them), which only ``--with-personal-data`` shows.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

__all__ = ["Journey", "Step", "mask_figures", "render_json", "render_text"]

_FIGURES = re.compile(r"\d[\d  .,]*\d|\d")


@dataclass(frozen=True)
class Step:
    """One thing a service recorded about the case, at ``at``."""

    at: datetime
    service: str
    kind: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    personal: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Journey:
    """What ``trace`` found for one query: the procedures it names and their steps."""

    query: str
    procedures: Sequence[Mapping[str, Any]]
    steps: Sequence[Step]

    def in_time_order(self) -> list[Step]:
        """The steps sorted by time; steps of the same instant keep the order they were gathered in
        (ingest, orientation, notifier, workspace: the order of the flow)."""
        return sorted(self.steps, key=lambda step: step.at)


def mask_figures(text: str) -> str:
    """``text`` with every figure replaced by ``•``: an explanation may quote the household's amounts
    (``debt 2400 ≤ 6000 ✓``); what remains says which rule passed, not how much."""
    return _FIGURES.sub("•", text)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _step_dict(step: Step, *, personal: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"at": step.at, "service": step.service, "kind": step.kind, "facts": dict(step.facts)}
    if personal:
        out["personal"] = dict(step.personal)
    return _plain(out)  # type: ignore[no-any-return]


def render_json(journey: Journey, out: TextIO, *, personal: bool) -> None:
    """The journey as one JSON document: ``query``, ``procedures``, ``steps`` (time order); each step's
    ``personal`` object only when ``personal``."""
    document = {
        "query": journey.query,
        "procedures": _plain(list(journey.procedures)),
        "steps": [_step_dict(step, personal=personal) for step in journey.in_time_order()],
        "personal_data": personal,
    }
    json.dump(document, out, ensure_ascii=False, indent=2)
    out.write("\n")


def _pairs(values: Mapping[str, Any]) -> Iterable[str]:
    for name, value in values.items():
        if value is None or value in ([], ""):
            continue
        plain = _plain(value)
        text = plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)
        yield f"{name}={text}"


def render_text(journey: Journey, out: TextIO, *, personal: bool) -> None:
    """The journey for a person: one line per step (time, service, kind, facts), the multi-line facts
    (explanations) indented below; personal data only when ``personal``."""
    for procedure in journey.procedures:
        print("procedure  " + " ".join(_pairs(procedure)), file=out)
    for step in journey.in_time_order():
        facts = {k: v for k, v in step.facts.items() if not (isinstance(v, str) and "\n" in v)}
        head = f"{step.at.isoformat(timespec='seconds')}  {step.service:<11} {step.kind:<24}"
        print(f"{head} {' '.join(_pairs(facts))}", file=out)
        for name, value in step.facts.items():
            if isinstance(value, str) and "\n" in value:
                print(f"    {name}:", file=out)
                for line in value.splitlines():
                    print(f"      {line}", file=out)
        if personal and step.personal:
            print(f"    personal: {' '.join(_pairs(step.personal))}", file=out)
    if not personal:
        print("(without personal data: --with-personal-data shows it, and is written to the audit log)", file=out)
