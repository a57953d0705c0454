"""Ownership: a user sees and touches only their own jobs.

Another user's job is reported exactly as a job that does not exist: same
exception type, same message shape, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from jobdesk import JobDesk, JobStatus, Worker
from jobdesk.errors import JobNotFound
from tests.integration.support import MISSING_ID, job_in_status

UserOperation = Callable[[JobDesk, str, str], Awaitable[object]]

USER_OPERATIONS: dict[str, UserOperation] = {
    "get_job_status": lambda desk, job_id, user_id: desk.get_job_status(job_id, user_id),
    "cancel_job": lambda desk, job_id, user_id: desk.cancel_job(job_id, user_id),
    "retry_job": lambda desk, job_id, user_id: desk.retry_job(job_id, user_id),
    "get_job_history": lambda desk, job_id, user_id: desk.get_job_history(job_id, user_id),
}


async def not_found(operation: UserOperation, desk: JobDesk, job_id: str, user: str) -> JobNotFound:
    with pytest.raises(JobNotFound) as caught:
        await operation(desk, job_id, user)
    return caught.value


@pytest.mark.parametrize("operation_name", sorted(USER_OPERATIONS))
async def test_another_users_job_looks_exactly_like_a_missing_one(
    desk: JobDesk, worker: Worker, operation_name: str
) -> None:
    operation = USER_OPERATIONS[operation_name]
    missing = await not_found(operation, desk, MISSING_ID, "bob")
    assert missing.job_id == MISSING_ID
    for status in JobStatus:
        job = await job_in_status(desk, worker, "alice", status)
        foreign = await not_found(operation, desk, job.id, "bob")
        assert type(foreign) is type(missing) is JobNotFound
        assert foreign.job_id == job.id
        shape = str(foreign).replace(job.id, "<id>")
        assert shape == str(missing).replace(MISSING_ID, "<id>"), status
        assert foreign.args == (str(foreign),)


@pytest.mark.parametrize("operation_name", sorted(USER_OPERATIONS))
async def test_another_users_operation_changes_nothing(
    desk: JobDesk, worker: Worker, operation_name: str
) -> None:
    jobs = [await job_in_status(desk, worker, "alice", status) for status in JobStatus]
    before = [await desk.get_job_status(job.id, "alice") for job in jobs]
    histories = [await desk.get_job_history(job.id, "alice") for job in jobs]
    usage_before = await desk.get_user_usage("alice")
    bob_usage_before = await desk.get_user_usage("bob")

    for job in jobs:
        await not_found(USER_OPERATIONS[operation_name], desk, job.id, "bob")

    assert [await desk.get_job_status(job.id, "alice") for job in jobs] == before
    assert [await desk.get_job_history(job.id, "alice") for job in jobs] == histories
    assert await desk.get_user_usage("alice") == usage_before
    assert await desk.get_user_usage("bob") == bob_usage_before


async def test_user_ids_are_compared_exactly(desk: JobDesk, worker: Worker) -> None:
    job = await job_in_status(desk, worker, "alice", JobStatus.FAILED)
    for operation_name, operation in USER_OPERATIONS.items():
        for lookalike in ("Alice", "alice ", " alice", "alic", "alice2", "ALICE", "alic\u00e9"):
            error = await not_found(operation, desk, job.id, lookalike)
            assert error.job_id == job.id, (operation_name, lookalike)
    assert (await desk.get_job_status(job.id, "alice")).status is JobStatus.FAILED


async def test_the_owner_can_do_what_others_cannot(desk: JobDesk, worker: Worker) -> None:
    job = await job_in_status(desk, worker, "alice", JobStatus.FAILED)
    assert (await desk.get_job_status(job.id, "alice")).id == job.id
    assert [event.status for event in await desk.get_job_history(job.id, "alice")] == [
        JobStatus.PENDING,
        JobStatus.PROCESSING,
        JobStatus.FAILED,
    ]
    assert (await desk.retry_job(job.id, "alice")).status is JobStatus.PENDING
    assert (await desk.cancel_job(job.id, "alice")).status is JobStatus.CANCELLED


async def test_get_user_jobs_never_returns_another_users_jobs(
    desk: JobDesk, worker: Worker
) -> None:
    alice_ids = set()
    bob_ids = set()
    for status in JobStatus:
        for project_id in ("shared-project", None):
            alice_job = await job_in_status(desk, worker, "alice", status, project_id=project_id)
            alice_ids.add(alice_job.id)
            bob_job = await desk.create_job("bob", "demo", {"n": 1}, project_id)
            bob_ids.add(bob_job.id)

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await desk.get_user_jobs("alice", limit=3, cursor=cursor)
        seen.extend(job.id for job in page.items)
        assert all(job.user_id == "alice" for job in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert set(seen) == alice_ids
    assert len(seen) == len(alice_ids)

    filtered = await desk.get_user_jobs(
        "alice", status=list(JobStatus), type="demo", project_id="shared-project", limit=100
    )
    assert {job.id for job in filtered.items} <= alice_ids
    assert len(filtered.items) == len(JobStatus)
    bob_page = await desk.get_user_jobs("bob", limit=100)
    assert {job.id for job in bob_page.items} == bob_ids
    assert (await desk.get_user_jobs("carol")).items == []
    assert (await desk.get_user_jobs("Alice")).items == []
