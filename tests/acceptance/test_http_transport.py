"""The worker runtime over HTTP: ``HttpTransport`` against a real server, on each store.

The app runs under uvicorn on a free port over the test's desk; the runtime
reaches it only through ``/api/v1/worker/...`` with a worker token, as a remote
worker would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from jobdesk import Completion, Job, JobDesk, JobStatus
from jobdesk.changes import RESYNC, JobChange
from jobdesk.errors import (
    Forbidden,
    GroupNotFound,
    InvalidInput,
    InvalidTransition,
    JobdeskError,
    JobNotFound,
    LeaseLost,
    RateLimited,
    ScheduleNotFound,
    StoreUnavailable,
    Unauthorized,
)
from jobdesk.http.problems import REGISTRY
from jobdesk.worker import Fail, HttpTransport, JobContext, Registry, Retry, WorkerRuntime
from jobdesk.worker.http import error_from_problem
from tests.acceptance.conftest import MakeApp, bearer, served
from tests.integration.worker_support import wait_until


@pytest.fixture
async def server(make_app: MakeApp) -> AsyncIterator[str]:
    """The app over the test's desk, served on a free port; its base URL."""
    async with served(make_app()) as url:
        yield url


async def status(desk: JobDesk, job_id: str, user_id: str = "user-1") -> Any:
    return await desk.get_job_status(job_id, user_id)


async def test_a_remote_worker_drains_the_queue_with_batched_completions(
    desk: JobDesk, server: str
) -> None:
    registry = Registry()

    @registry.handler("double")
    async def double(ctx: JobContext, payload: dict[str, int]) -> dict[str, int]:
        await ctx.progress(50, "half way")
        return {"n": payload["n"] * 2}

    jobs = [await desk.create_job("user-1", "double", {"n": n}) for n in range(8)]
    token = await desk.create_worker_token("remote-1")
    async with HttpTransport.connect(server, token) as transport:
        assert transport.worker_name == "remote-1"
        assert transport.token_types is None
        worker = WorkerRuntime(registry, transport, concurrency=4)
        await asyncio.wait_for(worker.run(until_empty=True), 30)

    finished = [await status(desk, job.id) for job in jobs]
    assert [job.status for job in finished] == [JobStatus.COMPLETED] * 8
    assert [job.result for job in finished] == [{"n": 2 * n} for n in range(8)]
    assert {job.worker_id for job in finished} == {"remote-1"}
    assert all(job.attempt == 1 and job.progress == 100 for job in finished)
    assert worker.outcomes == {"completed": 8}
    assert sum(worker.batch_sizes) == 8
    assert max(worker.batch_sizes) > 1  # jobs that finished together went in one request


