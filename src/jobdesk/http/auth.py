"""Who is calling: user tokens, host-signed JWTs and worker tokens, as FastAPI dependencies.

User routes accept a jobdesk user token (``jdu_...``, from ``create_user_token``)
or, when ``JOBDESK_JWT_SECRET`` is set, an HS256 JWT signed by the host
application with the user id in ``sub`` and ``exp`` required. Worker routes
accept worker tokens (``jdw_...``) only, operator routes admin tokens (``jda_...``,
the dashboard's operator sign-in) only. A token of the wrong kind is refused
like any invalid one: 401 with ``WWW-Authenticate``. The one 403: a view token
(``jdv_...``, read-only, one job or group) on a route that is not a read of its
job or group; on another job or group it is the same 404 as a missing one. View
tokens are accepted by the reads of one job or group (their state and their event
stream), in the ``Authorization`` header or, for a browser's ``EventSource`` (which
cannot set headers), as the ``view_token`` query parameter.

Each authenticated request also carries its :class:`Credential` (in its scope, at
``CREDENTIAL_KEY``): what a long-lived event stream checks again while it stays
open, so that revoking a token (or a JWT's ``exp``) also ends what it opened.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import jwt
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jobdesk import validation, view_tokens
from jobdesk.errors import Forbidden, GroupNotFound, InvalidInput, JobNotFound, Unauthorized
from jobdesk.http.problems import MissingCredentials
from jobdesk.http.runtime import Runtime, runtime_of
from jobdesk.http.settings import Settings
from jobdesk.models import Worker
from jobdesk.tokens import PREFIXES
from jobdesk.view_tokens import VIEW_PREFIX, ViewGrant

__all__ = [
    "CREDENTIAL_KEY",
    "PRINCIPAL_KEY",
    "Credential",
    "CurrentAdmin",
    "CurrentUser",
    "CurrentWorker",
    "GroupReader",
    "JobReader",
    "credential_for",
    "current_admin",
    "current_user",
    "current_worker",
]

PRINCIPAL_KEY = "jobdesk.principal"
CREDENTIAL_KEY = "jobdesk.credential"
# RFC 7519 section 2: NumericDate claims are JSON numbers. PyJWT would take "exp": "99..."
# (a string) and compare it as a number; a host that signs strings has a bug to hear of.
_NUMERIC_CLAIMS = ("exp", "nbf", "iat")
# RFC 6750 section 2.1: the b64token syntax of a bearer credential.
_BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*) *", re.IGNORECASE)
_USER_PREFIX, _WORKER_PREFIX = PREFIXES["user"], PREFIXES["worker"]
_ADMIN_PREFIX = PREFIXES["admin"]

user_scheme = HTTPBearer(
    scheme_name="userToken",
    description="A user token (`jdu_...`) or a JWT signed by the host application.",
    auto_error=False,
)
worker_scheme = HTTPBearer(
    scheme_name="workerToken",
    description="A worker token (`jdw_...`).",
    auto_error=False,
)
admin_scheme = HTTPBearer(
    scheme_name="adminToken",
    description="An admin token (`jda_...`), from `jobdesk tokens create-admin`.",
    auto_error=False,
)


def bearer_token(request: Request) -> str:
    """The token of the ``Authorization: Bearer`` header, or :class:`Unauthorized`."""
    header = request.headers.get("authorization")
    if header is None:
        raise MissingCredentials(
            "missing Authorization header: send 'Authorization: Bearer <token>'"
        )
    match = _BEARER.fullmatch(header)
    if match is None:
        raise Unauthorized("malformed Authorization header: it must be 'Bearer <token>'")
    return match.group(1)


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def user_from_jwt(token: str, settings: Settings) -> str:
    """The user id in a host-signed JWT's ``sub``, or :class:`Unauthorized`."""
    if settings.jwt_secret is None:
        raise Unauthorized("this server accepts no JWTs (JOBDESK_JWT_SECRET is not set)")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the JWT expired: get a new one from the application") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid JWT: {exc}") from None
    for name in _NUMERIC_CLAIMS:
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Unauthorized(f"invalid JWT: its {name} must be a number (seconds since 1970)")
    try:
        return validation.principal_id("sub", claims["sub"])
    except InvalidInput as exc:
        raise Unauthorized(f"the JWT's sub is not a user id: {exc.rule}") from None


def _jwt_expiry(token: str, settings: Settings) -> float:
    """A verified JWT's ``exp`` plus the leeway, in seconds since 1970."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"]) + settings.jwt_leeway_seconds


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request was authenticated with, so a long-lived stream can check it again."""

    #: whose open streams count together: ``user:<id>``, ``worker:<token name>`` (unique
    #: among live worker tokens) or ``admin:<token name>``
    holder: str
    #: when it stops being valid by itself (a JWT's ``exp``), in seconds since 1970
    expires_at: float | None
    #: raises :class:`Unauthorized` once the token is revoked or expired
    check: Callable[[], Awaitable[object]] = field(repr=False, compare=False)
    #: what tells this credential apart (its token): the streams it opened share one
    #: check a round; None: not shared
    key: Hashable | None = field(default=None, repr=False, compare=False)


