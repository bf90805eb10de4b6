"""Dwelling address → canonical :class:`~schemas.procedure.Address`, located in the COG and the territory."""

from __future__ import annotations

from schemas.procedure import Address
from schemas.sources.common import SourceAddress
from services.ingest.domain.cog import Commune, CommuneDirectory, Territory
from services.ingest.domain.rejections import Findings, RejectionCode, WarningCode
from services.ingest.domain.values import FieldReader

__all__ = ["locate_commune", "resolve_address"]

_PATH = "dwelling.address"


def locate_commune(address: SourceAddress, communes: CommuneDirectory, findings: Findings) -> Commune | None:
    """The address's commune: by INSEE code when given, else by postal code + commune name.

    A given but unknown INSEE code is ``COMMUNE_UNKNOWN`` (never silently replaced by the name lookup);
    no usable way to find the commune is ``ADDRESS_MISSING`` (docs/domain.md §3.1).
    """
    if address.commune_insee:
        commune = communes.get(address.commune_insee.strip())
        if commune is None:
            findings.reject(RejectionCode.COMMUNE_UNKNOWN, f"{_PATH}.commune_insee", "not a current commune of the COG")
        return commune
    if address.postal_code and address.commune_name:
        commune = communes.resolve(address.postal_code, address.commune_name)
        if commune is None:
            findings.reject(
                RejectionCode.ADDRESS_MISSING,
                f"{_PATH}.commune_name",
                "postal_code and commune_name do not identify one current commune",
            )
        return commune
    findings.reject(
        RejectionCode.ADDRESS_MISSING, f"{_PATH}.commune_insee", "commune_insee or postal_code + commune_name required"
    )
    return None


def _check_location(address: SourceAddress, commune: Commune, territory: Territory, findings: Findings) -> None:
    if not territory.covers(commune):
        findings.reject(
            RejectionCode.COMMUNE_OUT_OF_TERRITORY, f"{_PATH}.commune_insee", "commune outside the served territory"
        )
    if address.postal_code and address.postal_code not in commune.postal_codes:
        findings.warn(WarningCode.POSTAL_CODE_COMMUNE_MISMATCH)


def resolve_address(
    address: SourceAddress | None, *, communes: CommuneDirectory, territory: Territory, reader: FieldReader
) -> Address | None:
    """The canonical address, or ``None`` with the reasons recorded in ``reader.findings``.

    The commune's name, département and EPCI come from the COG, so every later consumer (orientation by
    EPCI, alert texts) sees the official spelling whatever the emitter wrote.
    """
    findings = reader.findings
    errors_before = len(findings.errors)
    if address is None:
        findings.reject(RejectionCode.ADDRESS_MISSING, _PATH, "dwelling address required")
        return None
    line1 = (address.line1 or "").strip()
    if not line1:
        findings.reject(RejectionCode.ADDRESS_MISSING, f"{_PATH}.line1", "street address line required")
    if not address.postal_code:
        findings.reject(RejectionCode.ADDRESS_MISSING, f"{_PATH}.postal_code", "postal code required")
    commune = locate_commune(address, communes, findings)
    if commune is not None:
        _check_location(address, commune, territory, findings)
    lat = reader.coordinate(address.lat, f"{_PATH}.lat", bound=90)
    lon = reader.coordinate(address.lon, f"{_PATH}.lon", bound=180)
    if commune is None or not address.postal_code or len(findings.errors) > errors_before:
        return None
    return Address(
        line1=line1,
        line2=address.line2,
        postal_code=address.postal_code,
        commune_insee=commune.insee,
        commune_name=commune.name,
        departement=commune.departement,
        epci_siren=commune.epci_siren,
        ban_id=address.ban_id,
        lat=lat,
        lon=lon,
    )
