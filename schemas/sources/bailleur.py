"""``prevex.bailleur-notice/1``: a notice from a landlord (bailleur social, private legal person or its
administrateur de biens) about the pre-litigation stages, as sent to ingest.

The bailleur format has the common blocks of :mod:`schemas.sources.common` and no stage-specific block
except ``cloture``: a plan d'apurement or a protocole de cohésion sociale is dated by ``act_date`` and the
canonical record (v1) has no field for their terms.

Example payloads: ``schemas/sources/examples/s02-*.json``, ``s05-*.json``, ``s08-*.json``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from schemas.sources.common import SourceRecord
from schemas.stages import Stage

__all__ = ["BAILLEUR_NOTICE_FORMAT", "BailleurNotice"]

BAILLEUR_NOTICE_FORMAT = "prevex.bailleur-notice/1"


class BailleurNotice(SourceRecord):
    """A landlord's notice (format ``prevex.bailleur-notice/1``)."""

    FORMAT_ID: ClassVar[str] = BAILLEUR_NOTICE_FORMAT
    STAGES: ClassVar[frozenset[Stage]] = frozenset(
        {
            Stage.IMPAYE_CONSTATE,
            Stage.SIGNALEMENT_CAF,
            Stage.SAISINE_CCAPEX_BAILLEUR,
            Stage.PLAN_APUREMENT,
            Stage.PROTOCOLE_COHESION_SOCIALE,
            Stage.CLOTURE,
        }
    )

    format: Literal["prevex.bailleur-notice/1"]
