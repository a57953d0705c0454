"""Templates: one Jinja2 environment, the filters the pages share, and HTML responses."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse, Response

from jobdesk import wire
from jobdesk.http.dashboard.session import Visit
from jobdesk.models import JobStatus, Waiting

__all__ = ["COLLAPSE_BYTES", "SECURITY_HEADERS", "STATUS_ICONS", "fragment", "page", "pretty_json"]

#: a JSON document longer than this is shown collapsed (a <details> the reader opens)
COLLAPSE_BYTES = 2000
#: Sent with every page. Scripts, styles and event streams come from this origin only
#: (htmx and its SSE extension are files under /static, and the pages hold no inline
#: script or style), so markup a job's data might smuggle in could not run; no other
#: site may frame the pages (clickjacking the cancel and retry buttons).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: a symbol beside each status's name, so that status never rests on colour alone
STATUS_ICONS = {
    JobStatus.PENDING: "◷",
    JobStatus.PROCESSING: "▶",
    JobStatus.COMPLETED: "✓",
    JobStatus.FAILED: "✗",
    JobStatus.CANCELLED: "⊘",
}


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON, for a ``<pre>``."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    # a narrow column wraps it between the date and the time, never before "UTC"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S\u00a0UTC")


def _clock(value: datetime) -> str:
    """A time in a sentence: ``14:05 UTC`` today, with its date on another day."""
    moment = value.astimezone(UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M\u00a0UTC")
    return moment.strftime("%Y-%m-%d %H:%M\u00a0UTC")


def _waiting(waiting: Waiting | None) -> str:
    """Why a pending job waits, in words (as the CLI says it), or nothing."""
    return "" if waiting is None else wire.waiting_label(waiting, _clock)


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def _progress(value: float) -> str:
    # Whole percents, rounded down: 14.4444 shows as 14, and 99.9 never as a 100 that
    # is not done yet.
    return str(math.floor(value))


_SEPARATOR = re.compile(r"([._-])")


def _breakable(value: str) -> Markup:
    """``value`` escaped, with a line break opportunity after each ``.``, ``_`` and ``-``:
    a job type (``character_extraction.speaker_diarization.v2``) wraps between its
    words in a narrow column rather than at any letter."""
    opportunity = Markup("<wbr>")
    return Markup("").join(
        escape(part) + opportunity if _SEPARATOR.fullmatch(part) else escape(part)
        for part in _SEPARATOR.split(value)
    )


_environment = Environment(
    loader=PackageLoader("jobdesk.http.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(
    when=_when,
    iso=_iso,
    duration=_duration,
    pretty_json=pretty_json,
    progress=_progress,
    breakable=_breakable,
)
_environment.globals.update(
    STATUS_ICONS=STATUS_ICONS,
    JobStatus=JobStatus,
    COLLAPSE_BYTES=COLLAPSE_BYTES,
    # "N of M", as the API's attempts_used and max_attempts and the CLI say it
    attempts=wire.attempts_label,
    # "waiting: 10 of 10 of your jobs are running", as the CLI says it
    waiting=_waiting,
)


def fragment(template: str, **context: Any) -> str:
    """A template rendered to a string (a page part, or an event's HTML)."""
    return _environment.get_template(template).render(**context)


def page(
    template: str, *, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """A whole page as an HTML response; pages are never cached (they show live state)."""
    response = HTMLResponse(fragment(template, **context), status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
        response.headers[name] = value
    return response


def error_page(visit: Visit, status_code: int, title: str, message: str) -> Response:
    """The error page (its title and what to do), with the visit's cookies set."""
    response = page(
        "error.html", status_code=status_code, visit=visit, title=title, message=message
    )
    return visit.finish(response)