class HeldRequests(HttpTransport):
    """An :class:`HttpTransport` whose completion requests each wait for their own gate
    before they are sent, counting how many were on their way at once."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.gates: list[asyncio.Event] = []
        self.batches: list[list[str]] = []
        self.most_on_the_way = 0
        self._on_the_way = 0

    async def complete_and_claim_briefly(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[JobdeskError | None], list[Job]]:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.batches.append([completion.job_id for completion in completions])
        self._on_the_way += 1
        self.most_on_the_way = max(self.most_on_the_way, self._on_the_way)
        try:
            await gate.wait()
            return await super().complete_and_claim_briefly(completions, types, limit)
        finally:
            self._on_the_way -= 1


async def test_a_remote_worker_sends_its_next_completions_while_the_last_are_answered(
    desk: JobDesk, server: str
) -> None:
    registry = Registry()
    second_may_end = asyncio.Event()

    @registry.handler("pair")
    async def pair(ctx: JobContext, payload: dict[str, bool]) -> str:
        if payload["second"]:
            await second_may_end.wait()
        return "done"

    first = await desk.create_job("user-1", "pair", {"second": False})
    second = await desk.create_job("user-1", "pair", {"second": True})
    token = await desk.create_worker_token("remote-1")
    async with HeldRequests.connect(server, token) as transport:
        assert isinstance(transport, HeldRequests)
        worker = WorkerRuntime(registry, transport, concurrency=2, prefetch=0)
        running = asyncio.create_task(worker.run(until_empty=True))
        try:
            await wait_until(lambda: len(transport.gates) == 1)
            second_may_end.set()
            await wait_until(lambda: len(transport.gates) == 2)  # beside the first
            transport.gates[1].set()  # answered first: only the second job is acknowledged
            await wait_until(lambda: worker.outcomes["completed"] == 1)
            assert (await status(desk, second.id)).status is JobStatus.COMPLETED
            assert (await status(desk, first.id)).status is JobStatus.PROCESSING
            transport.gates[0].set()
        finally:
            second_may_end.set()
            for gate in transport.gates:
                gate.set()
            await asyncio.wait_for(running, 30)
    assert transport.batches == [[first.id], [second.id]]
    assert transport.most_on_the_way == 2
    assert worker.outcomes == {"completed": 2}
    assert (await status(desk, first.id)).status is JobStatus.COMPLETED


async def test_progress_from_a_remote_worker_reaches_the_users_event_stream(
    desk: JobDesk, server: str
) -> None:
    registry = Registry()
    seen_half = asyncio.Event()

    @registry.handler("steps")
    async def steps(ctx: JobContext, payload: None) -> str:
        await ctx.progress(50, "step 1 of 2")
        await asyncio.wait_for(seen_half.wait(), 10)  # the user saw it while it ran
        return "done"

    job = await desk.create_job("user-1", "steps", None)
    user_token = await desk.create_user_token("user-1")
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async with (
            httpx.AsyncClient(base_url=server, headers=bearer(user_token)) as client,
            client.stream("GET", f"/api/v1/jobs/{job.id}/events") as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1]["progress"] == 50:
                        seen_half.set()

    follower = asyncio.create_task(follow())
    async with HttpTransport.connect(server, await desk.create_worker_token("w")) as transport:
        await asyncio.wait_for(WorkerRuntime(registry, transport).run(until_empty=True), 30)
    await asyncio.wait_for(follower, 10)  # the stream ends after the final state

    assert {
        "status": "processing",
        "progress": 50.0,
        "progress_message": "step 1 of 2",
    }.items() <= (next(event for event in events if event["progress"] == 50).items())
    assert events[-1]["status"] == "completed"
    assert events[-1]["progress"] == 100


async def test_failures_retries_and_fails_travel_as_they_do_in_process(
    desk: JobDesk, server: str
) -> None:
    registry = Registry()

    @registry.handler("flaky", max_attempts=3)
    async def flaky(ctx: JobContext, payload: None) -> None:
        raise ValueError("the source was busy")

    @registry.handler("later")
    async def later(ctx: JobContext, payload: None) -> None:
        raise Retry(after=3600, message="rate limited upstream", code="upstream-429")

    @registry.handler("hopeless")
    async def hopeless(ctx: JobContext, payload: None) -> None:
        raise Fail("the episode does not exist", code="not-found", details={"episode": 7})

    flaky_job = await desk.create_job("user-1", "flaky", None)
    later_job = await desk.create_job("user-1", "later", None)
    hopeless_job = await desk.create_job("user-1", "hopeless", None)
    async with HttpTransport.connect(server, await desk.create_worker_token("w")) as transport:
        worker = WorkerRuntime(registry, transport, concurrency=3)
        await asyncio.wait_for(worker.run(until_empty=True), 30)

    flaky_now = await status(desk, flaky_job.id)
    assert flaky_now.status is JobStatus.PENDING  # its backoff is not over in drain mode
    assert flaky_now.error == {"message": "the source was busy", "code": "ValueError"}
    later_now = await status(desk, later_job.id)
    assert later_now.status is JobStatus.PENDING
    assert (later_now.run_at - later_now.updated_at).total_seconds() == pytest.approx(3600)
    assert later_now.error == {"message": "rate limited upstream", "code": "upstream-429"}
    hopeless_now = await status(desk, hopeless_job.id)
    assert hopeless_now.status is JobStatus.FAILED
    assert hopeless_now.attempts_left == 2  # refused for good, attempts left or not
    assert hopeless_now.error == {
        "message": "the episode does not exist",
        "code": "not-found",
        "details": {"episode": 7},
    }


async def test_a_user_cancelling_stops_the_remote_handler(desk: JobDesk, server: str) -> None:
    registry = Registry()
    started = asyncio.Event()
    saw_cancel: list[bool] = []

    @registry.handler("long")
    async def long(ctx: JobContext, payload: None) -> None:
        started.set()
        for step in range(200):
            await ctx.progress(step / 2, f"step {step}")
            if ctx.cancelled:
                saw_cancel.append(True)
                return
            await asyncio.sleep(0.05)

    job = await desk.create_job("user-1", "long", None)
    async with HttpTransport.connect(server, await desk.create_worker_token("w")) as transport:
        worker = WorkerRuntime(registry, transport, cancel_grace=5)
        running = asyncio.create_task(worker.run(until_empty=True))
        await asyncio.wait_for(started.wait(), 10)
        user = bearer(await desk.create_user_token("user-1"))
        async with httpx.AsyncClient(base_url=server, headers=user) as client:
            answer = await client.post(f"/api/v1/jobs/{job.id}/cancel")
        assert answer.status_code == 200, answer.text
        await asyncio.wait_for(running, 30)

    assert saw_cancel == [True]
    final = await status(desk, job.id)
    assert final.status is JobStatus.CANCELLED
    assert final.result is None  # nothing written after the cancel


async def test_stopping_hands_running_jobs_back_unspent(desk: JobDesk, server: str) -> None:
    registry = Registry()
    started = asyncio.Event()

    @registry.handler("stuck")
    async def stuck(ctx: JobContext, payload: None) -> None:
        started.set()
        await asyncio.sleep(3600)

    job = await desk.create_job("user-1", "stuck", None)
    async with HttpTransport.connect(server, await desk.create_worker_token("w")) as transport:
        worker = WorkerRuntime(registry, transport, grace=0)
        running = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        worker.stop()
        await asyncio.wait_for(running, 30)

    back = await status(desk, job.id)
    assert back.status is JobStatus.PENDING
    assert back.attempt == 1
    assert back.attempts_left == back.max_attempts
    assert worker.outcomes == {"released": 1}


async def test_a_remote_worker_whose_token_is_revoked_stops(desk: JobDesk, server: str) -> None:
    registry = Registry()

    @registry.handler("quick")
    async def quick(ctx: JobContext, payload: None) -> None:
        return None

    async with HttpTransport.connect(server, await desk.create_worker_token("w")) as transport:
        worker = WorkerRuntime(registry, transport, poll_interval=0.05, reap_interval=3600)
        running = asyncio.create_task(worker.run())
        await desk.create_job("user-1", "quick", None)
        await wait_until(lambda: worker.outcomes["completed"] == 1)
        await desk.revoke_worker_token("w")
        with pytest.raises(Unauthorized):  # at its next claim, not retried for ever
            await asyncio.wait_for(running, 10)

        # The token check the worker runs beside its reaper says the same.
        with pytest.raises(Unauthorized):
            await transport.verify()


async def test_a_remote_worker_takes_only_its_tokens_types(desk: JobDesk, server: str) -> None:
    registry = Registry()
    for name in ("a", "b"):
        registry.handler(name)(_noop)
    token = await desk.create_worker_token("a-only", types=["a"])
    async with HttpTransport.connect(server, token) as transport:
        assert WorkerRuntime(registry, transport).types == {"a"}
        with pytest.raises(InvalidInput, match="may only take a"):
            WorkerRuntime(registry, transport, types=["b"])


async def _noop(ctx: JobContext, payload: None) -> None:
    return None


async def test_an_idle_remote_worker_wakes_on_the_servers_event_stream(
    desk: JobDesk, server: str
) -> None:
    registry = Registry()
    done = asyncio.Event()

    @registry.handler("ping")
    async def ping(ctx: JobContext, payload: None) -> str:
        done.set()
        return "pong"

    async with HttpTransport.connect(server, await desk.create_worker_token("w")) as transport:
        # With an hour between polls, only a wake-up from the stream can start the job.
        worker = WorkerRuntime(registry, transport, poll_interval=3600)
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.5)  # the worker has claimed once and is idle
        job = await desk.create_job("user-1", "ping", None)
        await asyncio.wait_for(done.wait(), 10)
        await wait_until(lambda: worker.outcomes["completed"] == 1)
        worker.stop()
        await asyncio.wait_for(running, 10)
    assert (await status(desk, job.id)).status is JobStatus.COMPLETED


async def test_the_work_stream_tells_a_worker_only_of_its_tokens_types(
    desk: JobDesk, server: str
) -> None:
    token = await desk.create_worker_token("narrow", types=["mine"])
    async with HttpTransport.connect(server, token) as transport:
        assert transport.token_types == frozenset({"mine"})
        async with transport.changes() as feed:
            assert await feed.next_change(within=10) is RESYNC  # connected: claim what is due
            await desk.create_job("user-1", "theirs", None)
            mine = await desk.create_job("user-1", "mine", None)
            change = await feed.next_change(within=10)
    assert isinstance(change, JobChange)
    assert (change.job_id, change.type, change.status) == (mine.id, "mine", JobStatus.PENDING)
    assert change.user_id == ""  # a worker's stream names no users


async def test_the_work_stream_needs_a_worker_token(desk: JobDesk, server: str) -> None:
    user = bearer(await desk.create_user_token("user-1"))
    async with httpx.AsyncClient(base_url=server) as client:
        assert (await client.get("/api/v1/worker/events")).status_code == 401
        assert (await client.get("/api/v1/worker/events", headers=user)).status_code == 401
        assert (await client.get("/api/v1/worker/me", headers=user)).status_code == 401


async def test_the_servers_refusals_arrive_as_the_cores_errors(desk: JobDesk, server: str) -> None:
    job = await desk.create_job("user-1", "extract", None)
    async with HttpTransport.connect(server, await desk.create_worker_token("w")) as transport:
        [claimed] = await transport.claim(frozenset({"extract"}), 5)
        assert claimed.id == job.id
        assert claimed.attempt == 1
        assert claimed.attempts_left == job.max_attempts - 1

        with pytest.raises(InvalidInput) as refused:
            await transport.report(job.id, 1, 101.0, None)
        assert refused.value.field == "progress"
        with pytest.raises(LeaseLost):
            await transport.report(job.id, 2, 10.0, None)  # not the attempt it holds
        with pytest.raises(JobNotFound) as missing:
            await transport.report("0" * 26, 1, 10.0, None)
        assert missing.value.job_id == "0" * 26
        reply = await transport.report(job.id, 1, None, None)
        assert reply.cancel_requested is False
        assert reply.lease_expires_at is not None

        [completed] = await transport.complete([Completion(job.id, 1, {"ok": True})])
        assert not isinstance(completed, JobdeskError)
        assert completed.status is JobStatus.COMPLETED
        assert completed.result == {"ok": True}
        [again] = await transport.complete([Completion(job.id, 1, None)])
        assert isinstance(again, LeaseLost)  # the outcome of one item, not an exception
        with pytest.raises(LeaseLost):
            await transport.release(job.id, 1)
        assert await transport.reap() == 0  # the server reaps


async def test_large_batches_are_split_to_fit_the_servers_body_limit(
    desk: JobDesk, server: str
) -> None:
    jobs = [await desk.create_job("user-1", "extract", None) for _ in range(6)]
    token = await desk.create_worker_token("w")
    async with HttpTransport.connect(server, token, max_body_bytes=2048) as transport:
        claimed = await transport.claim(frozenset({"extract"}), 6)
        completions = [Completion(job.id, job.attempt, "x" * 500) for job in claimed]
        outcomes = await transport.complete(completions)
    assert [getattr(outcome, "status", outcome) for outcome in outcomes] == (
        [JobStatus.COMPLETED] * 6
    )
    assert {(await status(desk, job.id)).result for job in jobs} == {"x" * 500}


async def test_brief_completions_say_which_held_and_claims_come_in_full(
    desk: JobDesk, server: str
) -> None:
    jobs = [await desk.create_job("user-1", "extract", {"n": n}) for n in range(8)]
    token = await desk.create_worker_token("w")
    async with HttpTransport.connect(server, token, max_body_bytes=2048) as transport:
        first, second = await transport.claim(frozenset({"extract"}), 2)
        outcomes, claimed = await transport.complete_and_claim_briefly(
            [Completion(first.id, 1, "done"), Completion(second.id, 2, "stale")],
            frozenset({"extract"}),
            5,
        )
        assert outcomes[0] is None
        assert isinstance(outcomes[1], LeaseLost)
        assert [job.id for job in claimed] == [job.id for job in jobs[2:7]]
        assert all(job.status is JobStatus.PROCESSING for job in claimed)
        # Too many for one body: split, each part answered without its jobs.
        completions = [Completion(job.id, job.attempt, "x" * 500) for job in claimed]
        assert await transport.complete_briefly(completions) == [None] * 5
    finished = [await status(desk, job.id) for job in jobs]
    assert [job.status for job in finished] == [
        JobStatus.COMPLETED,
        JobStatus.PROCESSING,  # its completion named a stale attempt
        *[JobStatus.COMPLETED] * 5,
        JobStatus.PENDING,
    ]
    assert finished[0].result == "done"
    assert finished[2].result == "x" * 500


class OlderServer:
    """ASGI middleware: the server as it was before ``return_jobs``, which refused the
    field as any unknown one (the app's own 422 for an unknown field, naming it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        unknown = body.replace(b'"return_jobs"', b'"return_jobz"')  # as long: same length
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": unknown, "more_body": False}

        async def named_as_sent(message: Any) -> None:
            if message["type"] == "http.response.body":
                body = message.get("body", b"").replace(b"return_jobz", b"return_jobs")
                message = {**message, "body": body}
            await send(message)

        await self.app(scope, replay, named_as_sent)


async def test_against_an_older_server_completions_bring_their_jobs_back(
    desk: JobDesk, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()

    @registry.handler("extract")
    async def extract(ctx: JobContext, payload: Any) -> str:
        return "done"

    jobs = [await desk.create_job("user-1", "extract", None) for _ in range(5)]
    app = make_app()
    app.add_middleware(OlderServer)
    token = await desk.create_worker_token("w")
    async with served(app) as older, HttpTransport.connect(older, token) as transport:
        worker = WorkerRuntime(registry, transport, concurrency=2)
        await asyncio.wait_for(worker.run(until_empty=True), 30)
        # Refusals still arrive one by one, as the errors they are.
        [again] = await transport.complete_briefly([Completion(jobs[0].id, 1, None)])
        assert isinstance(again, LeaseLost | InvalidTransition)
    assert worker.outcomes == {"completed": 5}
    assert {(await status(desk, job.id)).status for job in jobs} == {JobStatus.COMPLETED}
    fallbacks = [r for r in caplog.records if "does not know return_jobs" in r.getMessage()]
    assert len(fallbacks) == 1  # the first refusal, then never asked again


async def test_connecting_checks_the_url_the_token_and_the_server(
    desk: JobDesk, server: str
) -> None:
    with pytest.raises(InvalidInput, match="server"):
        async with HttpTransport.connect("ftp://example.com", "jdw_x"):
            pass
    with pytest.raises(InvalidInput, match="token"):
        async with HttpTransport.connect(server, " "):
            pass
    with pytest.raises(Unauthorized):
        async with HttpTransport.connect(server, await desk.create_user_token("user-1")):
            pass
    token = await desk.create_worker_token("gone")
    await desk.revoke_worker_token("gone")
    with pytest.raises(Unauthorized, match=r"revoked|unknown|invalid"):
        async with HttpTransport.connect(server, token):
            pass
    with pytest.raises(StoreUnavailable, match="cannot connect") as refused:
        async with HttpTransport.connect("http://127.0.0.1:9", token, request_timeout=2):
            pass
    assert refused.value.outcome_unknown is False  # nothing was sent


def test_every_problem_the_server_sends_maps_back_to_its_error() -> None:
    expected = {
        "invalid-input": InvalidInput,
        "job-not-found": JobNotFound,
        "schedule-not-found": ScheduleNotFound,
        "group-not-found": GroupNotFound,
        "forbidden": Forbidden,
        "rate-limited": RateLimited,
        "unauthorized": Unauthorized,
        "invalid-transition": InvalidTransition,
        "lease-lost": LeaseLost,
        "store-unavailable": StoreUnavailable,
        "internal-error": JobdeskError,
    }
    assert {problem.slug for problem in REGISTRY.values()} == set(expected)
    for slug, error_class in expected.items():
        problem = next(p for p in REGISTRY.values() if p.slug == slug)
        document = {
            "type": problem.uri,
            "detail": "what the server said",
            "errors": [{"field": "progress", "rule": "must be between 0 and 100"}],
            "limit": "daily",
            "allowed": 1000,
            "retry_after": 60,
            "job_status": "completed",
            "action": "cancelled",
        }
        error = error_from_problem(problem.status, document, job_id="J1")
        assert type(error) is error_class, slug
    rate_limited = {
        "type": "urn:jobdesk:problem:rate-limited",
        "limit": "daily",
        "allowed": 5,
        "retry_after": 9,
    }
    limited = error_from_problem(429, rate_limited)
    assert isinstance(limited, RateLimited)
    assert (limited.limit, limited.allowed, limited.retry_after) == ("daily", 5, 9)
    invalid = error_from_problem(422, {"errors": [{"field": "attempt", "rule": "must be >= 1"}]})
    assert isinstance(invalid, InvalidInput)
    assert (invalid.field, invalid.rule) == ("attempt", "must be >= 1")
    for said in (True, False):
        cut = {"type": "urn:jobdesk:problem:store-unavailable", "outcome_unknown": said}
        unavailable = error_from_problem(503, cut)
        assert isinstance(unavailable, StoreUnavailable)
        assert unavailable.outcome_unknown is said
    # not a jobdesk problem: a proxy's answer, by its status
    assert isinstance(error_from_problem(502, {"detail": "Bad Gateway"}), StoreUnavailable)
    assert isinstance(error_from_problem(413, {}), InvalidInput)
