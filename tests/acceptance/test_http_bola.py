"""The BOLA matrix: every route that takes a job id, called with another principal's job.

Two users and two workers. A user asking for another user's job gets exactly the
404 of a job that does not exist; a worker writing to a job another worker holds
is fenced off (409). Either way nothing changes: the job and its history are the
same afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from jobdesk.ids import new_job_id
from jobdesk.models import Job, JobEvent
from tests.acceptance.conftest import Api
from tests.acceptance.test_http_jobs import assert_problem

USER_ROUTES = [
    ("GET", "/api/v1/jobs/{id}"),
    ("POST", "/api/v1/jobs/{id}/cancel"),
    ("POST", "/api/v1/jobs/{id}/retry"),
    ("GET", "/api/v1/jobs/{id}/history"),
    ("GET", "/api/v1/jobs/{id}/events"),
]
WORKER_ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("POST", "/api/v1/worker/jobs/{id}/start", None, "invalid-transition"),
    ("POST", "/api/v1/worker/jobs/{id}/progress", {"progress": 99, "attempt": 1}, "lease-lost"),
    ("POST", "/api/v1/worker/jobs/{id}/heartbeat", {"attempt": 1}, "lease-lost"),
    ("POST", "/api/v1/worker/jobs/{id}/complete", {"result": "x", "attempt": 1}, "lease-lost"),
    ("POST", "/api/v1/worker/jobs/{id}/fail", {"error": "x", "attempt": 1}, "lease-lost"),
    ("POST", "/api/v1/worker/jobs/{id}/release", {"attempt": 1}, "lease-lost"),
]


@dataclass
class World:
    """Alice's jobs in every status, and the tokens of everyone."""

    alice: dict[str, str]
    bob: dict[str, str]
    first_worker: dict[str, str]
    second_worker: dict[str, str]
    jobs: dict[str, str]  # status -> job id, all Alice's


async def world(api: Api) -> World:
    alice, bob = await api.user("alice"), await api.user("bob")
    first, second = await api.worker("w1"), await api.worker("w2")
    jobs: dict[str, str] = {}
    for status in ("completed", "failed", "processing", "pending", "cancelled"):
        job = await api.create(alice)
        jobs[status] = job["id"]
        if status == "cancelled":
            await api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice)
            continue
        if status == "pending":
            continue
        claimed = await api.client.post(f"/api/v1/worker/jobs/{job['id']}/start", headers=first)
        assert claimed.status_code == 200
        if status == "completed":
            await api.client.post(
                f"/api/v1/worker/jobs/{job['id']}/complete", json={"attempt": 1}, headers=first
            )
        elif status == "failed":
            await api.client.post(
                f"/api/v1/worker/jobs/{job['id']}/fail",
                json={"error": "no", "retryable": False, "attempt": 1},
                headers=first,
            )
    return World(alice, bob, first, second, jobs)


async def snapshot(api: Api, job_ids: dict[str, str]) -> list[tuple[Job, list[JobEvent]]]:
    return [
        (
            await api.desk.get_job_status(job_id, "alice"),
            await api.desk.get_job_history(job_id, "alice"),
        )
        for job_id in job_ids.values()
    ]


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "request_id"}


@pytest.mark.parametrize(("method", "path"), USER_ROUTES)
async def test_another_users_job_is_indistinguishable_from_no_job(
    api: Api, method: str, path: str
) -> None:
    w = await world(api)
    before = await snapshot(api, w.jobs)
    missing_id = new_job_id()
    missing = await api.client.request(method, path.format(id=missing_id), headers=w.bob)
    expected = without_request_id(assert_problem(missing, 404, "job-not-found"))
    for status, job_id in w.jobs.items():
        response = await api.client.request(method, path.format(id=job_id), headers=w.bob)
        body = without_request_id(assert_problem(response, 404, "job-not-found"))
        assert body == {**expected, "detail": expected["detail"].replace(missing_id, job_id)}, (
            status
        )
        assert set(response.headers) == set(missing.headers)
    assert await snapshot(api, w.jobs) == before


@pytest.mark.parametrize(("method", "path", "body", "problem"), WORKER_ROUTES)
async def test_another_workers_job_is_fenced_off(
    api: Api, method: str, path: str, body: dict[str, Any] | None, problem: str
) -> None:
    w = await world(api)
    before = await snapshot(api, w.jobs)
    held = w.jobs["processing"]
    response = await api.client.request(
        method, path.format(id=held), json=body, headers=w.second_worker
    )
    assert_problem(response, 409, problem)
    assert await snapshot(api, w.jobs) == before


async def test_a_batch_cannot_complete_another_workers_job(api: Api) -> None:
    w = await world(api)
    before = await snapshot(api, w.jobs)
    response = await api.client.post(
        "/api/v1/worker/jobs/complete",
        json={"completions": [{"job_id": w.jobs["processing"], "attempt": 1, "result": "x"}]},
        headers=w.second_worker,
    )
    [outcome] = response.json()["outcomes"]
    assert outcome["problem"]["type"] == "urn:jobdesk:problem:lease-lost"
    assert await snapshot(api, w.jobs) == before


async def test_listings_and_cursors_stay_with_their_user(api: Api) -> None:
    w = await world(api)
    assert (await api.client.get("/api/v1/jobs", headers=w.bob)).json() == {
        "items": [],
        "next_cursor": None,
    }
    page = (await api.client.get("/api/v1/jobs?limit=2", headers=w.alice)).json()
    stolen = await api.client.get(
        "/api/v1/jobs", params={"cursor": page["next_cursor"]}, headers=w.bob
    )
    assert assert_problem(stolen, 422)["errors"] == [
        {"field": "cursor", "rule": "was altered or issued for another user"}
    ]


async def test_tokens_of_the_wrong_kind_reach_nothing(api: Api) -> None:
    w = await world(api)
    before = await snapshot(api, w.jobs)
    held = w.jobs["processing"]
    for method, path in USER_ROUTES:
        response = await api.client.request(method, path.format(id=held), headers=w.first_worker)
        assert_problem(response, 401, "unauthorized")
    for method, path, body, _ in WORKER_ROUTES:
        response = await api.client.request(
            method, path.format(id=held), json=body, headers=w.alice
        )
        assert_problem(response, 401, "unauthorized")
    assert await snapshot(api, w.jobs) == before
