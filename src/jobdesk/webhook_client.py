"""WebhookClient: the small HTTP/1.1 client that sends webhook deliveries.

A sender makes one kind of request, over and over: a POST of a small JSON body to a
few endpoints, answered by a status and a short body. httpx's client and its pool cost
~1.1 ms of CPU per such request on our benchmark machine (request and response
models, cookies, anyio streams, a socket probe before each reuse); this client costs
~0.15 ms: an :class:`asyncio.Protocol` per connection, h11 for the protocol (as httpcore
uses it), the request written in one ``write``, keep-alive connections kept per origin.

What it guarantees, for :mod:`jobdesk.webhook_operations`:

- it connects only to the addresses it is given (those the SSRF check resolved and
  accepted: no second lookup that could answer otherwise), https with the host's name
  checked against its certificate (httpx's trust store: ``httpx.create_ssl_context``);
- it follows no redirect: a 3xx is an answer like any other (not a 2xx: not delivered);
- one deadline bounds a whole send (connect, write, answer);
- a connection whose state is unsure (a timeout, an error, an answer cut short, a
  ``Connection: close``) is closed, never reused; an idle one is dropped after
  ``idle_seconds`` (under common servers' keep-alive of 5 s); a send that finds its
  kept connection closed by the server before any answer is made once more on a new one
  (at least once: the receiver dedupes on ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

__all__ = ["Answer", "SendFailed", "WebhookClient"]

#: the most of an answer's body that is kept; past it the connection is closed
_BODY_KEPT = 64 * 1024
_USER_AGENT = b"jobdesk-webhooks"


class SendFailed(Exception):
    """A send got no (complete) answer: refused, reset, timed out, malformed."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A receiver's answer: its status and the start of its body."""

    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its answer as a future."""

    def __init__(self) -> None:
        self.protocol = h11.Connection(h11.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.used = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._status = 0
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._fail(SendFailed(f"the connection was closed before an answer ({exc or 'EOF'})"))

    def eof_received(self) -> bool:
        self.open = False
        with contextlib.suppress(h11.RemoteProtocolError):
            self.protocol.receive_data(b"")
            self._pump()
        return False  # the transport closes itself

    def data_received(self, data: bytes) -> None:
        try:
            self.protocol.receive_data(data)
            self._pump()
        except h11.RemoteProtocolError as exc:
            self._fail(SendFailed(f"a malformed answer: {exc}"))
            self.close()

    def _pump(self) -> None:
        while self._waiter is not None:
            event = self.protocol.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self._status = event.status_code
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > _BODY_KEPT:  # enough of it: give up the connection
                    self._answer()
                    self.close()
            elif isinstance(event, h11.EndOfMessage):
                self._answer()
                if self.protocol.our_state is h11.DONE and self.protocol.their_state is h11.DONE:
                    self.protocol.start_next_cycle()
                else:
                    self.close()
            elif isinstance(event, h11.ConnectionClosed):
                self._fail(SendFailed("the connection was closed before a whole answer"))

    def _answer(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self._status, bytes(self._body[:_BODY_KEPT])))

    def _fail(self, exc: SendFailed) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def post(self, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        """Send one request; its answer (SendFailed if the connection fails first)."""
        assert self.transport is not None
        assert self._waiter is None
        self.used = True
        self._status, self._body = 0, bytearray()
        request = h11.Request(method=b"POST", target=target, headers=headers)
        data = b"".join(
            (
                self.protocol.send(request) or b"",
                self.protocol.send(h11.Data(data=body)) or b"",
                self.protocol.send(h11.EndOfMessage()) or b"",
            )
        )
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter

    @property
    def reusable(self) -> bool:
        """Open, idle, and ready for another request."""
        return (
            self.open
            and self._waiter is None
            and self.protocol.our_state is h11.IDLE
            and self.protocol.their_state is h11.IDLE
        )

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()


class WebhookClient:
    """Keep-alive connections per origin, for :meth:`post`; :meth:`aclose` at the end.

    ``connections``: the most idle connections kept per origin (a sender's concurrency);
    ``tls``: the context for https (None: httpx's, its trust store).
    """

    def __init__(
        self,
        *,
        connections: int = 16,
        idle_seconds: float = 4.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.connections = connections
        self.idle_seconds = idle_seconds
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._tls = tls

    async def post(
        self,
        url: str,
        addresses: Sequence[str],
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        within: float,
    ) -> Answer:
        """POST ``body`` to ``url``, connecting only to ``addresses`` (those checked);
        the answer, or SendFailed (no answer within ``within`` seconds, refused...)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        fields = [
            (b"host", parts.netloc.encode("idna")),
            (b"user-agent", _USER_AGENT),
            (b"content-length", str(len(body)).encode()),
            *((name.encode(), value.encode()) for name, value in headers),
        ]
        origin = (parts.scheme, host, port)
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(within):
                connection = self._take(origin)
                if connection is not None:
                    try:
                        answer = await connection.post(target.encode(), fields, body)
                    except SendFailed:
                        # Closed by the server while idle (its keep-alive ran out): again,
                        # once, on a new connection.
                        connection.close()
                        connection = None
                if connection is None:
                    connection = await self._connect(host, port, addresses, https=https)
                    answer = await connection.post(target.encode(), fields, body)
        except TimeoutError:
            if connection is not None:
                connection.close()
            raise SendFailed(f"no answer within {within:g} s") from None
        except SendFailed:
            if connection is not None:
                connection.close()
            raise
        self._keep(origin, connection)
        return answer

    def _take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely closed
            if connection.reusable and now - connection.idle_since < self.idle_seconds:
                return connection
            connection.close()
        return None

    def _keep(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        if not connection.reusable:
            connection.close()
            return
        idle = self._idle.setdefault(origin, deque())
        if len(idle) >= self.connections:
            idle.popleft().close()
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(
        self, host: str, port: int, addresses: Sequence[str], *, https: bool
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        failures: list[str] = []
        for address in addresses:
            try:
                _, connection = await loop.create_connection(
                    _Connection,
                    host=address,
                    port=port,
                    ssl=self._tls_context() if https else None,
                    server_hostname=host if https else None,
                )
            except (OSError, ssl.SSLError) as exc:
                failures.append(f"{address}: {exc}")
                continue
            return connection
        raise SendFailed("could not connect: " + ("; ".join(failures) or "no address"))

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            import httpx  # noqa: PLC0415 - its trust store, only once an https endpoint is met

            self._tls = httpx.create_ssl_context()
        return self._tls

    async def aclose(self) -> None:
        """Close every kept connection."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
