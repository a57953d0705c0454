"""Who is looking at the dashboard: the sign-in cookie, and CSRF protection of its forms.

The session cookie (``jobdesk_session``) holds the token the visitor signed in with: a
user token, a host-signed JWT or an admin token. It is verified again on every
request, so revoking the token (or the JWT expiring) ends the session at once; the
server keeps no session state. The cookie is ``HttpOnly`` (scripts cannot read it),
``SameSite=Lax`` and ``Secure`` when the request came over https.

Every form that changes something carries a CSRF token, a signed double-submit: the
``jobdesk_csrf`` cookie holds a random seed, and the form's token is the HMAC, keyed
by the desk's signing key for ``"csrf"`` (derived from the deployment's secret), of
that seed and the session's token. A POST whose token does not match is refused
(403): another site can neither read the seed nor forge the HMAC, and a token made
before signing in is worthless after.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from jobdesk.errors import InvalidInput, Unauthorized
from jobdesk.http.auth import user_from_jwt
from jobdesk.http.problems import ContentTooLarge
from jobdesk.http.runtime import runtime_of
from jobdesk.tokens import PREFIXES

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "FormTooLarge",
    "Session",
    "Visit",
    "csrf_matches",
    "read_form",
    "sign_in",
    "sign_out",
    "verify_token",
    "visit",
]

SESSION_COOKIE = "jobdesk_session"
CSRF_COOKIE = "jobdesk_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_MAX_COOKIE = 4096
_MAX_FIELDS = 50


@dataclass(frozen=True, slots=True)
class Session:
    """A verified sign-in: a user (by id) or an operator (by admin token name)."""

    kind: Literal["user", "admin"]
    #: the user id, or the admin token's name
    subject: str
    #: the token in the cookie, verified
    token: str


@dataclass(frozen=True, slots=True)
class Visit:
    """One request's view of the cookies: the session, if any, and its CSRF token."""

    session: Session | None
    #: the random seed of the CSRF cookie
    seed: str
    #: whether the seed is new (the response must set the cookie)
    new_seed: bool
    #: the token this session's forms carry
    csrf_token: str
    #: whether cookies must be ``Secure`` (the request came over https)
    secure: bool

    def finish(self, response: Response) -> Response:
        """Set the CSRF cookie on ``response`` if this visit made a new seed."""
        if self.new_seed:
            response.set_cookie(
                CSRF_COOKIE,
                self.seed,
                httponly=True,
                samesite="strict",
                secure=self.secure,
                path="/",
            )
        return response


async def verify_token(request: Request, token: str) -> Session:
    """The session a token opens; :class:`Unauthorized` for a bad or revoked one."""
    runtime = runtime_of(request)
    desk = runtime.require_desk()
    if token.startswith(PREFIXES["admin"]):
        return Session("admin", await desk.verify_admin_token(token), token)
    if token.startswith(PREFIXES["worker"]):
        raise Unauthorized("a worker token cannot sign in: use a user token or an admin token")
    if token.count(".") == 2:
        return Session("user", user_from_jwt(token, runtime.settings), token)
    return Session("user", await desk.verify_user_token(token), token)


def _csrf_token(key: bytes, seed: str, session_token: str) -> str:
    message = (
        b"jobdesk-csrf\x1f"
        + seed.encode()
        + b"\x1f"
        + hashlib.sha256(session_token.encode()).digest()
    )
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def visit(request: Request) -> Visit:
    """Read and verify the request's cookies (a session that no longer verifies is none)."""
    session = None
    token = request.cookies.get(SESSION_COOKIE, "")
    if token and len(token) <= _MAX_COOKIE:
        try:
            session = await verify_token(request, token)
        except (Unauthorized, InvalidInput):
            session = None
    seed = request.cookies.get(CSRF_COOKIE, "")
    new_seed = not (16 <= len(seed) <= 128 and seed.isascii())
    if new_seed:
        seed = secrets.token_urlsafe(32)
    key = runtime_of(request).require_desk().signing_key("csrf")
    csrf = _csrf_token(key, seed, session.token if session else "")
    return Visit(session, seed, new_seed, csrf, request.url.scheme == "https")


def csrf_matches(request: Request, current: Visit, form: dict[str, str]) -> bool:
    """Whether a POST carries this visit's CSRF token (form field or ``X-CSRF-Token``)."""
    if current.new_seed:
        return False  # no CSRF cookie came with the request: nothing to match
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return hmac.compare_digest(sent.encode(), current.csrf_token.encode())


class FormTooLarge(Exception):
    """A form's body went over the server's limit while it streamed in."""


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form body as ``{name: value}`` (a repeated name keeps every value,
    joined by ``\\x1f``); anything else is an empty form. :class:`FormTooLarge` if the
    body goes over the limit (``JOBDESK_MAX_BODY_BYTES``) as it streams in."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        raw = await request.body()
    except ContentTooLarge:
        raise FormTooLarge from None
    body = raw.decode("utf-8", errors="replace")
    fields = parse_qs(body, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    return {name: "\x1f".join(values) for name, values in fields.items()}


def sign_in(response: Response, token: str, current: Visit) -> Response:
    """Put ``token`` (verified by the caller) in the session cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=current.secure,
        path="/",
    )
    return current.finish(response)


def sign_out(response: Response, current: Visit) -> Response:
    """Clear the session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=current.secure, path="/"
    )
    return current.finish(response)
