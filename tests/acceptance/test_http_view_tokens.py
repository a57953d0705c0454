"""View tokens over HTTP, on each store: a browser reads and follows one job or group, and
nothing else; the stream ends when the token expires; CORS per origin; the JS module."""

from __future__ import annotations

import httpx

from jobdesk import JobDesk, JobSpec
from jobdesk.testing import ManualClock
from tests.acceptance.conftest import Api, MakeApp, bearer, running, served
from tests.acceptance.test_http_events import events
from tests.acceptance.test_http_jobs import assert_problem


async def test_a_view_token_reads_its_job_and_nothing_else(api: Api) -> None:
    job = await api.desk.create_job("alice", "extract", {"n": 1})
    other = await api.desk.create_job("alice", "extract", {"n": 2})
    group = await api.desk.create_group("alice", [JobSpec("extract", {"n": 3})])
    token = await api.desk.create_view_token("alice", job_id=job.id)
    read = await api.client.get(f"/api/v1/jobs/{job.id}", params={"view_token": token})
    assert read.status_code == 200, read.text
    assert read.json()["id"] == job.id
    by_header = await api.client.get(f"/api/v1/jobs/{job.id}", headers=bearer(token))
    assert by_header.status_code == 200
    for path in (f"/api/v1/jobs/{other.id}", f"/api/v1/jobs/{other.id}/events"):
        response = await api.client.get(path, params={"view_token": token})
        assert_problem(response, 404, "job-not-found")
    response = await api.client.get(f"/api/v1/groups/{group.id}", params={"view_token": token})
    assert_problem(response, 404, "group-not-found")


async def test_a_view_token_cannot_write_or_list(api: Api) -> None:
    job = await api.desk.create_job("alice", "extract", {"n": 1})
    token = bearer(await api.desk.create_view_token("alice", job_id=job.id))
    for method, path in [
        ("POST", f"/api/v1/jobs/{job.id}/cancel"),
        ("POST", f"/api/v1/jobs/{job.id}/retry"),
        ("GET", "/api/v1/jobs"),
        ("GET", f"/api/v1/jobs/{job.id}/history"),
        ("GET", "/api/v1/usage"),
    ]:
        response = await api.client.request(method, path, headers=token)
        assert_problem(response, 403, "forbidden")
    response = await api.client.post("/api/v1/jobs", json={"type": "x", "input": 1}, headers=token)
    assert_problem(response, 403, "forbidden")
    assert (await api.desk.get_job_status(job.id, "alice")).status.value == "pending"
    assert (await api.desk.get_user_usage("alice")).created_today == 1


async def test_a_forged_or_expired_view_token_is_a_401(api: Api, clock: ManualClock) -> None:
    job = await api.desk.create_job("alice", "extract", {"n": 1})
    token = await api.desk.create_view_token("alice", job_id=job.id, ttl=5)
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    response = await api.client.get(f"/api/v1/jobs/{job.id}", params={"view_token": forged})
    assert_problem(response, 401, "unauthorized")
    response = await api.client.post(f"/api/v1/jobs/{job.id}/cancel", headers=bearer(forged))
    assert_problem(response, 401, "unauthorized")
    clock.advance(6)
    response = await api.client.get(f"/api/v1/jobs/{job.id}", params={"view_token": token})
    assert_problem(response, 401, "unauthorized")


async def test_a_browser_follows_a_group_with_its_view_token(
    desk: JobDesk, make_app: MakeApp
) -> None:
    group = await desk.create_group("alice", [JobSpec("extract", {"n": n}) for n in range(2)])
    token = await desk.create_view_token("alice", group_id=group.id)
    worker = bearer(await desk.create_worker_token("w1"))
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        path = f"/api/v1/groups/{group.id}/events?view_token={token}"
        async with events(client, path, {}) as stream:
            first = await stream.next()
            assert first is not None
            assert (first.event, first.data["status"]) == ("group", "pending")
            claimed = (
                await client.post("/api/v1/worker/jobs/claim", json={"limit": 2}, headers=worker)
            ).json()
            for job in claimed:
                await client.post(
                    f"/api/v1/worker/jobs/{job['id']}/complete",
                    json={"result": 1, "attempt": 1},
                    headers=worker,
                )
            last = None
            while (event := await stream.next()) is not None:
                last = event
            assert last is not None
            assert (last.event, last.data["status"], last.data["progress"]) == (
                "group",
                "completed",
                100.0,
            )


async def test_the_stream_ends_when_the_view_token_expires(
    desk: JobDesk, make_app: MakeApp
) -> None:
    job = await desk.create_job("alice", "extract", {})
    token = await desk.create_view_token("alice", job_id=job.id, ttl=1)
    path = f"/api/v1/jobs/{job.id}/events?view_token={token}"
    async with (
        served(make_app()) as url,
        httpx.AsyncClient(base_url=url) as client,
        events(client, path, {}) as stream,
    ):
        first = await stream.next()
        assert first is not None
        assert first.data["status"] == "pending"
        end = await stream.next(within=10)
        assert end is not None
        assert (end.event, end.data["reason"]) == ("end", "expired")
        assert await stream.next() is None


async def test_cors_answers_only_the_configured_origins(desk: JobDesk, make_app: MakeApp) -> None:
    job = await desk.create_job("alice", "extract", {})
    token = await desk.create_view_token("alice", job_id=job.id)
    app = make_app(cors_origins=("https://app.example",))
    async with running(app) as client:
        allowed = await client.get(
            f"/api/v1/jobs/{job.id}",
            params={"view_token": token},
            headers={"Origin": "https://app.example"},
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.get(
            f"/api/v1/jobs/{job.id}",
            params={"view_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in other.headers
        script = await client.get("/static/jobdesk.js", headers={"Origin": "https://app.example"})
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert "export function watchJob(" in script.text
        assert "export function watchGroup(" in script.text
        assert script.headers["access-control-allow-origin"] == "https://app.example"
