"""SQL injection: hostile strings in every string argument of every public operation.

Each payload is either stored verbatim and read back unchanged, or refused with
``InvalidInput`` (``Unauthorized`` for a token) before it reaches a query; and
afterwards another user's jobs, counts and tokens are exactly as they were.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from jobdesk import Job, JobDesk, JobEvent, JobStatus, UserUsage, Worker, WorkerTokenInfo
from jobdesk.errors import InvalidInput, RateLimited, Unauthorized

T = TypeVar("T")

#: printable payloads: wherever free text or an id is allowed, they must be kept verbatim
PAYLOADS = [
    "'; DROP TABLE jobs; --",
    '" OR 1=1 --',
    "x' UNION SELECT * FROM tokens --",
    "' OR '1'='1",
    "1; DELETE FROM users WHERE 1=1; --",
    "%' OR user_id LIKE '%",
    "Robert'); DROP TABLE job_events;--",
    "*/ OR 1=1 /*",
    "'); UPDATE jobs SET user_id = 'attacker' WHERE ('1'='1",
    "$1; SELECT pg_sleep(30); --",
    "\\'; TRUNCATE jobs; --",
    ":user_id",
    "?",
    "%s%s%s",
    "' || (SELECT hex(secret_hash) FROM tokens LIMIT 1) || '",
    "ユーザー'; DROP TABLE meta; --",
]
#: payloads with control characters: ids may refuse them, JSON must keep them or refuse
CONTROL_PAYLOADS = ["x'\x00; DROP TABLE jobs; --", "a\nb'; --", "\x1b[31m' OR 1=1"]
ALL_PAYLOADS = PAYLOADS + CONTROL_PAYLOADS


@dataclass(frozen=True)
class Look:
    """Everything a bystander has, as seen through the API."""

    jobs: list[Job]
    histories: dict[str, list[JobEvent]]
    usage: UserUsage
    tokens: list[WorkerTokenInfo]


@dataclass(frozen=True)
class Bystander:
    worker_token: str
    user_token: str
    before: Look


async def look(desk: JobDesk) -> Look:
    jobs = (await desk.get_user_jobs("victim", limit=100)).items
    histories = {job.id: await desk.get_job_history(job.id, "victim") for job in jobs}
    tokens = [info for info in await desk.list_worker_tokens() if info.name in {"victim-worker"}]
    return Look(jobs, histories, await desk.get_user_usage("victim"), tokens)


@pytest.fixture
async def bystander(desk: JobDesk) -> Bystander:
    """User "victim" with jobs in several states, a worker token and a user token."""
    worker_token = await desk.create_worker_token("victim-worker", types=["victim.only"])
    victim_worker = await desk.verify_worker_token(worker_token)
    user_token = await desk.create_user_token("victim")
    await desk.set_user_limits("victim", max_running=7, max_daily=70)
    secret = {"card": "4111 1111 1111 1111"}
    jobs = [await desk.create_job("victim", "victim.only", secret, "vp") for _ in range(3)]
    [claimed] = await desk.claim_jobs(victim_worker, limit=1)
    await desk.complete_job(victim_worker, claimed.id, {"ok": 1}, attempt=claimed.attempt)
    await desk.start_job(victim_worker, jobs[1].id)
    return Bystander(worker_token, user_token, await look(desk))


async def assert_untouched(desk: JobDesk, bystander: Bystander) -> None:
    assert await look(desk) == bystander.before
    assert (await desk.verify_worker_token(bystander.worker_token)).name == "victim-worker"
    assert await desk.verify_user_token(bystander.user_token) == "victim"
    assert {job.status for job in bystander.before.jobs} == {
        JobStatus.PENDING,
        JobStatus.PROCESSING,
        JobStatus.COMPLETED,
    }


async def kept_or_refused(call: Callable[[], Awaitable[T]], *fields: str) -> T | None:
    """The call's result, or None when it was refused with InvalidInput on one of ``fields``."""
    try:
        return await call()
    except InvalidInput as exc:
        field = exc.field
    assert field in fields
    return None


async def with_payload(payload: str, check: Awaitable[None]) -> None:
    """Run one payload's checks, naming the payload in any failure."""
    try:
        await check
    except BaseException as exc:
        exc.add_note(f"with payload {payload!r}")
        raise


