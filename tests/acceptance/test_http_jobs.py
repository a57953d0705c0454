"""User routes over HTTP: create, list, get, cancel, retry, history, usage; on each store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from jobdesk.testing import ManualClock
from tests.acceptance.conftest import Api

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, problem: str | None = None) -> Any:
    """``response`` is an RFC 9457 problem with ``status`` (and ``type`` ending in ``problem``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "detail", "request_id"} <= set(body)
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    if problem is not None:
        assert body["type"] == f"urn:jobdesk:problem:{problem}"
    return body


async def test_create_answers_201_with_the_job_and_utc_times(api: Api, clock: ManualClock) -> None:
    alice = await api.user("alice")
    response = await api.client.post(
        "/api/v1/jobs",
        json={
            "type": "extract",
            "input": {"episode_ids": ["ep-1"]},
            "project_id": "proj-1",
            "priority": 5,
            "run_at": "2026-03-01T14:00:00+01:00",
        },
        headers=alice,
    )
    assert response.status_code == 201
    job = response.json()
    assert job["status"] == "pending"
    assert job["user_id"] == "alice"
    assert job["project_id"] == "proj-1"
    assert job["priority"] == 5
    assert job["input"] == {"episode_ids": ["ep-1"]}
    assert job["attempt"] == 0
    assert job["attempts_left"] == 3
    assert job["created_at"] == "2026-03-01T12:00:00Z"
    assert job["run_at"] == "2026-03-01T13:00:00Z"
    assert len(job["id"]) == 26
    fetched = await api.client.get(f"/api/v1/jobs/{job['id']}", headers=alice)
    assert fetched.status_code == 200
    # Created with a run_at ahead, it says so: its owner's read explains the wait.
    scheduled = {"reason": "scheduled", "until": job["run_at"]}
    assert fetched.json() == {
        **job,
        "waiting": {**scheduled, "running": None, "limit": None, "ahead": None},
    }


async def test_idempotency_key_header_and_field_return_the_first_job(api: Api) -> None:
    alice = await api.user("alice")
    body = {"type": "extract", "input": {"n": 1}}
    first = await api.client.post(
        "/api/v1/jobs", json=body, headers={**alice, "Idempotency-Key": "order-1"}
    )
    again = await api.client.post(
        "/api/v1/jobs", json={**body, "idempotency_key": "order-1"}, headers=alice
    )
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["idempotency_key"] == "order-1"
    usage = (await api.client.get("/api/v1/usage", headers=alice)).json()
    assert usage["created_today"] == 1

    reused = await api.client.post(
        "/api/v1/jobs",
        json={**body, "input": {"n": 2}},
        headers={**alice, "Idempotency-Key": "order-1"},
    )
    assert assert_problem(reused, 422, "invalid-input")["errors"][0]["field"] == "idempotency_key"
    mismatch = await api.client.post(
        "/api/v1/jobs",
        json={**body, "idempotency_key": "a"},
        headers={**alice, "Idempotency-Key": "b"},
    )
    assert assert_problem(mismatch, 422)["errors"][0]["field"] == "idempotency_key"


async def test_unknown_fields_are_refused_so_nothing_can_be_mass_assigned(api: Api) -> None:
    alice = await api.user("alice")
    for field, value in [("status", "completed"), ("user_id", "bob"), ("attempt", 7)]:
        response = await api.client.post(
            "/api/v1/jobs", json={"type": "extract", "input": {}, field: value}, headers=alice
        )
        body = assert_problem(response, 422, "invalid-input")
        assert body["errors"] == [{"field": field, "rule": "Extra inputs are not permitted"}]
    listed = await api.client.get("/api/v1/jobs", headers=alice)
    assert listed.json()["items"] == []


