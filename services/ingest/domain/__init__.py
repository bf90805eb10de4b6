"""Pure domain of the ingest service: source normalisation, legal-deadline rules, the COG.

The handler's whole contract is :func:`normalise` (plus :func:`reject_unknown_emitter` when the emitter
cannot be authenticated); the rest is exported for procedure linking and tests.
"""

from services.ingest.domain.cog import Commune, CommuneDirectory, Territory
from services.ingest.domain.normalise import Accepted, Emitter, idempotency_key, normalise, reject_unknown_emitter
from services.ingest.domain.rejections import Rejected, RejectionCode, RejectionError, WarningCode
from services.ingest.domain.rules import RULES_VERSION, derive

__all__ = [
    "RULES_VERSION",
    "Accepted",
    "Commune",
    "CommuneDirectory",
    "Emitter",
    "Rejected",
    "RejectionCode",
    "RejectionError",
    "Territory",
    "WarningCode",
    "derive",
    "idempotency_key",
    "normalise",
    "reject_unknown_emitter",
]
