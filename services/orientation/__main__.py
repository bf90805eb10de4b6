"""``python -m services.orientation`` / ``prevex-orientation``: run the orientation service."""

from __future__ import annotations

from services.orientation.bootstrap import build
from services.orientation.settings import OrientationSettings
from services.platform.runtime import serve


def main() -> None:
    serve(build(OrientationSettings()))


if __name__ == "__main__":
    main()
