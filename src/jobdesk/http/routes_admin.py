"""Operator routes under ``/api/v1/admin`` (admin tokens only): users' limits and
weights, job types' pools and rates, schedules. Each one translates and delegates; the core
checks every value and answers 422 naming the field, writing nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from jobdesk.http.auth import CurrentAdmin
from jobdesk.http.runtime import RuntimeDep
from jobdesk.http.schemas import ID_RULE, TYPE_RULE
from jobdesk.http.schemas_limits import (
    TypeLimitsOut,
    TypeLimitsRequest,
    UsageOut,
    UserLimitsRequest,
)
from jobdesk.http.schemas_problems import ScheduleNotFoundProblem, documented
from jobdesk.http.schemas_schedules import NAME_RULE, ScheduleOut, ScheduleRequest

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin", tags=["operator"])

UserId = Annotated[str, Path(description="The user's id.", json_schema_extra=ID_RULE)]
TypeName = Annotated[
    str, Path(alias="type", description="A job type.", json_schema_extra=TYPE_RULE)
]


@router.get(
    "/users/{user_id}/limits",
    operation_id="getUserLimits",
    responses=documented(401, 422, 503),
)
async def get_user_limits(user_id: UserId, admin: CurrentAdmin, runtime: RuntimeDep) -> UsageOut:
    """A user's limits, weight and how much of them is in use."""
    return UsageOut.of(await runtime.require_desk().get_user_usage(user_id))


@router.put(
    "/users/{user_id}/limits",
    operation_id="setUserLimits",
    responses=documented(401, 422, 503),
)
async def set_user_limits(
    user_id: UserId, body: UserLimitsRequest, admin: CurrentAdmin, runtime: RuntimeDep
) -> UsageOut:
    """Set every one of a user's limits and their weight (a paid plan, say); a null
    or missing one returns to the server's default. Answers the usage now."""
    desk = runtime.require_desk()
    await desk.set_user_limits(
        user_id,
        max_running=body.max_running,
        max_waiting=body.max_waiting,
        max_daily=body.max_daily,
        weight=body.weight,
    )
    return UsageOut.of(await desk.get_user_usage(user_id))


@router.get("/types", operation_id="listTypeLimits", responses=documented(401, 503))
async def list_type_limits(admin: CurrentAdmin, runtime: RuntimeDep) -> list[TypeLimitsOut]:
    """Every job type that has a pool or a rate, by type."""
    return [TypeLimitsOut.of(limits) for limits in await runtime.require_desk().get_type_limits()]


@router.put(
    "/types/{type}/limits",
    operation_id="setTypeLimits",
    responses=documented(401, 422, 503),
)
async def set_type_limits(
    job_type: TypeName, body: TypeLimitsRequest, admin: CurrentAdmin, runtime: RuntimeDep
) -> TypeLimitsOut:
    """Give a job type a pool (`max_running` across every worker) and a rate (`"60/min"`,
    across every process); both null removes them. Jobs over either wait."""
    limits = await runtime.require_desk().set_type_limits(
        job_type, max_running=body.max_running, rate=body.rate
    )
    return TypeLimitsOut.of(limits)


# -- schedules ------------------------------------------------------------------------------

ScheduleName = Annotated[str, Path(description="The schedule's name.", json_schema_extra=NAME_RULE)]


@router.get("/schedules", operation_id="listSchedules", responses=documented(401, 503))
async def list_schedules(admin: CurrentAdmin, runtime: RuntimeDep) -> list[ScheduleOut]:
    """Every schedule, by name, with its next run time and what its last tick did."""
    return [ScheduleOut.of(found) for found in await runtime.require_desk().list_schedules()]


@router.post(
    "/schedules",
    operation_id="createSchedule",
    status_code=201,
    responses=documented(401, 422, 503),
)
async def create_schedule(
    body: ScheduleRequest, admin: CurrentAdmin, runtime: RuntimeDep
) -> ScheduleOut:
    """Create a job of `type` for `user_id` at every tick of `cron` (in `timezone`); each
    tick makes exactly one job, whatever the number of servers and workers. A bad cron
    expression, an unknown time zone or a name in use answers 422 naming the field."""
    made = await runtime.require_desk().schedule(
        body.name,
        body.cron,
        body.type,
        body.input,
        user_id=body.user_id,
        project_id=body.project_id,
        timezone=body.timezone,
        missed=body.missed,
    )
    return ScheduleOut.of(made)


@router.get(
    "/schedules/{name}",
    operation_id="getSchedule",
    responses=documented(401, 404, 422, 503, not_found=ScheduleNotFoundProblem),
)
async def get_schedule(name: ScheduleName, admin: CurrentAdmin, runtime: RuntimeDep) -> ScheduleOut:
    """One schedule."""
    return ScheduleOut.of(await runtime.require_desk().get_schedule(name))


@router.delete(
    "/schedules/{name}",
    operation_id="deleteSchedule",
    status_code=204,
    responses=documented(401, 404, 422, 503, not_found=ScheduleNotFoundProblem),
)
async def delete_schedule(name: ScheduleName, admin: CurrentAdmin, runtime: RuntimeDep) -> None:
    """Stop and forget a schedule; the jobs it made stay."""
    await runtime.require_desk().delete_schedule(name)


@router.post(
    "/schedules/{name}/pause",
    operation_id="pauseSchedule",
    responses=documented(401, 404, 422, 503, not_found=ScheduleNotFoundProblem),
)
async def pause_schedule(
    name: ScheduleName, admin: CurrentAdmin, runtime: RuntimeDep
) -> ScheduleOut:
    """Make no jobs until resumed."""
    return ScheduleOut.of(await runtime.require_desk().pause_schedule(name))


@router.post(
    "/schedules/{name}/resume",
    operation_id="resumeSchedule",
    responses=documented(401, 404, 422, 503, not_found=ScheduleNotFoundProblem),
)
async def resume_schedule(
    name: ScheduleName, admin: CurrentAdmin, runtime: RuntimeDep
) -> ScheduleOut:
    """Make jobs again from the next tick (none for the time it was paused)."""
    return ScheduleOut.of(await runtime.require_desk().resume_schedule(name))
