"""Who may call the admin API: a bearer token (``auth.py``) and the role a route needs.

No or an unknown token → 401; a token without the role → 403. Reading and simulating need ``ccapex-viewer``
or ``ccapex-admin``; changing needs ``ccapex-admin``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.orientation.api_services import AdminServices
from services.orientation.auth import Principal, Role

__all__ = ["Admin", "Reader"]

_bearer = HTTPBearer(auto_error=False, description="An admin token (python -m services.orientation.cli token new)")


def _services(request: Request) -> AdminServices:
    services: AdminServices = request.app.state.services
    return services


def _principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    found = _services(request).tokens.authenticate(credentials.credentials) if credentials else None
    if found is None:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return found


def _requires(*allowed: Role) -> Callable[[Principal], Principal]:
    def check(who: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not who.roles & set(allowed):
            raise HTTPException(403, f"this token lacks the role {' or '.join(allowed)}")
        return who

    return check


Reader = Annotated[Principal, Depends(_requires(Role.ADMIN, Role.VIEWER))]
Admin = Annotated[Principal, Depends(_requires(Role.ADMIN))]
