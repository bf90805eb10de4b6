"""``python -m services.ops``: the same as ``prevex-ops``."""

import sys

from services.ops.cli import main

sys.exit(main())
