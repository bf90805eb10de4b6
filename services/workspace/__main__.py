"""``python -m services.workspace`` / ``prevex-workspace``: run the partner workspace."""

from __future__ import annotations

from services.platform.runtime import serve
from services.workspace.bootstrap import build
from services.workspace.settings import WorkspaceSettings


def main() -> None:
    serve(build(WorkspaceSettings()))


if __name__ == "__main__":
    main()
