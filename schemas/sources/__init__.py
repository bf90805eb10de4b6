"""Inbound source formats accepted by ingest, by format id (the ``format`` field of every document)."""

from __future__ import annotations

from typing import Final

from schemas.sources.bailleur import BAILLEUR_NOTICE_FORMAT, BailleurNotice
from schemas.sources.cj import CJ_ACT_FORMAT, CjAct
from schemas.sources.common import SourceRecord

__all__ = ["BAILLEUR_NOTICE_FORMAT", "CJ_ACT_FORMAT", "SOURCE_FORMATS", "BailleurNotice", "CjAct", "SourceRecord"]

SOURCE_FORMATS: Final[dict[str, type[SourceRecord]]] = {
    CJ_ACT_FORMAT: CjAct,
    BAILLEUR_NOTICE_FORMAT: BailleurNotice,
}
