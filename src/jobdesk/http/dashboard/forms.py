"""The user pages' forms and filters: what they read from a request and say back.

The job list's filters as a query string carries them, the create form's input
length, and the words for a refusal by a user's limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from jobdesk.errors import RateLimited
from jobdesk.http.settings import Settings
from jobdesk.models import Job, JobStatus, UserUsage

__all__ = ["ListFilters", "input_maxlength", "usage_refusal"]

#: room in a create form's body for everything but the input (the CSRF token, a type
#: of 64 and a project of 128 characters, the field names), at the worst encoding
_FORM_RESERVE = 4096
#: the most bytes one character of a text field takes in a urlencoded body: three UTF-8
#: bytes, each sent as %XX (a line break, one character, is sent as %0D%0A)
_BYTES_PER_CHARACTER = 9


def input_maxlength(settings: Settings) -> int:
    """The create form's input length (in characters) that keeps the form's body within
    the server's body limit however the input is encoded: a browser stops the user at
    the field, rather than send a body the server refuses before the page sees it."""
    return max(1, (settings.max_body_bytes - _FORM_RESERVE) // _BYTES_PER_CHARACTER)


@dataclass(frozen=True, slots=True)
class ListFilters:
    """The job list's filters, as the query string carries them."""

    statuses: tuple[JobStatus, ...] = ()
    type: str = ""
    project: str = ""
    #: field -> message, for filters that broke a rule
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, query: QueryParams) -> ListFilters:
        """The filters of a query string; an unknown status is reported, not applied."""
        statuses: list[JobStatus] = []
        errors: dict[str, str] = {}
        for value in query.getlist("status"):
            try:
                statuses.append(JobStatus(value))
            except ValueError:
                errors["status"] = "status must be one of " + ", ".join(s.value for s in JobStatus)
        return cls(
            tuple(dict.fromkeys(statuses)),
            query.get("type", "").strip(),
            query.get("project", "").strip(),
            errors,
        )

    def query(self, **extra: str) -> str:
        """The query string that reproduces these filters (plus ``extra``)."""
        pairs = [("status", status.value) for status in self.statuses]
        pairs += [(name, value) for name, value in (("type", self.type), ("project", self.project))]
        pairs += list(extra.items())
        return urlencode([(name, value) for name, value in pairs if value])

    def matches(self, job: Job) -> bool:
        """Whether ``job`` belongs in a list with these filters."""
        return (
            (not self.statuses or job.status in self.statuses)
            and (not self.type or job.type == self.type)
            and (not self.project or job.project_id == self.project)
        )


def usage_refusal(exc: RateLimited, usage: UserUsage | None) -> str:
    """What to tell a user a limit refused, and when it frees up."""
    if exc.limit == "waiting":
        jobs = "job" if exc.allowed == 1 else "jobs"
        return (
            f"Refused: you already have {exc.allowed} waiting {jobs}, the most allowed. "
            "Room frees up as soon as one of them starts or you cancel one."
        )
    resets = "" if usage is None else usage.resets_at.strftime(" at %Y-%m-%d %H:%M UTC")
    wait = "" if exc.retry_after is None else f" (in {_minutes(exc.retry_after)})"
    return (
        f"Refused: you created {exc.allowed} jobs today, the most allowed per UTC day. "
        f"The count starts again{resets}{wait}."
    )


def _minutes(seconds: int) -> str:
    hours, minutes = divmod(max(1, round(seconds / 60)), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
