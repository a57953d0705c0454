"""Pure ASGI middleware: the request context (id, access log, timing), the body limit
and deadline, and the security headers every response carries."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobdesk.http.auth import PRINCIPAL_KEY
from jobdesk.http.metrics import Metrics
from jobdesk.http.problems import (
    REQUEST_ID_KEY,
    ContentTooLarge,
    internal_error_response,
    problem_response,
)

__all__ = ["API_SECURITY_HEADERS", "CORS", "BodyLimit", "RequestContext", "SecurityHeaders"]

#: Sent with every response that does not set its own (the dashboard's pages do): JSON
#: and event streams run no script, load nothing and are framed by no one.
API_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

_access = logging.getLogger("jobdesk.http.access")
_errors = logging.getLogger("jobdesk.http")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


class RequestContext:
    """Gives each request an id (``X-Request-ID``), times it, logs it, and is the last resort.

    An exception that nothing else answered becomes a bare problem+json 500 here,
    logged with its traceback and request id; the client never sees the trace.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, trust_request_id: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.trust_request_id = trust_request_id

    def _request_id(self, scope: Scope) -> str:
        if self.trust_request_id:
            offered = Headers(scope=scope).get("x-request-id")
            if offered is not None and _REQUEST_ID.fullmatch(offered):
                return offered
        return uuid.uuid4().hex

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        scope[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            _errors.exception("unexpected error (request %s)", request_id)
            if status == 0:
                await internal_error_response(scope)(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.request(scope["method"], template, status, seconds)
            if _access.isEnabledFor(logging.INFO):  # off under `--log-level warning`: no cost
                _log_access(scope, request_id, template, status, seconds)


def _log_access(scope: Scope, request_id: str, template: str, status: int, seconds: float) -> None:
    """One access-log line, with the request's fields for JSON logs."""
    _access.info(
        "%s %s %d %.1fms",
        scope["method"],
        scope["path"],
        status,
        seconds * 1000,
        extra={
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "route": template,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": _client(scope),
            "principal": scope.get(PRINCIPAL_KEY),
        },
    )


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return None if not client else str(client[0])


class BodyTimeout(HTTPException):
    """The request body did not all arrive in time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"the request body did not arrive within {seconds:g} seconds",
            headers={"Connection": "close"},
        )


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, counting while they stream in,
    and bodies that have not all arrived ``timeout`` seconds after the app began to read
    them with 408 (a client trickling its body byte by byte holds no connection for long).

    A ``Content-Length`` over the limit is refused before the body is read on the
    API; a body without one (chunked), or a dashboard form (whose page shows the
    refusal next to its field), is refused as soon as the bytes received pass the
    limit.
    """

    def __init__(self, app: ASGIApp, *, limit: int, timeout: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.limit
            and scope["path"].startswith("/api/")
        ):
            refusal = ContentTooLarge(self.limit)
            response = problem_response(
                scope, 413, detail=str(refusal.detail), headers={"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        received = 0
        deadline: float | None = None
        complete = False

        async def counting_receive() -> Message:
            nonlocal received, deadline, complete
            if complete:
                return await receive()  # after the body: waiting for a disconnect, untimed
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout if deadline is None else deadline
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise ContentTooLarge(self.limit)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, counting_receive, send)


class SecurityHeaders:
    """Add ``headers`` to every response that does not set them itself (but those of the
    ``exempt`` paths)."""

    def __init__(
        self, app: ASGIApp, *, headers: Mapping[str, str], exempt: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in self.headers if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CORS(CORSMiddleware):
    """Starlette's CORS, but a refused preflight is a problem document like any error."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await super().__call__(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "origin" not in headers or "access-control-request-method" not in headers:
            await super().__call__(scope, receive, send)
            return
        response = self.preflight_response(request_headers=headers)
        if response.status_code == 400:
            kept = {
                name: value
                for name, value in response.headers.items()
                if name.startswith("access-control-") or name == "vary"
            }
            reason = bytes(response.body).decode()
            response = problem_response(
                scope, 400, detail=f"{reason}: see docs/http.md", headers=kept
            )
        await response(scope, receive, send)
