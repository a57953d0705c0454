"""The HTTP face's settings: one frozen object, from arguments or from the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

from jobdesk import retention, validation
from jobdesk.errors import InvalidInput
from jobdesk.retention import RetentionPolicy

__all__ = ["MIN_JWT_SECRET_BYTES", "Settings"]

#: RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_JWT_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class Settings:
    """How the HTTP API authenticates, limits and streams. Every field has a safe default.

    ``Settings.from_env()`` reads the ``JOBDESK_*`` variables listed beside each field.
    """

    #: ``JOBDESK_JWT_SECRET``: accept HS256 JWTs signed with this secret (the user id in
    #: ``sub``, ``exp`` required); None accepts jobdesk user tokens only
    jwt_secret: str | None = None
    #: ``JOBDESK_JWT_AUDIENCE``: when set, a JWT's ``aud`` must contain it
    jwt_audience: str | None = None
    #: ``JOBDESK_JWT_ISSUER``: when set, a JWT's ``iss`` must equal it
    jwt_issuer: str | None = None
    #: ``JOBDESK_JWT_LEEWAY_SECONDS``: clock skew allowed when checking ``exp``, ``nbf``, ``iat``
    jwt_leeway_seconds: float = 0.0
    #: ``JOBDESK_MAX_BODY_BYTES``: the largest request body, counted while it streams in
    max_body_bytes: int = 1024 * 1024
    #: ``JOBDESK_CORS_ORIGINS`` (comma-separated): origins allowed to call the API from a
    #: browser; empty (the default) turns CORS off
    cors_origins: tuple[str, ...] = ()
    #: ``JOBDESK_SSE_KEEPALIVE_SECONDS``: a comment line this often keeps idle streams open
    sse_keepalive_seconds: float = 15.0
    #: how far before ``Last-Event-ID`` a resumed stream looks again: commits on PostgreSQL
    #: may land slightly out of ``updated_at`` order, and re-sending a state is harmless
    sse_resume_overlap_seconds: float = 2.0
    #: the most jobs a resumed stream of all of a user's jobs re-reads (see docs/http.md)
    sse_resume_scan_limit: int = 1000
    #: ``JOBDESK_REAP_INTERVAL_SECONDS``: how often the server returns expired leases to the
    #: queue (remote workers cannot); 0 turns it off
    reap_interval_seconds: float = 30.0
    #: ``JOBDESK_SCHEDULE_INTERVAL_SECONDS``: how often the server fires due schedules
    #: (:mod:`jobdesk.schedules`); 0 turns it off (then a worker on the database must)
    schedule_interval_seconds: float = 1.0
    #: ``JOBDESK_WEBHOOK_INTERVAL_SECONDS``: how often the server looks for webhook
    #: deliveries to send when it found none the last time; 0 turns its sender off
    webhook_interval_seconds: float = 1.0
    #: ``JOBDESK_RETENTION_INTERVAL_SECONDS``: how often the server runs a retention pass
    #: (:mod:`jobdesk.retention`; one process at a time across the deployment); 0 turns
    #: it off
    retention_interval_seconds: float = 300.0
    #: ``JOBDESK_RETENTION`` (``completed=7d,failed=30d,render.failed=forever``): how long
    #: finished jobs are kept; statuses not named keep the defaults (7, 30, 30 days)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    #: the ``Retry-After`` hint for limits with no known reset time: the waiting limit,
    #: open streams (the name is older than the waiting limit; kept for deployments)
    active_limit_retry_after_seconds: int = 5
    #: ``JOBDESK_SSE_RECHECK_SECONDS``: how often an open event stream checks its credential
    #: again (a revoked token's streams end within this; a JWT's end at its ``exp``)
    sse_recheck_seconds: float = 5.0
    #: ``JOBDESK_MAX_STREAMS``: the most event streams one user (API and dashboard together)
    #: or one worker token may hold open; the next is refused with 429
    max_streams: int = 20
    #: ``JOBDESK_API_DOCS``: serve Swagger UI at ``/docs`` and ReDoc at ``/redoc``. Off by
    #: default: both pages load their scripts from a CDN, and a third-party script on the
    #: dashboard's origin could act as the signed-in user (see docs/security.md)
    api_docs: bool = False
    #: ``JOBDESK_HEADER_TIMEOUT_SECONDS``: ``jobdesk serve`` closes a connection whose
    #: request head (line and headers) has not all arrived within this
    header_timeout_seconds: float = 10.0
    #: ``JOBDESK_BODY_TIMEOUT_SECONDS``: a request body must have all arrived within this
    #: from its first read, else 408
    body_timeout_seconds: float = 30.0
    #: ``JOBDESK_KEEPALIVE_TIMEOUT_SECONDS``: ``jobdesk serve`` closes an idle kept-alive
    #: connection after this
    keepalive_timeout_seconds: float = 5.0
    #: accept a client's ``X-Request-ID`` (printable, at most 128 characters) as the
    #: request id instead of making one
    trust_request_id: bool = True

    def __post_init__(self) -> None:
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise InvalidInput(
                "jwt_secret", f"must be at least {MIN_JWT_SECRET_BYTES} bytes long for HS256"
            )
        if isinstance(self.max_body_bytes, bool) or not isinstance(self.max_body_bytes, int):
            raise InvalidInput("max_body_bytes", "must be an integer")
        if self.max_body_bytes < 1:
            raise InvalidInput("max_body_bytes", "must be at least 1")
        for name in (
            "sse_keepalive_seconds",
            "sse_resume_overlap_seconds",
            "sse_recheck_seconds",
            "header_timeout_seconds",
            "body_timeout_seconds",
            "keepalive_timeout_seconds",
        ):
            validation.interval(name, getattr(self, name))
        for name in (  # 0 turns these off
            "reap_interval_seconds",
            "schedule_interval_seconds",
            "webhook_interval_seconds",
            "retention_interval_seconds",
            "jwt_leeway_seconds",
        ):
            validation.interval(name, getattr(self, name), zero=True)
        if not isinstance(self.retention, RetentionPolicy):
            raise InvalidInput("retention", "must be a jobdesk.RetentionPolicy")
        for name in ("sse_resume_scan_limit", "active_limit_retry_after_seconds", "max_streams"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(name, "must be an integer of at least 1")
        if isinstance(self.cors_origins, str) or not all(
            isinstance(origin, str) for origin in self.cors_origins
        ):
            raise InvalidInput("cors_origins", "must be a tuple of origins")
        if not isinstance(self.api_docs, bool):
            raise InvalidInput("api_docs", "must be true or false")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``JOBDESK_*`` environment variables; keyword arguments win."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, variable in _STRINGS.items():
            if environ.get(variable):
                values[name] = environ[variable]
        for name, variable in _NUMBERS.items():
            if environ.get(variable):
                values[name] = _number(name, variable, environ[variable])
        for name, (variable, parser) in _PARSED.items():
            if environ.get(variable):
                values[name] = parser(environ[variable])
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidInput("settings", f"unknown settings {unknown}")
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


_STRINGS = {
    "jwt_secret": "JOBDESK_JWT_SECRET",
    "jwt_audience": "JOBDESK_JWT_AUDIENCE",
    "jwt_issuer": "JOBDESK_JWT_ISSUER",
}
_NUMBERS = {
    "jwt_leeway_seconds": "JOBDESK_JWT_LEEWAY_SECONDS",
    "sse_keepalive_seconds": "JOBDESK_SSE_KEEPALIVE_SECONDS",
    "reap_interval_seconds": "JOBDESK_REAP_INTERVAL_SECONDS",
    "schedule_interval_seconds": "JOBDESK_SCHEDULE_INTERVAL_SECONDS",
    "webhook_interval_seconds": "JOBDESK_WEBHOOK_INTERVAL_SECONDS",
    "retention_interval_seconds": "JOBDESK_RETENTION_INTERVAL_SECONDS",
    "sse_recheck_seconds": "JOBDESK_SSE_RECHECK_SECONDS",
    "header_timeout_seconds": "JOBDESK_HEADER_TIMEOUT_SECONDS",
    "body_timeout_seconds": "JOBDESK_BODY_TIMEOUT_SECONDS",
    "keepalive_timeout_seconds": "JOBDESK_KEEPALIVE_TIMEOUT_SECONDS",
}


def _origins(text: str) -> tuple[str, ...]:
    return tuple(origin.strip() for origin in text.split(",") if origin.strip())


def _whole(variable: str, unit: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit():
            raise InvalidInput(variable, f"must be a whole number of {unit}")
        return int(text)

    return parse


def _api_docs(text: str) -> bool:
    text = text.strip().lower()
    if text not in _BOOLEANS:
        raise InvalidInput("JOBDESK_API_DOCS", "must be 1/0, true/false, yes/no or on/off")
    return _BOOLEANS[text]


#: settings read from one variable each by a parser of their own
_PARSED: dict[str, tuple[str, Callable[[str], object]]] = {
    "max_body_bytes": ("JOBDESK_MAX_BODY_BYTES", _whole("JOBDESK_MAX_BODY_BYTES", "bytes")),
    "max_streams": ("JOBDESK_MAX_STREAMS", _whole("JOBDESK_MAX_STREAMS", "streams")),
    "api_docs": ("JOBDESK_API_DOCS", _api_docs),
    "cors_origins": ("JOBDESK_CORS_ORIGINS", _origins),
    "retention": ("JOBDESK_RETENTION", retention.parse),
}
_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def _number(name: str, variable: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(variable, "must be a number of seconds") from None
