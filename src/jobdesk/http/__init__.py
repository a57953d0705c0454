"""The HTTP face: every jobdesk operation over FastAPI, for browsers, other languages
and remote workers.

``create_app(desk_or_url, settings)`` builds the app; ``serve(url, host, port,
settings)`` runs it under uvicorn (what ``jobdesk serve`` calls). The reference,
with curl examples for every route and error, is docs/http.md.
"""

from __future__ import annotations

from jobdesk.http.app import create_app
from jobdesk.http.settings import Settings
from jobdesk.limits import Limits

__all__ = ["DEFAULT_SERVE_URL", "Settings", "create_app", "serve"]

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
    uvicorn.run(
        create_app(url, settings, limits=limits),
        host=host,
        port=port,
        log_config=None,
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
