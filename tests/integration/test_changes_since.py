"""The queries behind live views and readiness probes: changed since, ping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdesk import JobDesk, JobStatus, Worker
from jobdesk.errors import InvalidInput, StoreUnavailable
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk


async def test_changed_since_lists_the_users_jobs_by_last_change(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    old = await desk.create_job("alice", "extract", {})
    clock.advance(seconds=10)
    since = clock()
    fresh = await desk.create_job("alice", "extract", {})
    await desk.create_job("bob", "extract", {})
    clock.advance(seconds=10)
    await desk.claim_jobs(worker, limit=1)  # claims `old`: it changes again now
    changed = await desk.get_user_jobs_changed_since("alice", since)
    assert [job.id for job in changed] == [fresh.id, old.id]
    assert changed[1].status is JobStatus.PROCESSING
    assert await desk.get_user_jobs_changed_since("alice", clock() + timedelta(seconds=1)) == []
    assert len(await desk.get_user_jobs_changed_since("alice", since, limit=1)) == 1


async def test_changed_since_checks_its_arguments(desk: JobDesk) -> None:
    with pytest.raises(InvalidInput, match="since"):
        await desk.get_user_jobs_changed_since("alice", datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="limit"):
        await desk.get_user_jobs_changed_since("alice", datetime(2026, 1, 1, tzinfo=UTC), limit=0)


async def test_ping_answers_while_open_and_fails_once_closed(open_desk: OpenDesk) -> None:
    async with open_desk() as desk:
        await desk.ping()
    with pytest.raises(StoreUnavailable):
        await desk.ping()
