"""Every error jobdesk raises, under one root.

```
JobdeskError
├── InvalidInput        a public argument broke a rule; ``.field`` and ``.rule`` say which
├── JobNotFound         no such job for this caller (another user's job looks exactly the same)
│   └── GroupNotFound   no such group for this caller (likewise)
├── ScheduleNotFound    no schedule of that name
├── RateLimited         a per-user limit refused the request; ``.limit``, ``.retry_after``
├── Unauthorized        a token is missing, malformed, unknown, revoked or expired
├── Forbidden           a read-only view token was used to change something
├── InvalidTransition   the job's status does not allow this operation now
├── LeaseLost           the worker no longer holds the job under the attempt it named
└── StoreUnavailable    the database could not be reached, stayed busy or failed
```

Messages say what to do. Driver errors are translated once, at the store
boundary, with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "Forbidden",
    "GroupNotFound",
    "InvalidInput",
    "InvalidTransition",
    "JobNotFound",
    "JobdeskError",
    "LeaseLost",
    "RateLimited",
    "ScheduleNotFound",
    "StoreUnavailable",
    "Unauthorized",
]


class JobdeskError(Exception):
    """The root of every error jobdesk raises on purpose."""


class InvalidInput(JobdeskError, ValueError):
    """A public argument broke a rule before anything reached the database."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class JobNotFound(JobdeskError, LookupError):
    """No job with this id belongs to the caller.

    Raised identically for a job that does not exist and for another user's job,
    so that the error never reveals that someone else's job exists.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} not found")


class ScheduleNotFound(JobdeskError, LookupError):
    """No schedule has this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"schedule {name!r} not found")


class RateLimited(JobdeskError):
    """A per-user limit refused the request.

    ``limit`` is ``"waiting"`` (the user already holds that many pending jobs: wait
    for some to start, or cancel some) or ``"daily"`` (too many jobs created this UTC
    day). ``retry_after`` is the number of seconds until the limit resets, when that
    can be known. Jobs past a user's running cap are never refused: they wait.
    ``fits`` is how many jobs the limit leaves room for now (a batch or a group larger
    than that is refused whole), when known.
    """

    def __init__(
        self,
        limit: Literal["waiting", "daily"],
        allowed: int,
        retry_after: int | None = None,
        *,
        fits: int | None = None,
    ) -> None:
        self.limit = limit
        self.allowed = allowed
        self.retry_after = retry_after
        self.fits = fits
        if limit == "waiting":
            message = (
                f"at most {allowed} pending jobs per user; wait for some to start, or cancel some"
            )
        else:
            message = (
                f"at most {allowed} jobs created per user per UTC day; "
                f"try again in {retry_after} seconds"
            )
        if fits is not None:
            message += f" (room for {fits} more now)"
        super().__init__(message)


class GroupNotFound(JobNotFound):
    """No group with this id belongs to the caller.

    Raised identically for a group that does not exist and for another user's group.
    """

    def __init__(self, group_id: str) -> None:
        super().__init__(group_id)
        self.group_id = group_id
        self.args = (f"group {group_id!r} not found",)


class Unauthorized(JobdeskError):
    """A token is missing, malformed, unknown, revoked or expired."""


class Forbidden(JobdeskError):
    """A valid credential that may not do this: a view token (read-only, one job or
    group) used for a change or for anything but reading its job or group's state."""


class InvalidTransition(JobdeskError):
    """The job's current status does not allow the requested operation."""

    def __init__(self, job_id: str, status: str, action: str, reason: str | None = None) -> None:
        self.job_id = job_id
        self.status = status
        self.action = action
        detail = reason or f"a {status} job cannot be {action}"
        super().__init__(f"job {job_id!r}: {detail}")


class LeaseLost(JobdeskError):
    """The worker no longer holds the job under the attempt it named.

    Another attempt took the job over, it was cancelled, or the lease ran out.
    The worker must stop working on the job and must not report for it again.
    """

    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"job {job_id!r}: lease lost ({reason}); stop working on it")


class StoreUnavailable(JobdeskError):
    """The database could not be reached, stayed locked past the timeout, or failed.

    Nothing was applied, and the same call may be tried again, unless
    ``outcome_unknown`` is True: the connection broke while committing (or a
    request to a jobdesk server went unanswered after it was sent), so the write
    may have been applied, and the job should be read back first (an
    ``idempotency_key`` makes a repeated ``create_job`` safe either way).
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        #: whether the write may have been applied (True) or surely was not (False)
        self.outcome_unknown = outcome_unknown
