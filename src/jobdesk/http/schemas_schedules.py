"""Bodies of the operator's schedule routes (``/api/v1/admin/schedules``).

As in :mod:`jobdesk.http.schemas`, request bodies check JSON types only; the rules
(a cron expression, a time zone, a name in use) are the core's
(:mod:`jobdesk.schedules`), which answers 422 naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictStr

from jobdesk import schedules, wire
from jobdesk.http.schemas import ID_RULE, JSON_VALUE, TYPE_RULE, Body, Out
from jobdesk.schedules import Schedule

__all__ = ["NAME_RULE", "ScheduleOut", "ScheduleRequest"]

NAME_RULE = {"pattern": f"^{schedules.NAME_PATTERN.pattern}$"}
_CRON_EXAMPLES = ["*/15 * * * *", "0 9 * * 1-5", "@daily"]
_MISSED = (
    "What ticks missed while no process ran schedules do: `once` makes one job for them "
    "all, `skip` none for a tick more than a minute late."
)


class ScheduleRequest(Body):
    """``POST /api/v1/admin/schedules``: a job of ``type`` for ``user_id`` at every tick."""

    name: Annotated[
        StrictStr, Field(description="Unique in the deployment.", json_schema_extra=NAME_RULE)
    ]
    cron: Annotated[
        StrictStr,
        Field(
            description="Five fields (minute hour day-of-month month day-of-week) or an "
            "alias (@hourly, @daily, @weekly, @monthly, @yearly).",
            examples=_CRON_EXAMPLES,
        ),
    ]
    type: Annotated[StrictStr, Field(description="The job type.", json_schema_extra=TYPE_RULE)]
    input: Annotated[Any, Field(description=f"Every job's input. {JSON_VALUE}")]
    user_id: Annotated[
        StrictStr, Field(description="The user who owns the jobs.", json_schema_extra=ID_RULE)
    ]
    project_id: Annotated[StrictStr | None, Field(json_schema_extra=ID_RULE)] = None
    timezone: Annotated[
        StrictStr,
        Field(description="The IANA time zone the expression is read in.", examples=["UTC"]),
    ] = "UTC"
    missed: Annotated[StrictStr, Field(description=_MISSED, examples=["once", "skip"])] = "once"


class ScheduleOut(Out):
    """A schedule, its next run, and what its last tick did."""

    name: str
    cron: str
    timezone: str
    missed: Literal["once", "skip"]
    type: str
    input: Annotated[Any, Field(description=JSON_VALUE)]
    user_id: str
    project_id: str | None
    next_run_at: Annotated[datetime, Field(description="When the next tick's job is made.")]
    created_at: datetime
    updated_at: datetime
    paused: bool
    last_tick_at: datetime | None
    last_job_id: str | None
    last_error: Annotated[
        str | None,
        Field(description="Why the last tick made no job: skipped as late, or refused by limits."),
    ]

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleOut:
        """The response body for ``schedule``."""
        return cls.model_validate(wire.encode(schedule))
