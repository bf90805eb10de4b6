"""Every document a doc or a comment cites is in the repository, and so is the section it names.

Whoever clones the repository must be able to open what the code points to. So, in every text file of
the scanned folders:

- a ``*.md`` path resolves to a file, from the repository root or from the citing file's folder (a run's
  output under ``var/``, such as ``var/bench/results.md``, is not expected to exist);
- a section sign ``§N`` follows the document it belongs to (``docs/domain.md §2.6``, ``§2.6 and §2.7``
  after it), and that document has a heading numbered ``N``; alone, it is a section of the Markdown
  document it is written in; only an RFC is cited by section otherwise;
- the reference material that never was in the repository is not cited again: ``infra-notes``, a bare
  ``domain.md`` or ``architecture.md`` outside ``docs/``.

A path written as a string literal (``"README.md"``, ``/ "ingest.md"``) is code, not a citation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("services", "schemas", "tests", "docs", "README.md", "benchmarks", "scripts", "deploy")
TEXT_SUFFIXES = frozenset({".py", ".md", ".sql", ".yaml", ".yml", ".json", ".txt", ".html", ".toml", ".csv", ".sh"})
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", ".pytest_cache", ".mypy_cache", ".ruff_cache", "var"})

# A path ending in .md, not inside a URL or a longer path.
MD_PATH = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+\.md)\b")
# §6, §2.10, and the old brief's §6b.2, so that those are reported rather than skipped.
SECTION = re.compile(r"§\s?(\d[\dA-Za-z.]*[\dA-Za-z]|\d)")
RFC_SECTION = re.compile(r"RFC \d+ $")
# How far before a section sign its document may be named, within one paragraph: "docs/domain.md §8.3 / §9".
SECTION_REACH = 80
# Files a run writes (var/ is gitignored): cited as outputs, never in the repository.
GENERATED = "var/"
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
OLD_NAMES = re.compile(r"infra-notes|(?<![\w/-])(?:domain|architecture)\.md", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    text: str


@cache
def sections_of(document: Path) -> frozenset[str]:
    """The section numbers of a Markdown document's headings (``## 2. Rules`` → ``2``, ``### 2.6 …`` → ``2.6``)."""
    return frozenset(HEADING.findall(document.read_text(encoding="utf-8")))


def _resolve(cited: str, source: Path, root: Path) -> Path | None:
    for base in (root, source.parent):
        candidate = (base / cited).resolve()
        if candidate.is_file() and candidate.is_relative_to(root):
            return candidate
    return None


def _is_string_literal(text: str, match: re.Match[str]) -> bool:
    """``"README.md"``: a file name as a value in code, which the code itself reads or lists."""
    before, after = text[match.start() - 1 : match.start()], text[match.end() : match.end() + 1]
    return before in {'"', "'"} and after == before


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def reference_problems(text: str, source: Path, root: Path = ROOT) -> list[Problem]:
    """Every broken citation in ``text``, the contents of ``source`` (a file under ``root``)."""
    problems = []
    cited: list[tuple[int, str, Path | None]] = []  # (end position, as written, resolved file)
    for match in MD_PATH.finditer(text):
        if _is_string_literal(text, match) or match.group(1).startswith(GENERATED):
            continue
        target = _resolve(match.group(1), source, root)
        cited.append((match.end(), match.group(1), target))
        if target is None:
            problems.append(Problem(_line(text, match.start()), f"{match.group(1)} is not in the repository"))
    in_docs = source.parent == root / "docs"
    for match in OLD_NAMES.finditer(text):
        if not (in_docs and match.group(0).endswith(".md")):
            advice = f"{match.group(0)}: cite docs/domain.md or docs/architecture.md"
            problems.append(Problem(_line(text, match.start()), advice))
    for match in SECTION.finditer(text):
        problem = _section_problem(text, match, cited, source)
        if problem:
            problems.append(Problem(_line(text, match.start()), problem))
    return problems


def _section_problem(
    text: str, match: re.Match[str], cited: list[tuple[int, str, Path | None]], source: Path
) -> str | None:
    number = match.group(1)
    window_start = match.start() - SECTION_REACH
    owners = [
        (name, target)
        for end, name, target in cited
        if window_start <= end <= match.start() and "\n\n" not in text[end : match.start()]
    ]
    if not owners and source.suffix == ".md":
        owners = [(source.name, source)]  # a document's own sections
    if not owners:
        if RFC_SECTION.search(text, max(0, match.start() - 12), match.start()):
            return None
        return f"§{number} names no document: write it after the document it belongs to"
    name, target = owners[-1]
    if target is None:
        return None  # already reported as a missing document
    if number not in sections_of(target):
        return f"{name} has no section §{number}"
    return None


