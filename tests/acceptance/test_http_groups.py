"""Group routes over HTTP, on each store: create, read, list, cancel, retry and the stream."""

from __future__ import annotations

import httpx

from jobdesk import JobDesk
from jobdesk.testing import ManualClock
from tests.acceptance.conftest import Api, MakeApp, bearer, served
from tests.acceptance.test_http_events import events
from tests.acceptance.test_http_jobs import assert_problem

WORKER = "/api/v1/worker/jobs"


def episodes(count: int) -> list[dict[str, object]]:
    return [{"type": "episode", "input": {"n": n}} for n in range(count)]


async def test_a_group_is_created_read_listed_and_its_jobs_paged(
    api: Api, clock: ManualClock
) -> None:
    alice = await api.user("alice")
    response = await api.client.post(
        "/api/v1/groups",
        json={"jobs": episodes(3), "name": "book", "on_complete": {"type": "merge"}},
        headers=alice,
    )
    assert response.status_code == 201, response.text
    group = response.json()
    assert group["status"] == "pending"
    assert (group["size"], group["progress"], group["name"]) == (3, 0.0, "book")
    assert group["counts"] == {
        "pending": 3,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert group["on_complete"] == {"type": "merge", "input": None}
    assert group["created_at"] == "2026-03-01T12:00:00Z"
    fetched = await api.client.get(f"/api/v1/groups/{group['id']}", headers=alice)
    assert fetched.json() == group
    listed = await api.client.get("/api/v1/groups", params={"limit": 1}, headers=alice)
    assert [item["id"] for item in listed.json()["items"]] == [group["id"]]
    jobs = await api.client.get(
        f"/api/v1/groups/{group['id']}/jobs", params={"offset": 1, "limit": 1}, headers=alice
    )
    assert [job["input"] for job in jobs.json()] == [{"n": 1}]


async def test_another_users_group_is_a_404(api: Api) -> None:
    alice, mallory = await api.user("alice"), await api.user("mallory")
    group = (
        await api.client.post("/api/v1/groups", json={"jobs": episodes(1)}, headers=alice)
    ).json()
    for method, path in [
        ("GET", ""),
        ("GET", "/jobs"),
        ("GET", "/events"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
    ]:
        response = await api.client.request(
            method, f"/api/v1/groups/{group['id']}{path}", headers=mallory
        )
        assert_problem(response, 404, "group-not-found")
    assert (await api.client.get("/api/v1/groups", headers=mallory)).json()["items"] == []


async def test_bad_groups_are_422_naming_the_field_and_nothing_is_written(api: Api) -> None:
    alice = await api.user("alice")
    bad_input = episodes(20)
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    bad_input[17]["input"] = {"deep": deep}
    for body, field in [
        ({"jobs": []}, "jobs"),
        ({"jobs": episodes(10_001)}, "jobs"),
        ({"jobs": bad_input}, "jobs[17].input"),
        ({"jobs": [*episodes(3), {"type": 5, "input": 1}]}, "jobs[3].type"),
        ({"jobs": episodes(1), "name": ""}, "name"),
        ({"jobs": episodes(1), "on_complete": {"type": "Bad Type"}}, "on_complete.type"),
    ]:
        response = await api.client.post("/api/v1/groups", json=body, headers=alice)
        problem = assert_problem(response, 422, "invalid-input")
        assert problem["errors"][0]["field"] == field, problem
    usage = (await api.client.get("/api/v1/usage", headers=alice)).json()
    assert usage["created_today"] == 0
    assert (await api.client.get("/api/v1/groups", headers=alice)).json()["items"] == []


async def test_a_group_that_does_not_fit_is_429_saying_how_many_would(api: Api) -> None:
    alice = await api.user("alice")
    await api.desk.set_user_limits("alice", max_waiting=5)
    response = await api.client.post("/api/v1/groups", json={"jobs": episodes(8)}, headers=alice)
    problem = assert_problem(response, 429, "rate-limited")
    assert (problem["limit"], problem["allowed"], problem["fits"]) == ("waiting", 5, 5)
    assert "room for 5 more" in problem["detail"]
    assert (await api.client.get("/api/v1/groups", headers=alice)).json()["items"] == []


async def test_cancel_and_retry_over_http(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    group = (
        await api.client.post("/api/v1/groups", json={"jobs": episodes(2)}, headers=alice)
    ).json()
    claimed = (await api.client.post(f"{WORKER}/claim", json={}, headers=worker)).json()
    await api.client.post(
        f"{WORKER}/{claimed[0]['id']}/fail",
        json={"error": {"message": "no"}, "retryable": False, "attempt": 1},
        headers=worker,
    )
    cancelled = await api.client.post(f"/api/v1/groups/{group['id']}/cancel", headers=alice)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["counts"]["failed"] == 1
    retried = await api.client.post(f"/api/v1/groups/{group['id']}/retry", headers=alice)
    assert retried.json()["status"] == "running"
    assert (retried.json()["counts"]["pending"], retried.json()["cancelled_at"]) == (1, None)


async def test_one_stream_follows_the_whole_group_to_its_end(
    desk: JobDesk, make_app: MakeApp
) -> None:
    alice = bearer(await desk.create_user_token("alice"))
    worker = bearer(await desk.create_worker_token("w1"))
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        group = (
            await client.post("/api/v1/groups", json={"jobs": episodes(2)}, headers=alice)
        ).json()
        async with events(client, f"/api/v1/groups/{group['id']}/events", alice) as stream:
            first = await stream.next()
            assert first is not None
            assert (first.event, first.data["status"], first.data["progress"]) == (
                "group",
                "pending",
                0.0,
            )
            assert first.id == f"1-{group['id']}-pending"
            claimed = (
                await client.post(f"{WORKER}/claim", json={"limit": 2}, headers=worker)
            ).json()
            for job in claimed:
                await client.post(
                    f"{WORKER}/{job['id']}/progress",
                    json={"progress": 50, "attempt": 1},
                    headers=worker,
                )
                await client.post(
                    f"{WORKER}/{job['id']}/complete",
                    json={"result": 1, "attempt": 1},
                    headers=worker,
                )
            seen = []
            while (event := await stream.next()) is not None:
                seen.append((event.event, event.data["status"], event.data["progress"]))
            assert seen[-1] == ("group", "completed", 100.0)
            groups = [item for item in seen if item[0] == "group"]
            assert [progress for _, _, progress in groups] == sorted(
                progress for _, _, progress in groups
            )
            assert ("group", "running", 50.0) in seen
            assert sum(1 for item in seen if item[:2] == ("job", "completed")) == 2
        last = first.id.replace("-pending", "-completed").replace("1-", f"{len(groups) + 1}-", 1)
        resumed = await client.get(
            f"/api/v1/groups/{group['id']}/events", headers={**alice, "Last-Event-ID": last}
        )
        assert resumed.status_code == 204
