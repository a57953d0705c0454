"""Worker routes over HTTP: a remote worker with nothing but a worker token."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from jobdesk import JobDesk
from jobdesk.changes import JobChange
from jobdesk.models import JobStatus
from jobdesk.testing import ManualClock
from tests.acceptance.conftest import Api, MakeApp, bearer, running
from tests.acceptance.test_http_jobs import assert_problem

WORKER = "/api/v1/worker/jobs"


async def test_a_remote_worker_claims_reports_and_completes(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("gpu-1")
    low = await api.create(alice, priority=0)
    high = await api.create(alice, priority=10)

    pending = await api.client.get(f"{WORKER}/pending", params={"limit": 5}, headers=worker)
    assert [job["id"] for job in pending.json()] == [high["id"], low["id"]]

    claim = await api.client.post(f"{WORKER}/claim", json={"limit": 1}, headers=worker)
    [job] = claim.json()
    assert (job["id"], job["status"], job["attempt"], job["worker_id"]) == (
        high["id"],
        "processing",
        1,
        "gpu-1",
    )
    assert job["input"] == high["input"]

    progress = await api.client.post(
        f"{WORKER}/{job['id']}/progress",
        json={"progress": 40, "message": "2 of 5 episodes", "attempt": 1},
        headers=worker,
    )
    assert progress.status_code == 200
    assert progress.json()["cancel_requested"] is False
    assert progress.json()["lease_expires_at"] == "2026-03-01T12:05:00Z"
    heartbeat = await api.client.post(
        f"{WORKER}/{job['id']}/heartbeat", json={"attempt": 1}, headers=worker
    )
    assert heartbeat.json()["cancel_requested"] is False

    seen = (await api.client.get(f"/api/v1/jobs/{job['id']}", headers=alice)).json()
    assert (seen["progress"], seen["progress_message"]) == (40.0, "2 of 5 episodes")

    done = await api.client.post(
        f"{WORKER}/{job['id']}/complete",
        json={"result": {"characters": ["Ada"]}, "attempt": 1},
        headers=worker,
    )
    assert done.json()["status"] == "completed"
    final = (await api.client.get(f"/api/v1/jobs/{job['id']}", headers=alice)).json()
    assert final["result"] == {"characters": ["Ada"]}
    assert final["progress"] == 100.0


async def test_start_picks_one_job_and_refuses_a_started_one(api: Api, clock: ManualClock) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice)
    started = await api.client.post(f"{WORKER}/{job['id']}/start", headers=worker)
    assert started.json()["status"] == "processing"
    again = await api.client.post(f"{WORKER}/{job['id']}/start", headers=worker)
    assert assert_problem(again, 409, "invalid-transition")["job_status"] == "processing"

    later = await api.create(alice, run_at=(clock() + timedelta(hours=1)).isoformat())
    not_due = await api.client.post(f"{WORKER}/{later['id']}/start", headers=worker)
    assert "not due until" in assert_problem(not_due, 409, "invalid-transition")["detail"]


async def test_a_cancel_reaches_the_worker_and_fences_its_writes(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice)
    await api.client.post(f"{WORKER}/claim", json={}, headers=worker)
    await api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice)

    reply = await api.client.post(
        f"{WORKER}/{job['id']}/progress", json={"progress": 50, "attempt": 1}, headers=worker
    )
    assert reply.json() == {"cancel_requested": True, "lease_expires_at": None}
    late = await api.client.post(
        f"{WORKER}/{job['id']}/complete", json={"result": 1, "attempt": 1}, headers=worker
    )
    assert "cancelled" in assert_problem(late, 409, "lease-lost")["detail"]
    assert (await api.desk.get_job_status(job["id"], "alice")).status is JobStatus.CANCELLED


async def test_a_stale_attempt_is_409_lease_lost(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice)
    await api.client.post(f"{WORKER}/claim", json={}, headers=worker)
    released = await api.client.post(
        f"{WORKER}/{job['id']}/release", json={"attempt": 1}, headers=worker
    )
    assert released.json()["status"] == "pending"
    [second] = (await api.client.post(f"{WORKER}/claim", json={}, headers=worker)).json()
    assert second["attempt"] == 2
    stale = await api.client.post(
        f"{WORKER}/{job['id']}/complete", json={"result": "old", "attempt": 1}, headers=worker
    )
    assert "attempt 1" in assert_problem(stale, 409, "lease-lost")["detail"]
    assert (await api.desk.get_job_status(job["id"], "alice")).status is JobStatus.PROCESSING


async def test_a_retryable_failure_backs_off_until_attempts_run_out(
    api: Api, clock: ManualClock
) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice, max_attempts=2)
    await api.client.post(f"{WORKER}/claim", json={}, headers=worker)
    retrying = await api.client.post(
        f"{WORKER}/{job['id']}/fail",
        json={"error": {"message": "GPU out of memory", "code": "oom"}, "attempt": 1},
        headers=worker,
    )
    assert retrying.json()["status"] == "pending"
    assert retrying.json()["error"] == {"message": "GPU out of memory", "code": "oom"}
    assert retrying.json()["run_at"] > retrying.json()["updated_at"]
    too_soon = await api.client.post(f"{WORKER}/{job['id']}/start", headers=worker)
    assert_problem(too_soon, 409, "invalid-transition")

    clock.advance(seconds=60)
    second = await api.client.post(f"{WORKER}/{job['id']}/start", headers=worker)
    assert second.json()["attempt"] == 2
    final = await api.client.post(
        f"{WORKER}/{job['id']}/fail", json={"error": "again", "attempt": 2}, headers=worker
    )
    assert final.json()["status"] == "failed"
    assert final.json()["attempts_left"] == 0


async def test_a_worker_may_choose_the_delay_before_the_next_attempt(
    api: Api, clock: ManualClock
) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice)
    await api.client.post(f"{WORKER}/claim", json={}, headers=worker)
    later = await api.client.post(
        f"{WORKER}/{job['id']}/fail",
        json={"error": "rate limited upstream", "retry_after": 90, "attempt": 1},
        headers=worker,
    )
    assert later.json()["status"] == "pending"
    assert later.json()["run_at"] == (clock() + timedelta(seconds=90)).isoformat().replace(
        "+00:00", "Z"
    )
    too_long = await api.client.post(
        f"{WORKER}/{job['id']}/fail",
        json={"error": "x", "retry_after": 10**9, "attempt": 1},
        headers=worker,
    )
    assert assert_problem(too_long, 422)["errors"][0]["field"] == "retry_after"


async def test_a_non_retryable_failure_is_final_and_the_user_can_retry(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice)
    await api.client.post(f"{WORKER}/claim", json={}, headers=worker)
    failed = await api.client.post(
        f"{WORKER}/{job['id']}/fail",
        json={"error": "bad input file", "retryable": False, "attempt": 1},
        headers=worker,
    )
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"] == {"message": "bad input file"}
    retried = await api.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=alice)
    assert retried.json()["status"] == "pending"
    [again] = (await api.client.post(f"{WORKER}/claim", json={}, headers=worker)).json()
    assert again["attempt"] == 2


async def test_batch_completion_reports_each_outcome(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    jobs = [await api.create(alice) for _ in range(2)]
    claimed = (await api.client.post(f"{WORKER}/claim", json={"limit": 2}, headers=worker)).json()
    assert {job["id"] for job in claimed} == {job["id"] for job in jobs}
    response = await api.client.post(
        f"{WORKER}/complete",
        json={
            "completions": [
                {"job_id": claimed[0]["id"], "attempt": 1, "result": {"n": 0}},
                {"job_id": claimed[1]["id"], "attempt": 9, "result": {"n": 1}},
            ]
        },
        headers=worker,
    )
    first, second = response.json()["outcomes"]
    assert first["job"]["status"] == "completed"
    assert first["problem"] is None
    assert second["job"] is None
    assert second["problem"]["type"] == "urn:jobdesk:problem:lease-lost"
    assert second["problem"]["status"] == 409


async def test_a_cycle_completes_and_claims_in_one_request(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    other = await api.worker("w2")
    jobs = [await api.create(alice) for _ in range(3)]
    [first] = (await api.client.post(f"{WORKER}/claim", json={}, headers=worker)).json()
    [theirs] = (await api.client.post(f"{WORKER}/claim", json={}, headers=other)).json()
    response = await api.client.post(
        f"{WORKER}/complete-and-claim",
        json={
            "completions": [
                {"job_id": first["id"], "attempt": 1, "result": {"n": 0}},
                {"job_id": theirs["id"], "attempt": 1, "result": "not mine"},
            ],
            "limit": 5,
        },
        headers=worker,
    )
    assert response.status_code == 200
    body = response.json()
    done, refused = body["outcomes"]
    assert (done["job"]["status"], done["job"]["result"]) == ("completed", {"n": 0})
    assert refused["problem"]["type"] == "urn:jobdesk:problem:lease-lost"
    assert [job["id"] for job in body["claimed"]] == [jobs[2]["id"]]
    assert body["claimed"][0]["worker_id"] == "w1"
    seen = (await api.client.get(f"/api/v1/jobs/{theirs['id']}", headers=alice)).json()
    assert seen["status"] == "processing"

    nothing = await api.client.post(
        f"{WORKER}/complete-and-claim", json={"completions": [], "limit": 0}, headers=worker
    )
    assert assert_problem(nothing, 422)["errors"][0]["field"] == "limit"
    stranger = await api.client.post(
        f"{WORKER}/complete-and-claim", json={"limit": 1}, headers=alice
    )
    assert_problem(stranger, 401, "unauthorized")


async def test_completions_may_be_answered_without_their_jobs(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    jobs = [await api.create(alice) for _ in range(4)]
    claimed = (await api.client.post(f"{WORKER}/claim", json={"limit": 2}, headers=worker)).json()
    response = await api.client.post(
        f"{WORKER}/complete-and-claim",
        json={
            "completions": [
                {"job_id": claimed[0]["id"], "attempt": 1, "result": {"n": 0}},
                {"job_id": claimed[1]["id"], "attempt": 9, "result": {"n": 1}},
            ],
            "limit": 1,
            "return_jobs": False,
        },
        headers=worker,
    )
    assert response.status_code == 200
    body = response.json()
    done, refused = body["outcomes"]
    assert done == {"job": None, "problem": None}  # no problem: it completed
    assert refused["job"] is None
    assert refused["problem"]["type"] == "urn:jobdesk:problem:lease-lost"
    assert [job["id"] for job in body["claimed"]] == [jobs[2]["id"]]  # claims come in full
    assert body["claimed"][0]["status"] == "processing"
    seen = (await api.client.get(f"/api/v1/jobs/{claimed[0]['id']}", headers=alice)).json()
    assert (seen["status"], seen["result"]) == ("completed", {"n": 0})

    response = await api.client.post(
        f"{WORKER}/complete",
        json={
            "completions": [{"job_id": jobs[2]["id"], "attempt": 1, "result": None}],
            "return_jobs": False,
        },
        headers=worker,
    )
    assert response.json() == {"outcomes": [{"job": None, "problem": None}]}
    seen = (await api.client.get(f"/api/v1/jobs/{jobs[2]['id']}", headers=alice)).json()
    assert seen["status"] == "completed"


async def test_worker_bodies_are_checked_naming_the_field(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice)
    await api.client.post(f"{WORKER}/claim", json={}, headers=worker)
    cases = [
        ({"progress": 150, "attempt": 1}, "progress", "between 0 and 100"),
        ({"progress": "half", "attempt": 1}, "progress", "valid number"),
        ({"progress": 10}, "attempt", "Field required"),
        ({"progress": 10, "attempt": 1, "status": "completed"}, "status", "Extra inputs"),
        ({"progress": 10, "attempt": 0}, "attempt", "between 1 and"),
        ({"progress": 10, "attempt": 1, "message": "x" * 1001}, "message", "at most 1000"),
    ]
    for body, field, rule in cases:
        response = await api.client.post(
            f"{WORKER}/{job['id']}/progress", json=body, headers=worker
        )
        problem = assert_problem(response, 422, "invalid-input")
        assert problem["errors"][0]["field"] == field, problem
        assert rule in problem["errors"][0]["rule"], problem
    bad_error = await api.client.post(
        f"{WORKER}/{job['id']}/fail",
        json={"error": {"message": "x", "status": "completed"}, "attempt": 1},
        headers=worker,
    )
    assert assert_problem(bad_error, 422)["errors"][0]["field"].startswith("error")
    bad_claim = await api.client.post(f"{WORKER}/claim", json={"limit": 0}, headers=worker)
    assert assert_problem(bad_claim, 422)["errors"][0]["field"] == "limit"


async def test_the_server_returns_expired_leases_to_the_queue(
    desk: JobDesk, make_app: MakeApp, clock: ManualClock
) -> None:
    worker = bearer(await desk.create_worker_token("w1"))
    job = await desk.create_job("alice", "extract", {})
    async with desk.subscribe() as changes, running(make_app(reap_interval_seconds=0.05)) as client:
        await client.post(f"{WORKER}/claim", json={}, headers=worker)
        clock.advance(seconds=301)
        async with asyncio.timeout(10):
            async for change in changes:
                if (
                    isinstance(change, JobChange)
                    and change.job_id == job.id
                    and change.status is JobStatus.PENDING
                ):
                    break
    requeued = await desk.get_job_status(job.id, "alice")
    assert requeued.error is not None
    assert requeued.error["code"] == "lease_expired"


async def test_a_snoozed_job_waits_then_runs_without_spending_its_attempt(
    api: Api, clock: ManualClock
) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice)
    await api.client.post(f"{WORKER}/claim", json={}, headers=worker)
    snoozed = await api.client.post(
        f"{WORKER}/{job['id']}/snooze", json={"attempt": 1, "delay": 60}, headers=worker
    )
    assert snoozed.status_code == 200, snoozed.text
    assert (snoozed.json()["status"], snoozed.json()["error"]) == ("pending", None)
    waiting = (await api.client.get(f"/api/v1/jobs/{job['id']}", headers=alice)).json()
    assert waiting["waiting"]["reason"] == "scheduled"
    assert (await api.client.post(f"{WORKER}/claim", json={}, headers=worker)).json() == []

    clock.advance(61)
    [again] = (await api.client.post(f"{WORKER}/claim", json={}, headers=worker)).json()
    assert again["id"] == job["id"]
    assert again["attempts_left"] == again["max_attempts"] - 1  # the snooze spent none