def credential_for(runtime: Runtime, token: str, holder: str) -> Credential:
    """The :class:`Credential` of a token that was just verified as ``holder``."""
    desk = runtime.require_desk()
    settings = runtime.settings
    if token.startswith(_WORKER_PREFIX):
        return Credential(holder, None, lambda: desk.verify_worker_token(token), token)
    if token.startswith(PREFIXES["admin"]):
        return Credential(holder, None, lambda: desk.verify_admin_token(token), token)
    if _looks_like_jwt(token):

        async def check() -> str:
            return user_from_jwt(token, settings)

        return Credential(holder, _jwt_expiry(token, settings), check, token)
    return Credential(holder, None, lambda: desk.verify_user_token(token), token)


async def current_user(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(user_scheme)],
) -> str:
    """Dependency: the id of the user calling a user route."""
    token = bearer_token(request)
    runtime = runtime_of(request)
    if token.startswith(_WORKER_PREFIX):
        raise Unauthorized(
            f"a worker token cannot call user routes: send a user token ({_USER_PREFIX}...)"
        )
    if token.startswith(VIEW_PREFIX):
        await runtime.require_desk().verify_view_token(token)  # a forged one stays a 401
        raise Forbidden(
            "a view token is read-only: it can read its own job or group (its state and "
            "its events), nothing else"
        )
    if _looks_like_jwt(token):
        user_id = user_from_jwt(token, runtime.settings)
    else:
        user_id = await runtime.require_desk().verify_user_token(token)
    request.scope[PRINCIPAL_KEY] = f"user:{user_id}"
    request.scope[CREDENTIAL_KEY] = credential_for(runtime, token, f"user:{user_id}")
    return user_id


async def current_worker(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(worker_scheme)],
) -> Worker:
    """Dependency: the worker calling a worker route."""
    token = bearer_token(request)
    if token.startswith(_USER_PREFIX) or _looks_like_jwt(token):
        raise Unauthorized(
            f"user tokens and JWTs cannot call worker routes: send a worker token "
            f"({_WORKER_PREFIX}...)"
        )
    runtime = runtime_of(request)
    worker = await runtime.require_desk().verify_worker_token(token)
    request.scope[PRINCIPAL_KEY] = f"worker:{worker.name}"
    request.scope[CREDENTIAL_KEY] = credential_for(runtime, token, f"worker:{worker.name}")
    return worker


async def current_admin(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(admin_scheme)],
) -> str:
    """Dependency: the name of the admin token calling an operator route."""
    token = bearer_token(request)
    if not token.startswith(_ADMIN_PREFIX):
        raise Unauthorized(f"operator routes need an admin token ({_ADMIN_PREFIX}...)")
    name = await runtime_of(request).require_desk().verify_admin_token(token)
    request.scope[PRINCIPAL_KEY] = f"admin:{name}"
    return name


async def _reader(request: Request, kind: str) -> str:
    """The user whose job or group (``{id}`` of the path) is being read: by a view token
    for that very job or group, else by the caller's user credential."""
    token = request.query_params.get("view_token")
    if token is None:
        header = request.headers.get("authorization", "")
        match = _BEARER.fullmatch(header)
        if match is not None and match.group(1).startswith(VIEW_PREFIX):
            token = match.group(1)
    if token is None:
        return await current_user(request, None)
    runtime = runtime_of(request)
    desk = runtime.require_desk()
    grant = await desk.verify_view_token(token)
    target = str(request.path_params.get("id", ""))
    if not grant.allows("group" if kind == "group" else "job", target):
        raise GroupNotFound(target) if kind == "group" else JobNotFound(target)
    holder = "view:" + hashlib.sha256(token.encode()).hexdigest()[:24]
    # The grant's expiry is on the store's clock; a stream ends by this process's clock.
    store_now = await desk.now()
    left = (grant.expires_at - store_now).total_seconds()
    ahead = store_now.timestamp() - time.time()  # the store's clock, less this process's

    async def check() -> ViewGrant:
        # A view token is not stored, so never revoked: its signature (under the key the
        # deployment has now) and its expiry are all a stream re-checks, the expiry on the
        # store's clock as read at the start. No query: ten thousand streams of a group
        # would otherwise ask the database for the time two thousand times a second.
        now = datetime.fromtimestamp(time.time() + ahead, UTC)
        return view_tokens.verify_view(desk.signing_key("view-token"), token, now)

    request.scope[PRINCIPAL_KEY] = f"user:{grant.user_id}"
    request.scope[CREDENTIAL_KEY] = Credential(holder, time.time() + left, check, token)
    return grant.user_id


async def job_reader(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(user_scheme)],
) -> str:
    """Dependency: whose job a read of one job is for (a user credential or a view token)."""
    return await _reader(request, "job")


async def group_reader(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(user_scheme)],
) -> str:
    """Dependency: whose group a read of one group is for (a user credential or a view token)."""
    return await _reader(request, "group")


CurrentAdmin = Annotated[str, Depends(current_admin)]
JobReader = Annotated[str, Depends(job_reader)]
GroupReader = Annotated[str, Depends(group_reader)]
CurrentUser = Annotated[str, Depends(current_user)]
CurrentWorker = Annotated[Worker, Depends(current_worker)]
