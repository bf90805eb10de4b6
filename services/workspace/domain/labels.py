"""French labels for the codes the workspace shows (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from schemas.assignment import AssignmentStatus
from schemas.procedure import Allocataire, Composition, EmitterType, LandlordType, Parc, TenantRole, Urgency
from schemas.referential import StructureTypology

__all__ = ["label"]

_LABELS: Final[Mapping[type[StrEnum], Mapping[StrEnum, str]]] = {
    AssignmentStatus: {
        AssignmentStatus.OUVERTE: "À traiter",
        AssignmentStatus.ACCEPTEE: "Acceptée",
        AssignmentStatus.REFUSEE: "Refusée",
        AssignmentStatus.EXPIREE: "Expirée sans réponse",
        AssignmentStatus.CLOTUREE: "Clôturée",
    },
    Urgency: {
        Urgency.LOW: "Faible",
        Urgency.NORMAL: "Normale",
        Urgency.HIGH: "Haute",
        Urgency.CRITICAL: "Critique",
    },
    Composition: {
        Composition.PERSONNE_SEULE: "Personne seule",
        Composition.COUPLE_SANS_ENFANT: "Couple sans enfant",
        Composition.MONOPARENTALE: "Famille monoparentale",
        Composition.COUPLE_AVEC_ENFANTS: "Couple avec enfants",
        Composition.AUTRE: "Autre",
        Composition.INCONNU: "Non renseignée",
    },
    Allocataire: {
        Allocataire.OUI: "Oui",
        Allocataire.NON: "Non",
        Allocataire.INCONNU: "Non renseigné",
    },
    Parc: {
        Parc.SOCIAL: "Parc social",
        Parc.PRIVE: "Parc privé",
        Parc.INCONNU: "Parc non renseigné",
    },
    LandlordType: {
        LandlordType.BAILLEUR_SOCIAL: "Bailleur social",
        LandlordType.PERSONNE_MORALE_PRIVEE: "Personne morale privée",
        LandlordType.PERSONNE_PHYSIQUE: "Personne physique",
        LandlordType.SCI_FAMILIALE: "SCI familiale",
        LandlordType.INCONNU: "Non renseigné",
    },
    TenantRole: {
        TenantRole.TITULAIRE: "Titulaire du bail",
        TenantRole.COTITULAIRE: "Cotitulaire du bail",
        TenantRole.CONJOINT: "Conjoint",
        TenantRole.OCCUPANT: "Occupant",
    },
    EmitterType: {
        EmitterType.COMMISSAIRE_JUSTICE: "Commissaire de justice",
        EmitterType.BAILLEUR_SOCIAL: "Bailleur social",
        EmitterType.BAILLEUR_PRIVE_PM: "Bailleur privé (personne morale)",
        EmitterType.ADMINISTRATEUR_BIENS: "Administrateur de biens",
        EmitterType.PREFECTURE: "Préfecture",
        EmitterType.CAF: "CAF",
        EmitterType.DEPARTEMENT: "Département",
    },
    StructureTypology: {
        StructureTypology.DEPARTEMENT_SERVICE_SOCIAL: "Service social départemental",
        StructureTypology.FSL: "Fonds de solidarité pour le logement",
        StructureTypology.CAF_MSA: "CAF / MSA",
        StructureTypology.BAILLEUR_SOCIAL: "Bailleur social",
        StructureTypology.ADIL: "ADIL",
        StructureTypology.CDAD_POINT_JUSTICE: "Point-justice (CDAD)",
        StructureTypology.CCAS: "CCAS",
        StructureTypology.ASSOCIATION: "Association",
        StructureTypology.BANQUE_DE_FRANCE: "Banque de France",
        StructureTypology.SIAO: "SIAO",
        StructureTypology.PREFECTURE_CCAPEX: "Préfecture / CCAPEX",
        StructureTypology.AUTRE: "Autre",
    },
}
"""One mapping per code list: lists share values (``INCONNU``, ``AUTRE``), which one flat mapping would mix up."""


def label(code: StrEnum) -> str:
    """The French label of ``code``; a code without one shows as itself (never an error on a page)."""
    return _LABELS.get(type(code), {}).get(code, code.value)