async def refused(call: Callable[[], Awaitable[object]], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await call()
    assert caught.value.field == field


async def user_project_or_key(desk: JobDesk, bystander: Bystander, payload: str) -> None:
    document = {payload: payload, "list": [payload, {"nested": payload}]}
    job = await kept_or_refused(
        lambda: desk.create_job(payload, "demo", document, payload, idempotency_key=payload),
        "user_id",
        "project_id",
        "idempotency_key",
        "input",
    )
    if job is None:
        assert payload in CONTROL_PAYLOADS  # every printable payload must be accepted
        await refused(lambda: desk.get_user_jobs(payload), "user_id")
        await refused(lambda: desk.get_user_usage(payload), "user_id")
        await refused(lambda: desk.create_user_token(payload), "user_id")
        await assert_untouched(desk, bystander)
        return

    assert (job.user_id, job.project_id, job.idempotency_key) == (payload, payload, payload)
    assert job.input == document
    assert await desk.get_job_status(job.id, payload) == job
    page = await desk.get_user_jobs(payload, project_id=payload, status="pending", type="demo")
    assert page.items == [job]
    again = await desk.create_job(payload, "demo", document, payload, idempotency_key=payload)
    assert again == job
    assert (await desk.get_user_usage(payload)).created_today == 1
    assert [event.status for event in await desk.get_job_history(job.id, payload)] == [
        JobStatus.PENDING
    ]
    await desk.set_user_limits(payload, max_waiting=1)
    with pytest.raises(RateLimited):
        await desk.create_job(payload, "demo", {})
    assert (await desk.cancel_job(job.id, payload)).status is JobStatus.CANCELLED
    assert (await desk.retry_job(job.id, payload)).status is JobStatus.PENDING

    token = await desk.create_user_token(payload)
    assert await desk.verify_user_token(token) == payload
    assert await desk.revoke_user_tokens(payload) == 1
    assert (await desk.get_user_jobs("victim", project_id=payload)).items == []
    await assert_untouched(desk, bystander)


async def workers_reports(
    desk: JobDesk, worker: Worker, bystander: Bystander, payload: str
) -> None:
    failing = await desk.create_job("attacker", "demo", {"n": 1})
    started = await desk.start_job(worker, failing.id)
    progress = await kept_or_refused(
        lambda: desk.update_job_progress(worker, failing.id, 10, payload, attempt=started.attempt),
        "message",
    )
    if progress is not None:
        stored = await desk.get_job_status(failing.id, "attacker")
        assert stored.progress_message == payload
    error = {"message": payload, "code": payload, "details": {payload: [payload]}}
    failed = await kept_or_refused(
        lambda: desk.fail_job(worker, failing.id, error, retryable=False, attempt=1),
        "error",
        "error.message",
        "error.code",
        "error.details",
    )
    if failed is not None:
        assert failed.error == error
        assert (await desk.get_job_status(failing.id, "attacker")).error == error
        history = await desk.get_job_history(failing.id, "attacker")
        assert history[-1].error == error

    completing = await desk.create_job("attacker", "demo", {"n": 2})
    started = await desk.start_job(worker, completing.id)
    result = {payload: [payload, {"deeper": payload}], "plain": payload}
    done = await kept_or_refused(
        lambda: desk.complete_job(worker, completing.id, result, attempt=started.attempt),
        "result",
    )
    if done is not None:
        assert (await desk.get_job_status(completing.id, "attacker")).result == result
    if payload in PAYLOADS:
        assert None not in (progress, failed, done)
    await assert_untouched(desk, bystander)


async def type_status_id_or_cursor(
    desk: JobDesk, worker: Worker, bystander: Bystander, payload: str
) -> None:
    job = await desk.create_job("attacker", "demo", {})
    hostile: Any = payload  # the payload in places whose annotations want other types
    await refused(lambda: desk.create_job("attacker", payload, {}), "type")
    await refused(lambda: desk.get_user_jobs("attacker", type=payload), "type")
    await refused(lambda: desk.get_user_jobs("attacker", type=[payload]), "type")
    await refused(lambda: desk.get_user_jobs("attacker", status=payload), "status")
    await refused(lambda: desk.get_user_jobs("attacker", status=["pending", payload]), "status")
    await refused(lambda: desk.get_user_jobs("attacker", cursor=payload), "cursor")
    await refused(lambda: desk.get_user_jobs("victim", cursor=payload), "cursor")
    await refused(lambda: desk.get_pending_jobs(worker, types=payload), "types")
    await refused(lambda: desk.claim_jobs(worker, types=[payload]), "types")
    await refused(lambda: desk.create_worker_token("typed", types=[payload]), "types")
    await refused(lambda: desk.get_job_status(payload, "attacker"), "job_id")
    await refused(lambda: desk.get_job_history(payload, "victim"), "job_id")
    await refused(lambda: desk.cancel_job(payload, "victim"), "job_id")
    await refused(lambda: desk.retry_job(payload, "attacker"), "job_id")
    await refused(lambda: desk.start_job(worker, payload), "job_id")
    await refused(lambda: desk.update_job_progress(worker, payload, 1, attempt=1), "job_id")
    await refused(lambda: desk.heartbeat_job(worker, payload, attempt=1), "job_id")
    await refused(lambda: desk.complete_job(worker, payload, None, attempt=1), "job_id")
    await refused(lambda: desk.fail_job(worker, payload, "x", attempt=1), "job_id")
    await refused(lambda: desk.get_job_status(job.id + payload, "attacker"), "job_id")
    await refused(lambda: desk.update_job_progress(worker, job.id, hostile, attempt=1), "progress")
    await refused(lambda: desk.heartbeat_job(worker, job.id, attempt=hostile), "attempt")
    await refused(lambda: desk.create_job("attacker", "demo", {}, priority=hostile), "priority")
    await refused(lambda: desk.set_user_limits("attacker", max_running=hostile), "max_running")
    await refused(lambda: desk.get_user_jobs("attacker", limit=hostile), "limit")
    await refused(lambda: desk.create_job("attacker", "demo", {}, run_at=hostile), "run_at")
    with pytest.raises(Unauthorized):
        await desk.verify_worker_token(payload)
    with pytest.raises(Unauthorized):
        await desk.verify_user_token(payload)
    with pytest.raises(Unauthorized):
        await desk.verify_worker_token("jdw_" + payload)
    assert (await desk.get_job_status(job.id, "attacker")) == job
    await desk.cancel_job(job.id, "attacker")  # keep the next payload within the active limit
    await assert_untouched(desk, bystander)


async def token_name(desk: JobDesk, bystander: Bystander, payload: str) -> None:
    token = await kept_or_refused(lambda: desk.create_worker_token(payload), "name")
    if token is None:
        await refused(lambda: desk.revoke_worker_token(payload), "name")
    else:
        assert (await desk.verify_worker_token(token)).name == payload
        assert payload in {info.name for info in await desk.list_worker_tokens()}
        assert await desk.revoke_worker_token(payload) == 1
    await refused(lambda: desk.revoke_worker_token("victim-worker' OR '1'='1"), "name")
    await assert_untouched(desk, bystander)


async def test_a_payload_as_user_project_or_key_is_kept_verbatim(
    desk: JobDesk, bystander: Bystander
) -> None:
    for payload in ALL_PAYLOADS:
        await with_payload(payload, user_project_or_key(desk, bystander, payload))


async def test_a_payload_in_a_workers_reports_is_kept_verbatim(
    desk: JobDesk, worker: Worker, bystander: Bystander
) -> None:
    for payload in ALL_PAYLOADS:
        await with_payload(payload, workers_reports(desk, worker, bystander, payload))


async def test_a_payload_where_a_type_status_id_or_cursor_is_expected_is_refused(
    desk: JobDesk, worker: Worker, bystander: Bystander
) -> None:
    for payload in ALL_PAYLOADS:
        await with_payload(payload, type_status_id_or_cursor(desk, worker, bystander, payload))


async def test_a_payload_as_a_token_name_is_kept_verbatim_or_refused(
    desk: JobDesk, bystander: Bystander
) -> None:
    for payload in ALL_PAYLOADS:
        await with_payload(payload, token_name(desk, bystander, payload))