def scanned_files(root: Path = ROOT) -> Iterator[Path]:
    """Text files of the scanned folders, this test excepted (its samples are broken on purpose)."""
    for name in SCANNED:
        start = root / name
        paths = [start] if start.is_file() else start.rglob("*")
        for path in paths:
            if (
                path.is_file()
                and path.suffix in TEXT_SUFFIXES
                and not SKIPPED_DIRS.intersection(path.relative_to(root).parts)
                and path.resolve() != Path(__file__).resolve()
            ):
                yield path


def test_every_cited_document_and_section_exists() -> None:
    found = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # data in another encoding (a Latin-1 CSV sample) cites nothing
        found += [f"{path.relative_to(ROOT)}:{p.line}: {p.text}" for p in reference_problems(text, path)]
    assert found == [], "\n".join(found)


def test_the_scan_reaches_code_docs_and_generated_files() -> None:
    scanned = {path.relative_to(ROOT).as_posix() for path in scanned_files()}

    assert {
        "README.md",
        "docs/domain.md",
        "services/ingest/domain/rules.py",
        "services/ingest/migrations/001_init.sql",
        "schemas/json/procedure.notification.v1.schema.json",
        "deploy/referential/seed-90.yaml",
    } <= scanned


@pytest.mark.parametrize("document", ["docs/domain.md", "docs/architecture.md"])
def test_section_numbers_are_unique_and_the_checker_sees_them(document: str) -> None:
    numbers = HEADING.findall((ROOT / document).read_text(encoding="utf-8"))

    assert len(numbers) == len(set(numbers)) > 5
    assert {"1", "2"} <= set(numbers)


SOURCE = ROOT / "services" / "ingest" / "domain" / "rules.py"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Derived fields (docs/domain.md §2.6).", []),
        ("docs/domain.md §8.3 / §9: reference, stage", []),
        ("(docs/domain.md §2.6 and §2.7)", []),
        ("the guide (docs/ingest.md) and [x](docs/notifier.md#content)", []),
        ("servers drop idle clients (RFC 5321 §4.5.3.2)", []),
        ("GSM-7: ÑÜ§¿ is one character each", []),
        ("see https://example.org/docs/CHANGELOG.md", []),
        ('path = root / "docs" / "ingest.md"', []),
        ("writes **`var/bench/results.md`** (gitignored)", []),
        ('"""docs/domain.md §1.4 deduplication, then linking."""', []),
        ("(docs/domain.md §99)", ["docs/domain.md has no section §99"]),
        ("(docs/domain.md §2.6, §6b.2)", ["docs/domain.md has no section §6b.2"]),
        ("docs/ingest.md §3", ["docs/ingest.md has no section §3"]),
        ("codes (§6a.2)", ["§6a.2 names no document: write it after the document it belongs to"]),
        ("(docs/nowhere.md)", ["docs/nowhere.md is not in the repository"]),
        (
            "deadline (domain.md §1.2, stage 3)",
            ["domain.md is not in the repository", "domain.md: cite docs/domain.md or docs/architecture.md"],
        ),
        (
            "# hop costs (infra-notes §4)",
            [
                "infra-notes: cite docs/domain.md or docs/architecture.md",
                "§4 names no document: write it after the document it belongs to",
            ],
        ),
    ],
)
def test_the_checker_on_samples(text: str, expected: list[str]) -> None:
    assert [problem.text for problem in reference_problems(text, SOURCE)] == expected


def test_a_doc_may_cite_its_neighbours_by_bare_name_and_its_own_sections_alone() -> None:
    docs = ROOT / "docs"

    assert reference_problems("details in ingest.md and domain.md §2.6", docs / "orientation.md") == []
    assert reference_problems("the boundary of §2.6, as in §9.4", docs / "domain.md") == []
    assert reference_problems("(docs/architecture.md §4.4).\n\nAs §3.3 says", docs / "domain.md") == []
    assert [p.text for p in reference_problems("see §9.4", docs / "architecture.md")] == [
        "architecture.md has no section §9.4"
    ]


def test_problems_name_their_line() -> None:
    text = "first line\nsecond (docs/domain.md §99)\n"

    assert reference_problems(text, SOURCE) == [Problem(2, "docs/domain.md has no section §99")]
