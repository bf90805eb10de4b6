"""``prevex-ops``: the ops team's command line across the services (docs/operations.md)."""

from services.ops.cli import main, run

__all__ = ["main", "run"]
