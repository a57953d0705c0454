"""A long-lived stream ends when the credential that opened it stops holding.

Revoking a token (or a JWT reaching its ``exp``) must end what it already opened:
the API's streams, a worker's stream and the dashboard's, each with a last ``end``
event saying why. A worker's stream names no users.
"""

from __future__ import annotations

import time

import httpx
import jwt

from jobdesk import JobDesk
from tests.acceptance.conftest import JWT_SECRET, MakeApp, bearer, served
from tests.acceptance.test_dashboard_http import signed_in
from tests.acceptance.test_http_events import EventReader, events

RECHECK = 0.2


async def last_event(stream: EventReader, within: float = 5.0) -> tuple[str, dict[str, object]]:
    """The stream's last event (keepalives and job states before it are skipped)."""
    last = None
    while (event := await stream.next(within)) is not None:
        last = event
    assert last is not None
    return last.event, last.data


async def test_revoking_a_user_token_ends_its_open_job_stream(
    desk: JobDesk, make_app: MakeApp
) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    app = make_app(sse_recheck_seconds=RECHECK)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        job = await client.post("/api/v1/jobs", json={"type": "x", "input": {}}, headers=alice)
        job_id = job.json()["id"]
        async with events(client, f"/api/v1/jobs/{job_id}/events", alice) as stream:
            first = await stream.next()
            assert first is not None
            assert first.event == "job"
            await desk.revoke_user_tokens("alice")
            started = time.monotonic()
            name, data = await last_event(stream)
        assert name == "end"
        assert data["reason"] == "unauthorized"
        assert time.monotonic() - started < 3
        again = await client.get(f"/api/v1/jobs/{job_id}/events", headers=alice)
        assert again.status_code == 401


async def test_revoking_a_user_token_ends_its_stream_of_all_jobs(
    desk: JobDesk, make_app: MakeApp
) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    app = make_app(sse_recheck_seconds=RECHECK)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, "/api/v1/jobs/events", alice) as stream:
            await desk.revoke_user_tokens("alice")
            await desk.create_job("alice", "x", None)  # what a still-open stream would carry
            name, data = await last_event(stream)
        assert (name, data["reason"]) == ("end", "unauthorized")


async def test_a_jwt_stream_ends_at_the_jwts_exp(desk: JobDesk, make_app: MakeApp) -> None:
    expires = int(time.time()) + 2
    token = jwt.encode({"sub": "alice", "exp": expires}, JWT_SECRET, algorithm="HS256")
    app = make_app(sse_recheck_seconds=60)  # the exp alone must end it, not a periodic check
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, "/api/v1/jobs/events", bearer(token)) as stream:
            name, data = await last_event(stream, within=6)
            ended = time.time()
        assert (name, data["reason"]) == ("end", "expired")
        assert expires <= ended < expires + 2


async def test_revoking_a_worker_token_ends_its_ready_stream(
    desk: JobDesk, make_app: MakeApp
) -> None:
    worker = bearer(await desk.create_worker_token("w1"))
    app = make_app(sse_recheck_seconds=RECHECK)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, "/api/v1/worker/events", worker) as stream:
            hello = await stream.next()
            assert hello is not None
            assert hello.event == "resync"
            await desk.revoke_worker_token("w1")
            name, data = await last_event(stream)
        assert (name, data["reason"]) == ("end", "unauthorized")


async def test_a_workers_ready_stream_carries_no_user_ids(desk: JobDesk, make_app: MakeApp) -> None:
    worker = bearer(await desk.create_worker_token("w1"))
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        async with events(client, "/api/v1/worker/events", worker) as stream:
            await stream.next()  # resync: connected
            job = await desk.create_job("alice-the-user", "x", None)
            ready = await stream.next()
        assert ready is not None
        assert ready.event == "ready"
        assert ready.data["id"] == job.id
        assert "user_id" not in ready.data
        assert "alice-the-user" not in str(ready.data)


async def test_revoking_the_token_ends_the_dashboards_open_streams(
    desk: JobDesk, make_app: MakeApp
) -> None:
    token = await desk.create_user_token("alice")
    job = await desk.create_job("alice", "x", None)
    app = make_app(sse_recheck_seconds=RECHECK)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await signed_in(client, token)).status_code == 303
        async with (
            client.stream("GET", f"/jobs/{job.id}/events") as one,
            client.stream("GET", "/events") as every,
        ):
            assert one.status_code == every.status_code == 200
            await desk.revoke_user_tokens("alice")
            for response in (one, every):
                stream = EventReader(response)
                fields = await _last_raw_event(stream)
                assert fields.startswith("event: end")


async def _last_raw_event(stream: EventReader) -> str:
    """The dashboard's events carry HTML: read the last event's raw lines."""
    last, current = "", list[str]()
    async for line in stream.response.aiter_lines():
        if line == "":
            if current:
                last = "\n".join(current)
            current = []
        elif not line.startswith(":"):
            current.append(line)
    return last
