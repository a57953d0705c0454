"""One user, or one worker token, cannot hold open streams without bound, and a change
costs one read and one render however many streams show the job.

Through a real uvicorn: the cap counts API and dashboard streams together, refuses
the next with 429 and ``Retry-After``, and frees a slot when a stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from jobdesk import JobDesk
from jobdesk.http.dashboard import live, render
from tests.acceptance.conftest import MakeApp, bearer, served
from tests.acceptance.test_dashboard_http import signed_in

CAP = 3


async def test_the_stream_after_the_cap_is_429_with_retry_after(
    desk: JobDesk, make_app: MakeApp
) -> None:
    token = await desk.create_user_token("alice")
    alice = bearer(token)
    bob = bearer(await desk.create_user_token("bob"))
    async with (
        served(make_app(max_streams=CAP)) as url,
        httpx.AsyncClient(base_url=url) as client,
        httpx.AsyncClient(base_url=url) as browser,
        contextlib.AsyncExitStack() as stack,
    ):
        await signed_in(browser, token)
        opened = [
            await stack.enter_async_context(
                client.stream("GET", "/api/v1/jobs/events", headers=alice)
            ),
            await stack.enter_async_context(
                client.stream("GET", "/api/v1/jobs/events", headers=alice)
            ),
            await stack.enter_async_context(browser.stream("GET", "/events")),
        ]
        assert [response.status_code for response in opened] == [200] * CAP
        refused = await client.get("/api/v1/jobs/events", headers=alice)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert (await browser.get("/events")).status_code == 429
        # Another user is not held back by alice's streams.
        async with client.stream("GET", "/api/v1/jobs/events", headers=bob) as other:
            assert other.status_code == 200
        # A stream that ends gives its slot back.
        await opened[0].aclose()
        async with asyncio.timeout(5):
            while True:
                async with client.stream("GET", "/api/v1/jobs/events", headers=alice) as again:
                    if again.status_code == 200:
                        break
                await asyncio.sleep(0.05)


async def test_a_worker_token_is_capped_too(desk: JobDesk, make_app: MakeApp) -> None:
    worker = bearer(await desk.create_worker_token("w1"))
    other = bearer(await desk.create_worker_token("w2"))
    async with (
        served(make_app(max_streams=CAP)) as url,
        httpx.AsyncClient(base_url=url) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        for _ in range(CAP):
            response = await stack.enter_async_context(
                client.stream("GET", "/api/v1/worker/events", headers=worker)
            )
            assert response.status_code == 200
        refused = await client.get("/api/v1/worker/events", headers=worker)
        assert refused.status_code == 429
        assert "retry-after" in refused.headers
        async with client.stream("GET", "/api/v1/worker/events", headers=other) as response:
            assert response.status_code == 200


def test_the_default_cap_is_twenty() -> None:
    from jobdesk.http import Settings  # noqa: PLC0415

    assert Settings().max_streams == 20
    assert Settings.from_env({"JOBDESK_MAX_STREAMS": "7"}).max_streams == 7


async def test_a_change_is_read_and_rendered_once_for_every_stream_of_the_job(
    desk: JobDesk, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await desk.create_user_token("alice")
    job = await desk.create_job("alice", "x", None)
    worker = await desk.verify_worker_token(await desk.create_worker_token("w1"))
    calls = {"get_job_status": 0, "get_job_history": 0, "render": 0}

    def counted(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return await method(*args, **kwargs)

        return call

    # Counting wrappers around the real desk and renderer: the database is real.
    monkeypatch.setattr(desk, "get_job_status", counted("get_job_status", desk.get_job_status))
    monkeypatch.setattr(desk, "get_job_history", counted("get_job_history", desk.get_job_history))
    real_fragment = render.fragment

    def fragment(*args: Any, **kwargs: Any) -> str:
        calls["render"] += 1
        return real_fragment(*args, **kwargs)

    monkeypatch.setattr(live, "fragment", fragment)
    streams = 8
    async with (
        served(make_app(max_streams=streams)) as url,
        httpx.AsyncClient(base_url=url) as browser,
        contextlib.AsyncExitStack() as stack,
    ):
        await signed_in(browser, token)
        opened = [
            await stack.enter_async_context(browser.stream("GET", f"/jobs/{job.id}/events"))
            for _ in range(streams)
        ]
        assert {response.status_code for response in opened} == {200}
        for name in calls:
            calls[name] = 0
        await desk.claim_jobs(worker)
        panels = []
        for response in opened:
            lines = response.aiter_lines()
            async with asyncio.timeout(5):
                async for line in lines:
                    if line.startswith("event: job"):
                        panels.append(line)
                        break
        assert len(panels) == streams
    # One read of the job and one of its history (which checks the job's owner without
    # going through get_job_status), one render: the same for 8 streams as for one.
    assert calls == {"get_job_status": 1, "get_job_history": 1, "render": 1}
