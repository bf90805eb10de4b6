"""The example payloads of the source formats (``schemas/sources/examples/``), for docs, tests and benchmarks.

The examples are the scenarios of docs/domain.md §9 as emitters would send them. ``variant`` derives an input
from one of them (another act, another household) without restating the whole payload.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

__all__ = ["EXAMPLES_DIR", "example_bytes", "example_document", "variant"]

EXAMPLES_DIR: Final = Path(__file__).resolve().parent / "examples"


def example_bytes(name: str) -> bytes:
    """The exact bytes of ``examples/<name>.json`` (``name`` without the extension)."""
    return (EXAMPLES_DIR / f"{name}.json").read_bytes()


def example_document(name: str) -> dict[str, Any]:
    """A fresh, mutable copy of ``examples/<name>.json``."""
    document: dict[str, Any] = json.loads(example_bytes(name))
    return document


def variant(name: str, **changes: object) -> bytes:
    """The example with ``changes`` applied, as JSON bytes; the file's exact bytes when there are none.

    A change's name is a path with ``__`` between keys: ``variant("s01-cj-commandement-payer",
    external_ref="CP-1", debt__amount=2460)``. A value of ``None`` is written as JSON ``null``.
    """
    if not changes:
        return example_bytes(name)
    document = example_document(name)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = document
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return json.dumps(document, ensure_ascii=False).encode()
