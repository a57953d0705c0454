"""The HTTP face: every jobdesk operation over FastAPI, for browsers, other languages
and remote workers.

``create_app(desk_or_url, settings)`` builds the app; ``serve(url, host, port,
settings)`` runs it under uvicorn (what ``jobdesk serve`` calls), with the
server-side timeouts of :func:`server_config`. The reference, with curl examples
for every route and error, is docs/http.md.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

from jobdesk.heap import freeze_startup_heap
from jobdesk.http.app import create_app
from jobdesk.http.settings import Settings
from jobdesk.limits import Limits

if TYPE_CHECKING:
    import uvicorn

__all__ = ["DEFAULT_SERVE_URL", "Settings", "create_app", "serve", "server_config"]

DEFAULT_SERVE_URL = "sqlite:///./jobdesk.db"


def serve(
    url: str = DEFAULT_SERVE_URL,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: Settings | None = None,
    *,
    log_level: str = "info",
    limits: Limits | None = None,
) -> None:
    """Serve the API on ``host:port`` with one uvicorn process, until interrupted.

    ``limits`` are the desk's defaults (the lease and the retry backoff of remote
    workers' jobs among them). Logs go to stderr as JSON lines, with one
    access-log line per request.
    """
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from jobdesk.http.logs import configure_logging  # noqa: PLC0415

    configure_logging(log_level)
    settings = Settings.from_env() if settings is None else settings
    config = server_config(
        create_app(url, settings, limits=limits),
        settings,
        host=host,
        port=port,
        log_level=log_level,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)  # the app's lifespan included: the desk is open
            # What start-up made lives as long as the process: out of the collector's
            # walks, which otherwise stall requests ~15 ms each (p99 at 16 connections
            # 58-64 ms -> 19-24 ms, bench/RESULTS.md).
            freeze_startup_heap()

    Server(config).run()


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration ``serve`` uses: ``options`` (host, port...) with the
    settings' timeouts against slow clients.

    A connection whose request head (line and headers) has not all arrived within
    ``header_timeout_seconds`` of its first byte (or of the connection) is closed;
    an idle kept-alive connection is closed after ``keepalive_timeout_seconds``. The
    body's deadline is the app's (``body_timeout_seconds``, answered with 408).
    """
    import uvicorn  # noqa: PLC0415 - only the server needs it

    options.setdefault("log_config", None)
    options.setdefault("access_log", False)
    options.setdefault("server_header", False)
    options.setdefault("timeout_graceful_shutdown", 10)
    return uvicorn.Config(
        app,
        http=_head_deadline_protocol(settings.header_timeout_seconds),
        # uvicorn types it as int; asyncio's call_later takes any number of seconds.
        timeout_keep_alive=settings.keepalive_timeout_seconds,  # type: ignore[arg-type]
        **options,
    )


def _head_deadline_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing connections whose request head trickles in.

    uvicorn bounds a head's size, not its time: a client sending one byte a second
    would hold a connection (and its memory) forever.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol  # noqa: PLC0415

    class HeadDeadline(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None
        _timed_cycle: object = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle = getattr(self, "cycle", None)
            if cycle is not None and cycle is not self._timed_cycle:
                self._timed_cycle = cycle  # a new request's head has all arrived
                self._disarm()
            elif cycle is None or getattr(cycle, "response_complete", False):
                self._arm()  # bytes of a next request's head: it must all come in time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                loop = asyncio.get_running_loop()
                self._head_timer = loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            transport = getattr(self, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.close()

    return HeadDeadline
