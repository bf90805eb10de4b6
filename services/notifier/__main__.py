"""``python -m services.notifier`` / ``prevex-notifier``: run the notifier service."""

from __future__ import annotations

from services.notifier.bootstrap import build
from services.notifier.settings import NotifierSettings
from services.platform.runtime import serve


def main() -> None:
    serve(build(NotifierSettings()))


if __name__ == "__main__":
    main()
