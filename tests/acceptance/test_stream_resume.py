"""What jobdesk.js relies on, on each store: a browser's EventSource that lost its stream
reconnects with ``Last-Event-ID`` (and its view token in the URL) and misses nothing, and
is not sent again what it already had: the group stream answers with the group's state
as it now stands, then goes on; the job stream likewise; a stream whose last event was
the finished state answers 204 (which stops EventSource)."""

from __future__ import annotations

import httpx

from jobdesk import JobDesk, JobSpec
from jobdesk.testing import ManualClock
from tests.acceptance.conftest import MakeApp, served
from tests.acceptance.test_http_events import events


async def test_a_group_stream_resumes_with_the_state_it_missed_and_nothing_twice(
    desk: JobDesk, make_app: MakeApp, clock: ManualClock
) -> None:
    worker = await desk.verify_worker_token(await desk.create_worker_token("w1"))
    group = await desk.create_group("alice", [JobSpec("extract", {"n": n}) for n in range(2)])
    token = await desk.create_view_token("alice", group_id=group.id)
    path = f"/api/v1/groups/{group.id}/events?view_token={token}"
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, path, {}) as stream:
            first = await stream.next()
            assert first is not None
            assert (first.event, first.data["status"]) == ("group", "pending")
        # Disconnected: one job runs and ends, the other starts.
        first_job, second_job = await desk.claim_jobs(worker, limit=2)
        clock.advance(seconds=1)
        await desk.complete_job(worker, first_job.id, "one", attempt=first_job.attempt)
        assert first.id is not None
        async with events(client, path, {"Last-Event-ID": first.id}) as stream:
            caught_up = await stream.next()
            assert caught_up is not None
            assert caught_up.event == "group"
            assert (caught_up.data["status"], caught_up.data["progress"]) == ("running", 50.0)
            assert caught_up.data["counts"]["completed"] == 1
            assert caught_up.data["counts"]["processing"] == 1
            clock.advance(seconds=1)
            await desk.complete_job(worker, second_job.id, "two", attempt=second_job.attempt)
            rest = []
            while (event := await stream.next()) is not None:
                rest.append(event)
        assert [(event.event, event.data["status"]) for event in rest] == [
            ("job", "completed"),
            ("group", "completed"),
        ]
        assert rest[0].data["id"] == second_job.id  # the first job's end is not sent again
        last = rest[-1].id
        assert last is not None
        resumed = await client.get(path, headers={"Last-Event-ID": last})
        assert resumed.status_code == 204


async def test_a_job_stream_resumes_with_a_view_token_and_ends_with_204(
    desk: JobDesk, make_app: MakeApp, clock: ManualClock
) -> None:
    worker = await desk.verify_worker_token(await desk.create_worker_token("w1"))
    job = await desk.create_job("alice", "extract", {})
    token = await desk.create_view_token("alice", job_id=job.id)
    path = f"/api/v1/jobs/{job.id}/events?view_token={token}"
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, path, {}) as stream:
            first = await stream.next()
            assert first is not None
            assert first.data["status"] == "pending"
        clock.advance(seconds=1)
        [claimed] = await desk.claim_jobs(worker)
        clock.advance(seconds=1)
        await desk.update_job_progress(worker, job.id, 40, "some", attempt=claimed.attempt)
        assert first.id is not None
        async with events(client, path, {"Last-Event-ID": first.id}) as stream:
            caught_up = await stream.next()
            assert caught_up is not None
            assert (caught_up.data["status"], caught_up.data["progress"]) == ("processing", 40.0)
            clock.advance(seconds=1)
            await desk.complete_job(worker, job.id, "done", attempt=claimed.attempt)
            last = await stream.next()
            assert last is not None
            assert last.data["status"] == "completed"
            assert await stream.next() is None
        assert last.id is not None
        resumed = await client.get(path, headers={"Last-Event-ID": last.id})
        assert resumed.status_code == 204
