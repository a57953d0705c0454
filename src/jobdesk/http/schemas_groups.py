"""Request and response bodies of the group routes (``/api/v1/groups``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field, StrictStr

from jobdesk import wire
from jobdesk.group_operations import MAX_GROUP_NAME
from jobdesk.groups import MAX_GROUP_JOBS, Group, GroupPage, GroupStatus
from jobdesk.http.schemas import ID_RULE, JOB_ID_RULE, JSON_VALUE, TYPE_RULE, Body, JobSpecIn, Out
from jobdesk.models import JobStatus

__all__ = [
    "GROUP_EVENT_SCHEMA",
    "CreateGroupRequest",
    "FanInIn",
    "GroupEvent",
    "GroupId",
    "GroupOut",
    "GroupPageOut",
]


class FanInIn(Body):
    """The fan-in job made once every job of the group has finished."""

    type: Annotated[StrictStr, Field(description="Its job type.", json_schema_extra=TYPE_RULE)]
    input: Annotated[
        Any,
        Field(
            description=f"{JSON_VALUE} The job's input is `{{group_id, input, jobs: [{{id, "
            "status, result}]}}`: this value beside the group's results."
        ),
    ] = None


class CreateGroupRequest(Body):
    """``POST /api/v1/groups``: a group and all its jobs, one transaction, all or none."""

    jobs: Annotated[
        list[JobSpecIn],
        Field(json_schema_extra={"minItems": 1, "maxItems": MAX_GROUP_JOBS}),
    ]
    project_id: Annotated[
        StrictStr | None,
        Field(
            description="The group's project (and its jobs' unless they name one).",
            json_schema_extra=ID_RULE,
        ),
    ] = None
    name: Annotated[
        StrictStr | None,
        Field(
            description="A label for people.",
            json_schema_extra={"minLength": 1, "maxLength": MAX_GROUP_NAME},
        ),
    ] = None
    on_complete: FanInIn | None = None


class FanInOut(Out):
    """A group's fan-in job, as asked for."""

    type: str
    input: Annotated[Any, Field(description=JSON_VALUE)]


class GroupOut(Out):
    """A group, as its owner sees it: its derived status and progress, and its jobs' counts.

    The body is :func:`jobdesk.wire.encode_group`'s.
    """

    id: str
    user_id: str
    project_id: str | None
    name: str | None
    status: GroupStatus
    progress: Annotated[
        float, Field(description="The mean of its jobs' progress, finished jobs as 100.")
    ]
    size: Annotated[int, Field(description="How many jobs it holds.")]
    counts: Annotated[dict[JobStatus, int], Field(description="Its jobs per status.")]
    created_at: datetime
    cancelled_at: datetime | None
    on_complete: FanInOut | None
    on_complete_job_id: Annotated[
        str | None, Field(description="The fan-in job, once every job has finished.")
    ]

    @classmethod
    def of(cls, group: Group) -> GroupOut:
        """The response body for ``group``."""
        return cls.model_validate(wire.encode_group(group))


class GroupPageOut(Out):
    """One page of the caller's groups, newest first."""

    items: list[GroupOut]
    next_cursor: Annotated[
        str | None, Field(description="Pass as `cursor` for the next page; null on the last.")
    ]

    @classmethod
    def of(cls, page: GroupPage) -> GroupPageOut:
        """The response body for ``page``."""
        return cls(items=[GroupOut.of(group) for group in page.items], next_cursor=page.next_cursor)


class GroupEvent(BaseModel):
    """The data of a ``group`` event on a group's stream: its figures after a change."""

    id: str
    status: GroupStatus
    progress: float
    size: int
    counts: dict[JobStatus, int]


GROUP_EVENT_SCHEMA: dict[str, Any] = {
    "description": "One Server-Sent Event: `group` (the group's figures; `id` resumes the "
    "stream as `Last-Event-ID`) or `job` (one of its jobs changed).",
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "event": {"const": "group"},
                "id": {"type": "string", "pattern": r"^\d+-[0-9A-Z]{26}-[a-z_]+$"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/GroupEvent"},
                },
            },
            "required": ["event", "id", "data"],
        },
        {
            "type": "object",
            "properties": {
                "event": {"const": "job"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/JobStateEvent"},
                },
            },
            "required": ["event", "data"],
        },
    ],
}
"""The OpenAPI schema of each event of a group's stream."""

GroupId = Annotated[
    str,
    Path(alias="id", description="A group id (26 characters).", json_schema_extra=JOB_ID_RULE),
]
"""The ``{id}`` of a group route."""
