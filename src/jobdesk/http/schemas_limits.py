"""Bodies of the limits and scheduling routes: usage, users' and types' limits, and a
worker's snooze (why a job waits, part of every job, is in :mod:`jobdesk.http.schemas`).

As in :mod:`jobdesk.http.schemas`, request bodies check JSON types only; the rules
(ranges, a rate's spelling, a type's name) are the core's, which answers 422 naming
the field. The bounds shown in the schema are the core's constants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, Strict, StrictStr

from jobdesk import scheduling, user_operations, validation, wire
from jobdesk.http.schemas import Attempt, Body, Integer, Out
from jobdesk.models import UserUsage

__all__ = [
    "SnoozeRequest",
    "TypeLimitsOut",
    "TypeLimitsRequest",
    "UsageOut",
    "UserLimitsRequest",
]

_RATE_EXAMPLES = ["60/min", "5/s", "1000/hour", "10/5min", "200/day"]


class UsageOut(Out):
    """A user's limits and how much of them is in use."""

    user_id: str
    running: Annotated[int, Field(description="Jobs processing now.")]
    max_running: Annotated[
        int, Field(description="Jobs that may process at once; further jobs wait.")
    ]
    waiting: Annotated[int, Field(description="Pending jobs now.")]
    max_waiting: Annotated[
        int, Field(description="Pending jobs the user may hold; creating more answers 429.")
    ]
    created_today: int
    max_daily: int
    resets_at: Annotated[datetime, Field(description="When `created_today` starts again.")]
    weight: Annotated[
        float, Field(description="The user's share of the workers when several users wait.")
    ]
    active: Annotated[
        int,
        Field(
            description="Deprecated: `running` + `waiting`, kept for one release.",
            deprecated=True,
        ),
    ]

    @classmethod
    def of(cls, usage: UserUsage) -> UsageOut:
        """The response body for ``usage``."""
        return cls.model_validate(wire.encode_usage(usage))


def _cap(description: str, high: int) -> object:
    return Field(description=description, json_schema_extra={"minimum": 0, "maximum": high})


class UserLimitsRequest(Body):
    """``PUT /api/v1/admin/users/{user_id}/limits``: every limit at once; null (or left
    out) restores the server's default."""

    max_running: Annotated[
        Integer | None,
        _cap("Jobs processing at once; further jobs wait.", user_operations.MAX_LIMIT),
    ] = None
    max_waiting: Annotated[
        Integer | None,
        _cap("Pending jobs the user may hold.", user_operations.MAX_LIMIT),
    ] = None
    max_daily: Annotated[
        Integer | None, _cap("Jobs created per UTC day.", user_operations.MAX_DAILY)
    ] = None
    weight: Annotated[
        Annotated[float, Strict()] | None,
        Field(
            description="The user's share of the workers: 2 gets twice the starts of 1.",
            json_schema_extra={"exclusiveMinimum": 0, "maximum": validation.MAX_WEIGHT},
        ),
    ] = None


class TypeLimitsRequest(Body):
    """``PUT /api/v1/admin/types/{type}/limits``: the type's pool and rate; both null
    removes its limits."""

    max_running: Annotated[
        Integer | None,
        _cap("Jobs of this type processing at once, across every worker.", 1_000_000),
    ] = None
    rate: Annotated[
        StrictStr | None,
        Field(
            description="Starts per period, spread evenly, across every process "
            f"(units s, min, hour, day; at most {scheduling.MAX_RATE_COUNT} per period "
            "of at most a day).",
            examples=_RATE_EXAMPLES,
        ),
    ] = None


class TypeLimitsOut(Out):
    """A job type's pool and rate; null means no limit."""

    type: str
    max_running: int | None
    rate: Annotated[str | None, Field(examples=_RATE_EXAMPLES)]

    @classmethod
    def of(cls, limits: scheduling.TypeLimits) -> TypeLimitsOut:
        """The response body for ``limits``."""
        return cls.model_validate(wire.encode_type_limits(limits))


class SnoozeRequest(Body):
    """``POST /api/v1/worker/jobs/{id}/snooze``: not now; pending again after ``delay``."""

    attempt: Attempt
    delay: Annotated[
        float,
        Strict(),
        Field(
            description="Seconds before the job may start again; its attempt is not spent.",
            json_schema_extra={"minimum": 0, "maximum": validation.MAX_SNOOZE_SECONDS},
        ),
    ]
