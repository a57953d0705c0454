"""Many streams of one group in one process share one feed: each change is counted once
and every stream is sent the same event, with the same id; a stream that joins a group
already followed starts at its state as it stands; a stream that goes away leaves the
others going, and the last one to go lets the feed go (the next starts afresh)."""

from __future__ import annotations

import asyncio

import httpx

from jobdesk import JobDesk, JobSpec
from tests.acceptance.conftest import MakeApp, served
from tests.acceptance.test_http_events import Event, EventReader, events


async def next_event(stream: EventReader) -> Event:
    event = await stream.next()
    assert event is not None
    return event


async def test_streams_of_one_group_get_the_same_events_and_late_ones_the_state_as_it_stands(
    desk: JobDesk, make_app: MakeApp
) -> None:
    worker = await desk.verify_worker_token(await desk.create_worker_token("w1"))
    group = await desk.create_group("alice", [JobSpec("extract", {"n": n}) for n in range(2)])
    token = await desk.create_view_token("alice", group_id=group.id)
    path = f"/api/v1/groups/{group.id}/events?view_token={token}"
    first_job, second_job = await desk.claim_jobs(worker, limit=2)
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, path, {}) as one, events(client, path, {}) as two:
            opening = [await next_event(one), await next_event(two)]
            assert [(event.id, event.data["status"]) for event in opening] == [
                (f"1-{group.id}-running", "running")
            ] * 2
            await desk.update_job_progress(worker, first_job.id, 50, attempt=first_job.attempt)
            for stream in (one, two):
                job, state = await next_event(stream), await next_event(stream)
                assert (job.event, job.id, job.data["id"], job.data["progress"]) == (
                    "job",
                    None,  # only group events carry an id: a stream resumes from those
                    first_job.id,
                    50.0,
                )
                assert (state.id, state.data["progress"]) == (f"2-{group.id}-running", 25.0)
            async with events(client, path, {}) as late:
                joined = await next_event(late)
                assert (joined.id, joined.data["progress"]) == (f"2-{group.id}-running", 25.0)
            await desk.complete_job(worker, first_job.id, 1, attempt=first_job.attempt)
            await desk.complete_job(worker, second_job.id, 2, attempt=second_job.attempt)
            ends = []
            for stream in (one, two):
                rest = []
                while (event := await stream.next()) is not None:
                    rest.append((event.event, event.data["status"], event.data["progress"]))
                ends.append(rest)
            assert ends[0] == ends[1]
            assert ends[0][-1] == ("group", "completed", 100.0)
        # Every stream has gone, and the feed with them: a new stream reads the group again.
        async with events(client, path, {}) as again:
            final = await next_event(again)
            assert (final.data["status"], final.data["progress"]) == ("completed", 100.0)
            assert await again.next() is None


async def test_a_stream_that_goes_away_leaves_the_others_going(
    desk: JobDesk, make_app: MakeApp
) -> None:
    worker = await desk.verify_worker_token(await desk.create_worker_token("w1"))
    group = await desk.create_group("alice", [JobSpec("extract", {})])
    token = await desk.create_view_token("alice", group_id=group.id)
    path = f"/api/v1/groups/{group.id}/events?view_token={token}"
    [job] = await desk.claim_jobs(worker)
    async with (
        served(make_app()) as url,
        httpx.AsyncClient(base_url=url) as client,
        events(client, path, {}) as staying,
    ):
        await next_event(staying)
        async with events(client, path, {}) as leaving:
            await next_event(leaving)
        await asyncio.sleep(0.1)  # the server sees the disconnect
        await desk.update_job_progress(worker, job.id, 30, attempt=job.attempt)
        assert (await next_event(staying)).event == "job"
        assert (await next_event(staying)).data["progress"] == 30.0
