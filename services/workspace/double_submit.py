"""Double-submit nonce for the workspace's forms shown before any session exists.

The expired link's « Recevoir un nouveau lien » and the secretariat's sign-in have no session yet to carry a
CSRF token, so each page sets a random nonce twice: in a cookie (``HttpOnly``, ``SameSite=Strict``, scoped to
its form's path, 15 minutes) and in a hidden ``nonce`` field. A POST is accepted only if both are present and
equal: a page on another site can neither read the cookie nor make the browser send it cross-site.

Why not a package: starlette ships no CSRF middleware, itsdangerous is not installed, and the other forms are
already protected by the session's token; what is left is a dozen lines of stdlib (``secrets``, ``hmac``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["NONCE_FIELD", "DoubleSubmit"]

NONCE_FIELD: Final = "nonce"
_LIFETIME_SECONDS: Final = 15 * 60


@dataclass(frozen=True, slots=True)
class DoubleSubmit:
    """One form's nonce cookie: its ``cookie`` name, the ``path`` it is sent on, ``secure`` off only for
    plain http on the loopback (as the session cookie)."""

    cookie: str
    path: str
    secure: bool

    def issue(self, render: Callable[[str], Response]) -> Response:
        """The page ``render`` makes from a fresh nonce (to put in the form's hidden field), with the same
        nonce set as the cookie; every page shown gets a new one."""
        nonce = secrets.token_urlsafe(32)
        response = render(nonce)
        response.set_cookie(
            self.cookie,
            nonce,
            max_age=_LIFETIME_SECONDS,
            path=self.path,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
        return response

    def matches(self, request: Request, form: FormData) -> bool:
        """Whether ``form``'s nonce field equals the request's cookie. A missing or empty cookie, a missing
        field or a file in its place is a mismatch. Compared in constant time, as bytes so that a forged
        non-ASCII value is a mismatch too, not an error."""
        sent, cookie = form.get(NONCE_FIELD), request.cookies.get(self.cookie)
        if not (isinstance(sent, str) and cookie):
            return False
        return hmac.compare_digest(sent.encode(), cookie.encode())

    def clear(self, response: Response) -> None:
        """Delete the cookie once its form has done its work, so the nonce cannot be used again."""
        response.delete_cookie(self.cookie, path=self.path, secure=self.secure, httponly=True)