async def test_invalid_input_is_422_naming_the_field_and_the_rule(api: Api) -> None:
    alice = await api.user("alice")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"type": "Not A Type", "input": {}}, "type", "must match [a-z0-9_.-]{1,64}"),
        ({"type": "extract", "input": {}, "priority": "high"}, "priority", "valid integer"),
        ({"type": "extract", "input": {}, "priority": 5000}, "priority", "between -1000 and 1000"),
        ({"type": "extract", "input": {}, "run_at": "2026-03-01T12:00:00"}, "run_at", "timezone"),
        ({"type": "extract", "input": {"a": "\u0000"}}, "input", "NUL"),
        ({"type": "extract"}, "input", "Field required"),
        ({"type": "extract", "input": {}, "max_attempts": 0}, "max_attempts", "between 1 and"),
    ]
    for body, field, rule in cases:
        response = await api.client.post("/api/v1/jobs", json=body, headers=alice)
        problem = assert_problem(response, 422, "invalid-input")
        assert problem["errors"][0]["field"] == field, problem
        assert rule in problem["errors"][0]["rule"], problem
        assert field in problem["detail"]
    broken = await api.client.post(
        "/api/v1/jobs", content=b'{"type": ', headers={**alice, "Content-Type": "application/json"}
    )
    problem = assert_problem(broken, 422, "invalid-input")
    assert problem["errors"][0]["field"] == "body"
    assert "valid JSON" in problem["errors"][0]["rule"]
    bad_id = await api.client.get("/api/v1/jobs/not-a-job-id", headers=alice)
    assert assert_problem(bad_id, 422)["errors"][0]["field"] == "job_id"
    bad_limit = await api.client.get("/api/v1/jobs?limit=1000", headers=alice)
    assert assert_problem(bad_limit, 422)["errors"][0] == {
        "field": "limit",
        "rule": "must be between 1 and 100",
    }


async def test_listing_filters_and_pages_with_the_cursor(api: Api) -> None:
    alice = await api.user("alice")
    created = [
        await api.create(alice, type="extract" if n % 2 else "render", project_id=f"p{n % 3}")
        for n in range(7)
    ]
    cancelled = await api.client.post(f"/api/v1/jobs/{created[0]['id']}/cancel", headers=alice)
    assert cancelled.json()["status"] == "cancelled"

    everything = await api.client.get("/api/v1/jobs", headers=alice)
    assert [job["id"] for job in everything.json()["items"]] == [
        job["id"] for job in reversed(created)
    ]
    assert everything.json()["next_cursor"] is None

    active = await api.client.get(
        "/api/v1/jobs", params={"status": ["pending", "processing"]}, headers=alice
    )
    assert len(active.json()["items"]) == 6
    renders = await api.client.get(
        "/api/v1/jobs", params={"type": "render", "project_id": "p0"}, headers=alice
    )
    assert {(job["type"], job["project_id"]) for job in renders.json()["items"]} == {
        ("render", "p0")
    }

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await api.client.get("/api/v1/jobs", params=params, headers=alice)).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [job["id"] for job in reversed(created)]


async def test_cancel_retry_and_history(api: Api) -> None:
    alice = await api.user("alice")
    job = await api.create(alice)
    cancelled = await api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice)
    assert again.json()["status"] == "cancelled"

    retried = await api.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=alice)
    assert retried.status_code == 200
    assert retried.json()["status"] == "pending"
    not_retryable = await api.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=alice)
    body = assert_problem(not_retryable, 409, "invalid-transition")
    assert body["job_status"] == "pending"

    history = await api.client.get(f"/api/v1/jobs/{job['id']}/history", headers=alice)
    assert [event["status"] for event in history.json()] == ["pending", "cancelled", "pending"]


async def test_cancelling_a_completed_job_is_409(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    job = await api.create(alice)
    [claimed] = (await api.client.post("/api/v1/worker/jobs/claim", json={}, headers=worker)).json()
    done = await api.client.post(
        f"/api/v1/worker/jobs/{job['id']}/complete",
        json={"attempt": claimed["attempt"], "result": {"ok": True}},
        headers=worker,
    )
    assert done.json()["status"] == "completed"
    refused = await api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice)
    assert assert_problem(refused, 409, "invalid-transition")["action"] == "cancelled"


