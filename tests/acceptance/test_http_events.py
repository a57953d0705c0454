"""Server-Sent Events end to end, through a real uvicorn server, on each store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from jobdesk import JobDesk
from jobdesk.changes import RESYNC
from jobdesk.testing import ManualClock
from tests.acceptance.conftest import MakeApp, bearer, served
from tests.conftest import OpenDesk

WORKER = "/api/v1/worker/jobs"


@dataclass
class Event:
    """One parsed SSE event."""

    id: str | None
    event: str
    data: dict[str, Any]


class EventReader:
    """Reads events (skipping comments) from a streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, within: float = 5.0) -> Event | None:
        """The next event, or None when the stream ended."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line == "":
                    if fields:
                        return Event(
                            fields.get("id"),
                            fields.get("event", "message"),
                            json.loads(fields["data"]),
                        )
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
        return None


@asynccontextmanager
async def events(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> AsyncIterator[EventReader]:
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventReader(response)


async def test_one_jobs_stream_follows_it_to_the_end(desk: JobDesk, make_app: MakeApp) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    worker = bearer(await desk.create_worker_token("w1"))
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        job = (
            await client.post("/api/v1/jobs", json={"type": "extract", "input": {}}, headers=alice)
        ).json()
        async with events(client, f"/api/v1/jobs/{job['id']}/events", alice) as stream:
            first = await stream.next()
            assert first is not None
            assert first.event == "job"
            assert first.data["status"] == "pending"
            assert first.id is not None
            assert first.id.endswith(f"-{job['id']}-pending")

            await client.post(f"{WORKER}/claim", json={}, headers=worker)
            await client.post(
                f"{WORKER}/{job['id']}/progress",
                json={"progress": 50, "message": "halfway", "attempt": 1},
                headers=worker,
            )
            await client.post(
                f"{WORKER}/{job['id']}/complete", json={"result": 1, "attempt": 1}, headers=worker
            )
            seen = []
            while (event := await stream.next()) is not None:
                seen.append(
                    (event.data["status"], event.data["progress"], event.data["progress_message"])
                )
            assert seen == [
                ("processing", 0.0, None),
                ("processing", 50.0, "halfway"),
                ("completed", 100.0, "halfway"),
            ]


async def test_a_finished_job_sends_its_state_once_then_204_on_resume(
    desk: JobDesk, make_app: MakeApp
) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    job = await desk.create_job("alice", "extract", {})
    await desk.cancel_job(job.id, "alice")
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, f"/api/v1/jobs/{job.id}/events", alice) as stream:
            only = await stream.next()
            assert only is not None
            assert only.data["status"] == "cancelled"
            assert await stream.next() is None
        assert only.id is not None
        resumed = await client.get(
            f"/api/v1/jobs/{job.id}/events", headers={**alice, "Last-Event-ID": only.id}
        )
        assert resumed.status_code == 204


async def test_resuming_with_last_event_id_leaves_no_gap(
    desk: JobDesk, make_app: MakeApp, clock: ManualClock
) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    worker = await desk.verify_worker_token(await desk.create_worker_token("w1"))
    job = await desk.create_job("alice", "extract", {})
    path = f"/api/v1/jobs/{job.id}/events"
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, path, alice) as stream:
            first = await stream.next()
            assert first is not None
        # Disconnected: the job moves on meanwhile.
        clock.advance(seconds=1)
        await desk.claim_jobs(worker)
        clock.advance(seconds=1)
        await desk.update_job_progress(worker, job.id, 70, "most of it", attempt=1)
        assert first.id is not None
        async with events(client, path, {**alice, "Last-Event-ID": first.id}) as stream:
            caught_up = await stream.next()
            assert caught_up is not None
            assert (caught_up.data["status"], caught_up.data["progress"]) == ("processing", 70.0)
            clock.advance(seconds=1)
            await desk.complete_job(worker, job.id, "done", attempt=1)
            last = await stream.next()
            assert last is not None
            assert last.data["status"] == "completed"
            assert await stream.next() is None


async def test_a_users_stream_carries_only_their_jobs_and_resumes(
    desk: JobDesk, make_app: MakeApp, clock: ManualClock
) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    bob = bearer(await desk.create_user_token("bob"))
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, "/api/v1/jobs/events", alice) as stream:
            await desk.create_job("bob", "extract", {})
            mine = await desk.create_job("alice", "extract", {})
            event = await stream.next()
            assert event is not None
            assert (event.data["id"], event.data["status"]) == (mine.id, "pending")
            last_id = event.id
        assert last_id is not None
        clock.advance(seconds=5)
        later = await desk.create_job("alice", "render", {})
        await desk.cancel_job(mine.id, "alice")
        async with events(
            client, "/api/v1/jobs/events", {**alice, "Last-Event-ID": last_id}
        ) as stream:
            replayed = [await stream.next(), await stream.next()]
            assert {(e.data["id"], e.data["status"]) for e in replayed if e is not None} == {
                (later.id, "pending"),
                (mine.id, "cancelled"),
            }
        async with events(client, "/api/v1/jobs/events", bob) as stream:
            await desk.create_job("alice", "extract", {})
            theirs = await desk.create_job("bob", "render", {})
            event = await stream.next()
            assert event is not None
            assert event.data["id"] == theirs.id


async def test_streams_refuse_other_users_jobs_and_bad_event_ids(
    desk: JobDesk, make_app: MakeApp
) -> None:
    bob = bearer(await desk.create_user_token("bob"))
    job = await desk.create_job("alice", "extract", {})
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        other = await client.get(f"/api/v1/jobs/{job.id}/events", headers=bob)
        assert other.status_code == 404
        assert other.headers["content-type"] == "application/problem+json"
        bad = await client.get("/api/v1/jobs/events", headers={**bob, "Last-Event-ID": "yesterday"})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "Last-Event-ID"
        missing = await client.get("/api/v1/jobs/events")
        assert missing.status_code == 401


async def test_idle_streams_get_keepalives_and_closed_streams_are_forgotten(
    desk: JobDesk, make_app: MakeApp
) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    app = make_app(sse_keepalive_seconds=0.05)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        async with client.stream("GET", "/api/v1/jobs/events", headers=alice) as response:
            lines = response.aiter_lines()
            assert await anext(lines) == ": keepalive"
            assert app.state.jobdesk.broadcaster.listener_count == 1
        async with asyncio.timeout(5):
            # The server notices the disconnect on its own time: nothing to await.
            while app.state.jobdesk.broadcaster.listener_count:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        metrics = (await client.get("/metrics")).text
        assert "jobdesk_event_streams 0.0" in metrics


async def test_after_a_resync_streams_reread_what_the_feed_missed(
    desk: JobDesk, make_app: MakeApp, open_desk: OpenDesk, clock: ManualClock
) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    job = await desk.create_job("alice", "extract", {})
    async with (
        served(make_app()) as url,
        httpx.AsyncClient(base_url=url) as client,
        events(client, f"/api/v1/jobs/{job.id}/events", alice) as one,
        events(client, "/api/v1/jobs/events", alice) as every,
    ):
        assert (await one.next()) is not None  # the current state
        clock.advance(seconds=1)
        # Another desk on the same database: on SQLite this server's feed never
        # hears of the change (on PostgreSQL NOTIFY brings it anyway).
        async with open_desk() as elsewhere:
            await elsewhere.cancel_job(job.id, "alice")
        desk.store.hub.publish(RESYNC)
        for stream in (one, every):
            event = await stream.next()
            assert event is not None
            assert (event.data["id"], event.data["status"]) == (job.id, "cancelled")
        assert await one.next() is None  # cancelled is terminal: the stream ends
