"""Regenerate ``services/ingest/data/communes.json.gz``, the Code officiel géographique used by ingest.

Source: the npm package ``@etalab/decoupage-administratif`` (MIT licence, Etalab / data.gouv.fr), version
6.0.0 = COG 2026 millésime. Only communes of type ``commune-actuelle`` are kept (no communes déléguées or
associées, no arrondissements municipaux of Paris/Lyon/Marseille: the canonical record carries the
commune's own INSEE code).

Command (from the repository root)::

    mkdir -p /tmp/cog && (cd /tmp/cog && npm install @etalab/decoupage-administratif@6.0.0)
    .venv/bin/python scripts/cog/regenerate.py /tmp/cog/node_modules/@etalab/decoupage-administratif

Output: a gzip of one JSON document (``format`` ``prevex.cog-communes/1``) with compact columns::

    {"format": ..., "source": {"package": ..., "version": ...},
     "columns": ["insee", "name", "departement", "epci", "postal_codes"],
     "epci": ["200069052", ...],                       # EPCI SIRENs, referenced by index
     "rows": [["90010", "Belfort", "90", 0, "90000"], ...]}  # epci index or null; postal codes space-separated

The gzip header carries no timestamp, so regenerating from the same package gives the same bytes and a
clean ``git diff``. The reader is ``services.ingest.domain.cog.parse_communes``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

PACKAGE = "@etalab/decoupage-administratif"
OUTPUT_FORMAT = "prevex.cog-communes/1"
COLUMNS = ("insee", "name", "departement", "epci", "postal_codes")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "services" / "ingest" / "data" / "communes.json.gz"


def epci_by_commune(epcis: list[dict[str, Any]]) -> dict[str, str]:
    """INSEE code of each member commune → SIREN of its EPCI à fiscalité propre (one EPCI per commune)."""
    membership: dict[str, str] = {}
    for epci in epcis:
        for member in epci["membres"]:
            if member["code"] in membership:
                raise ValueError(f"commune {member['code']} belongs to two EPCI")
            membership[member["code"]] = epci["code"]
    return membership


def build_document(communes: list[dict[str, Any]], epcis: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """The compact document: current communes sorted by INSEE code, EPCI SIRENs factored into a table."""
    membership = epci_by_commune(epcis)
    current = sorted((c for c in communes if c["type"] == "commune-actuelle"), key=lambda c: c["code"])
    sirens = sorted({membership[c["code"]] for c in current if c["code"] in membership})
    index = {siren: position for position, siren in enumerate(sirens)}
    rows = [
        [
            c["code"],
            c["nom"],
            c["departement"],
            index.get(membership.get(c["code"], "")),
            " ".join(sorted(c.get("codesPostaux", []))),
        ]
        for c in current
    ]
    return {
        "format": OUTPUT_FORMAT,
        "source": {"package": PACKAGE, "version": version},
        "columns": list(COLUMNS),
        "epci": sirens,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", type=Path, help=f"installed {PACKAGE} folder (node_modules/...)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    package_dir: Path = args.package_dir
    version = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))["version"]
    communes = json.loads((package_dir / "data" / "communes.json").read_text(encoding="utf-8"))
    epcis = json.loads((package_dir / "data" / "epci.json").read_text(encoding="utf-8"))

    document = build_document(communes, epcis, version)
    payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    output: Path = args.output
    output.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    sys.stderr.write(
        f"{len(document['rows'])} communes, {len(document['epci'])} EPCI, {output.stat().st_size} bytes → {output}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
