"""``python -m services.ingest`` / ``prevex-ingest``: run the ingest service."""

from __future__ import annotations

from services.ingest.bootstrap import build
from services.ingest.settings import IngestSettings
from services.platform.runtime import serve


def main() -> None:
    serve(build(IngestSettings()))


if __name__ == "__main__":
    main()
