"""create_view_token on each store: only for the user's own job or group, a bounded life."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobdesk import JobDesk, JobSpec
from jobdesk.errors import GroupNotFound, InvalidInput, JobNotFound, Unauthorized
from jobdesk.testing import ManualClock


async def test_a_view_token_names_its_job_or_group_until_its_ttl(
    desk: JobDesk, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "extract", {})
    group = await desk.create_group("alice", [JobSpec("extract", {"n": 1})])
    token = await desk.create_view_token("alice", job_id=job.id, ttl=60)
    grant = await desk.verify_view_token(token)
    assert (grant.user_id, grant.kind, grant.target_id) == ("alice", "job", job.id)
    assert grant.expires_at == clock() + timedelta(seconds=60)
    grant = await desk.verify_view_token(await desk.create_view_token("alice", group_id=group.id))
    assert (grant.kind, grant.target_id, grant.expires_at) == (
        "group",
        group.id,
        clock() + timedelta(seconds=300),
    )
    clock.advance(61)
    with pytest.raises(Unauthorized, match="expired"):
        await desk.verify_view_token(token)


async def test_a_view_token_is_only_for_the_users_own_job_or_group(desk: JobDesk) -> None:
    job = await desk.create_job("alice", "extract", {})
    group = await desk.create_group("alice", [JobSpec("extract", {"n": 1})])
    with pytest.raises(JobNotFound):
        await desk.create_view_token("mallory", job_id=job.id)
    with pytest.raises(GroupNotFound):
        await desk.create_view_token("mallory", group_id=group.id)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"job": True, "ttl": 0}, "ttl"),
        ({"job": True, "ttl": -5}, "ttl"),
        ({"job": True, "ttl": 86_401}, "ttl"),
        ({"job": True, "ttl": 1.5}, "ttl"),
        ({}, "job_id"),
        ({"job": True, "group_id": "01J0000000000000000000000A"}, "job_id"),
        ({"job_id": "not an id"}, "job_id"),
        ({"group_id": "not an id"}, "group_id"),
    ],
)
async def test_bad_view_token_requests_name_the_field(
    desk: JobDesk, options: dict[str, object], field: str
) -> None:
    arguments = dict(options)
    if arguments.pop("job", False):
        arguments["job_id"] = (await desk.create_job("alice", "extract", {})).id
    with pytest.raises(InvalidInput) as caught:
        await desk.create_view_token("alice", **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