async def test_waiting_limit_is_429_with_a_retry_after_hint(api: Api) -> None:
    alice = await api.user("alice")
    await api.desk.set_user_limits("alice", max_waiting=2)
    for _ in range(2):
        await api.create(alice)
    refused = await api.client.post(
        "/api/v1/jobs", json={"type": "extract", "input": {}}, headers=alice
    )
    body = assert_problem(refused, 429, "rate-limited")
    assert body["limit"] == "waiting"
    assert body["allowed"] == 2
    assert refused.headers["retry-after"] == "5"


async def test_daily_limit_is_429_with_seconds_until_midnight(api: Api, clock: ManualClock) -> None:
    alice = await api.user("alice")
    await api.desk.set_user_limits("alice", max_daily=1)
    await api.create(alice)
    refused = await api.client.post(
        "/api/v1/jobs", json={"type": "extract", "input": {}}, headers=alice
    )
    body = assert_problem(refused, 429, "rate-limited")
    assert body["limit"] == "daily"
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    assert int(refused.headers["retry-after"]) == (midnight - clock()) // timedelta(seconds=1)
    assert body["retry_after"] == int(refused.headers["retry-after"])


async def test_a_batch_creates_every_job_or_none(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    response = await api.client.post(
        "/api/v1/jobs/batch",
        json={
            "jobs": [
                {"type": "extract", "input": {"episode_ids": ["ep-1"]}},
                {"type": "extract", "input": {"episode_ids": ["ep-2"]}, "priority": 3},
            ]
        },
        headers=alice,
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert [(job["input"]["episode_ids"], job["priority"]) for job in made] == [
        (["ep-1"], 0),
        (["ep-2"], 3),
    ]
    assert all(job["user_id"] == "alice" and job["status"] == "pending" for job in made)
    for job in made:
        assert (await api.client.get(f"/api/v1/jobs/{job['id']}", headers=bob)).status_code == 404

    await api.desk.set_user_limits("alice", max_waiting=10)
    too_many = await api.client.post(
        "/api/v1/jobs/batch",
        json={"jobs": [{"type": "extract", "input": {"n": n}} for n in range(9)]},
        headers=alice,
    )
    body = assert_problem(too_many, 429, "rate-limited")
    assert (body["limit"], body["allowed"]) == ("waiting", 10)
    bad = await api.client.post(
        "/api/v1/jobs/batch",
        json={"jobs": [{"type": "extract", "input": {}}, {"type": "has space", "input": {}}]},
        headers=alice,
    )
    assert assert_problem(bad, 422)["errors"][0]["field"].startswith("jobs")
    empty = await api.client.post("/api/v1/jobs/batch", json={"jobs": []}, headers=alice)
    assert_problem(empty, 422)
    keyed = await api.client.post(
        "/api/v1/jobs/batch",
        json={"jobs": [{"type": "extract", "input": {}, "idempotency_key": "k"}]},
        headers=alice,
    )
    assert_problem(keyed, 422)  # idempotency keys are for one job at a time
    page = (await api.client.get("/api/v1/jobs", headers=alice)).json()
    assert len(page["items"]) == 2


async def test_usage_reports_the_callers_limits(api: Api) -> None:
    alice = await api.user("alice")
    await api.create(alice)
    usage = await api.client.get("/api/v1/usage", headers=alice)
    assert usage.json() == {
        "user_id": "alice",
        "running": 0,
        "max_running": 10,
        "waiting": 1,
        "max_waiting": 1000,
        "created_today": 1,
        "max_daily": 1000,
        "resets_at": "2026-03-02T00:00:00Z",
        "weight": 1.0,
        "active": 1,
    }


async def test_a_lone_surrogate_in_the_input_is_422_not_500(api: Api) -> None:
    alice = await api.user("alice")
    response = await api.client.post(
        "/api/v1/jobs",
        content=b'{"type": "extract", "input": {"text": "\\ud800"}}',
        headers={**alice, "Content-Type": "application/json"},
    )
    assert assert_problem(response, 422, "invalid-input")["errors"][0]["field"] == "input"
