"""The rule that keeps PREVEX_CLOCK meaningful: no service module reads the machine's date or time itself.

Every "now" of ingest, orientation, notifier and platform comes from the injected clock
(``services/platform/clock.py``); a new ``datetime.now()`` elsewhere would silently ignore a replayed date.
The scan reads the syntax tree, so a docstring that mentions ``date.today()`` is not a call.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ROOT / "services"
CLOCK_MODULE = SERVICES / "platform" / "clock.py"
# The local infrastructure (broker, PostgreSQL, SMTP sink used by `make run` and the tests) is not a
# service: its SMTP sink names the mail files it stores by the machine's time.
NOT_A_SERVICE = SERVICES / "devenv"
FORBIDDEN = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def _clock_reads(source: str, name: str) -> list[str]:
    """``name:line call`` for each ``datetime.now()``-like call in ``source`` (``datetime.datetime.now()`` too)."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        owner_name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
        if (owner_name, node.func.attr) in FORBIDDEN:
            found.append(f"{name}:{node.lineno} {owner_name}.{node.func.attr}()")
    return found


def _service_modules() -> list[Path]:
    return sorted(
        path for path in SERVICES.rglob("*.py") if path != CLOCK_MODULE and not path.is_relative_to(NOT_A_SERVICE)
    )


def test_no_service_module_reads_the_date_or_time_but_the_clock() -> None:
    modules = _service_modules()
    assert len(modules) > 50, "the scan must see the services' modules"
    offenders = [
        read for path in modules for read in _clock_reads(path.read_text("utf-8"), str(path.relative_to(ROOT)))
    ]
    assert offenders == [], "use the injected clock (services/platform/clock.py) instead of " + ", ".join(offenders)


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import UTC, datetime\nx = datetime.now(UTC)\n",
        "from datetime import date\nx = date.today()\n",
        "import datetime\nx = datetime.datetime.utcnow()\n",
        "from datetime import datetime\nx = datetime.today()\n",
    ],
)
def test_the_scan_finds_each_way_of_reading_the_time(source: str) -> None:
    assert len(_clock_reads(source, "probe.py")) == 1


def test_the_scan_ignores_words_in_docstrings_and_comments() -> None:
    source = '"""Never ``date.today()``."""\n# datetime.now(UTC) here is a comment\nx = now()\n'
    assert _clock_reads(source, "probe.py") == []


def test_the_clock_module_is_the_one_that_reads_the_time() -> None:
    [read] = _clock_reads(CLOCK_MODULE.read_text("utf-8"), "clock.py")
    assert read.endswith(" datetime.now()")
