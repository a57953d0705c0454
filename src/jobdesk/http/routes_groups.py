"""Group routes: a user's own groups of jobs, under ``/api/v1``. Each translates and delegates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from jobdesk.groups import FanIn
from jobdesk.http.auth import CurrentUser, GroupReader
from jobdesk.http.runtime import RuntimeDep
from jobdesk.http.schemas import JobOut
from jobdesk.http.schemas_groups import (
    GROUP_EVENT_SCHEMA,
    CreateGroupRequest,
    GroupId,
    GroupOut,
    GroupPageOut,
)
from jobdesk.http.schemas_problems import GroupNotFoundProblem, documented
from jobdesk.http.sse_groups import open_group_stream
from jobdesk.models import JobSpec

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["groups"])

_GROUP_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A `text/event-stream`: `group` events (the group's status, progress "
        "and counts; `id` resumes as `Last-Event-ID`) and `job` events (one of its jobs "
        "changed). It ends after the finished group's `group` event.",
        "content": {"text/event-stream": {"schema": GROUP_EVENT_SCHEMA}},
    },
    204: {"description": "The client already has the finished group's state: stop."},
}


@router.post(
    "/groups",
    status_code=201,
    operation_id="createGroup",
    responses=documented(401, 403, 413, 422, 429, 503),
)
async def create_group(
    body: CreateGroupRequest, user_id: CurrentUser, runtime: RuntimeDep
) -> GroupOut:
    """Create a group of pending jobs for the caller in one transaction: all of them, within
    the caller's limits, or none (429 says how many would fit: `fits`)."""
    group = await runtime.require_desk().create_group(
        user_id,
        [
            JobSpec(
                item.type,
                item.input,
                item.project_id,
                priority=item.priority,
                run_at=item.run_at,
                max_attempts=item.max_attempts,
            )
            for item in body.jobs
        ],
        project_id=body.project_id,
        name=body.name,
        on_complete=(
            None
            if body.on_complete is None
            else FanIn(body.on_complete.type, body.on_complete.input)
        ),
    )
    return GroupOut.of(group)


@router.get("/groups", operation_id="listGroups", responses=documented(401, 403, 422, 503))
async def list_groups(
    *,
    user_id: CurrentUser,
    runtime: RuntimeDep,
    project_id: Annotated[str | None, Query()] = None,
    limit: Annotated[
        int, Query(description="Page size.", json_schema_extra={"minimum": 1, "maximum": 100})
    ] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> GroupPageOut:
    """The caller's groups, newest first, one page at a time."""
    page = await runtime.require_desk().get_user_groups(
        user_id, project_id=project_id, limit=limit, cursor=cursor
    )
    return GroupPageOut.of(page)


@router.get(
    "/groups/{id}",
    operation_id="getGroup",
    responses=documented(401, 403, 404, 422, 503, not_found=GroupNotFoundProblem),
)
async def get_group(group_id: GroupId, user_id: GroupReader, runtime: RuntimeDep) -> GroupOut:
    """One of the caller's groups: its status, progress and its jobs' counts. A view token
    for this group reads it too."""
    return GroupOut.of(await runtime.require_desk().get_group(group_id, user_id))


@router.get(
    "/groups/{id}/jobs",
    operation_id="listGroupJobs",
    responses=documented(401, 403, 404, 422, 503, not_found=GroupNotFoundProblem),
)
async def list_group_jobs(
    group_id: GroupId,
    user_id: CurrentUser,
    runtime: RuntimeDep,
    offset: Annotated[int, Query(description="Skip this many of its jobs.")] = 0,
    limit: Annotated[
        int, Query(description="Page size.", json_schema_extra={"minimum": 1, "maximum": 1000})
    ] = 100,
) -> list[JobOut]:
    """The group's jobs, in the order they were given."""
    jobs = await runtime.require_desk().get_group_jobs(
        group_id, user_id, offset=offset, limit=limit
    )
    return [JobOut.of(job) for job in jobs]


@router.post(
    "/groups/{id}/cancel",
    operation_id="cancelGroup",
    responses=documented(401, 403, 404, 422, 503, not_found=GroupNotFoundProblem),
)
async def cancel_group(group_id: GroupId, user_id: CurrentUser, runtime: RuntimeDep) -> GroupOut:
    """Cancel every pending and processing job of the group; finished ones keep their end."""
    return GroupOut.of(await runtime.require_desk().cancel_group(group_id, user_id))


@router.post(
    "/groups/{id}/retry",
    operation_id="retryGroup",
    responses=documented(401, 403, 404, 422, 429, 503, not_found=GroupNotFoundProblem),
)
async def retry_group(group_id: GroupId, user_id: CurrentUser, runtime: RuntimeDep) -> GroupOut:
    """Put the group's failed jobs back in the queue, all within the caller's limits or none."""
    return GroupOut.of(await runtime.require_desk().retry_group(group_id, user_id))


@router.get(
    "/groups/{id}/events",
    operation_id="streamGroupEvents",
    response_class=Response,
    responses={
        **_GROUP_STREAM,
        **documented(401, 403, 404, 422, 503, not_found=GroupNotFoundProblem),
    },
)
async def stream_group_events(
    group_id: GroupId,
    user_id: GroupReader,
    runtime: RuntimeDep,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume: the group's state is sent first."),
    ] = None,
) -> Response:
    """Server-Sent Events: the group's progress and each of its jobs' changes, as they happen;
    the stream ends once the group has finished (or when the view token that opened it
    expires). A view token for this group (`view_token` query parameter) opens it too."""
    return await open_group_stream(
        runtime.group_feeds,
        runtime.metrics,
        user_id=user_id,
        group_id=group_id,
        last_event_id=last_event_id,
    )
