"""Schedules over the operator's HTTP API, and the server firing them; on each store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobdesk import JobDesk
from jobdesk.testing import ManualClock
from tests.acceptance.conftest import Api, MakeApp, bearer, running
from tests.acceptance.test_dashboard_http import signed_in
from tests.acceptance.test_http_jobs import assert_problem

NIGHTLY = {"name": "nightly", "cron": "0 3 * * *", "type": "report", "input": {"a": 1}}


async def admin(api: Api) -> dict[str, str]:
    """The headers of a fresh admin token."""
    return bearer(await api.desk.create_admin_token("ops"))


async def test_schedule_routes_take_admin_tokens_only(api: Api) -> None:
    for headers in ({}, await api.user("alice"), await api.worker("w1")):
        answer = await api.client.get("/api/v1/admin/schedules", headers=headers)
        assert_problem(answer, 401, "unauthorized")
        body = NIGHTLY | {"user_id": "alice"}
        answer = await api.client.post("/api/v1/admin/schedules", json=body, headers=headers)
        assert_problem(answer, 401, "unauthorized")
    assert await api.desk.list_schedules() == []


async def test_a_schedule_is_created_listed_paused_resumed_and_deleted(api: Api) -> None:
    ops = await admin(api)
    body = NIGHTLY | {"user_id": "alice", "timezone": "Europe/Paris", "missed": "skip"}
    made = await api.client.post("/api/v1/admin/schedules", json=body, headers=ops)
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["next_run_at"] == "2026-03-02T02:00:00Z"  # 03:00 in Paris
    assert (created["missed"], created["paused"], created["last_job_id"]) == ("skip", False, None)
    listed = (await api.client.get("/api/v1/admin/schedules", headers=ops)).json()
    assert listed == [created]

    paused = await api.client.post("/api/v1/admin/schedules/nightly/pause", headers=ops)
    assert paused.json()["paused"] is True
    resumed = await api.client.post("/api/v1/admin/schedules/nightly/resume", headers=ops)
    assert resumed.json()["paused"] is False
    one = await api.client.get("/api/v1/admin/schedules/nightly", headers=ops)
    assert one.json() == resumed.json()

    gone = await api.client.delete("/api/v1/admin/schedules/nightly", headers=ops)
    assert gone.status_code == 204
    for method, path in (
        ("GET", "/api/v1/admin/schedules/nightly"),
        ("DELETE", "/api/v1/admin/schedules/nightly"),
        ("POST", "/api/v1/admin/schedules/nightly/pause"),
    ):
        answer = await api.client.request(method, path, headers=ops)
        assert assert_problem(answer, 404, "schedule-not-found")["name"] == "nightly"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"timezone": "Nowhere/Special"}, "timezone"),
        ({"missed": "twice"}, "missed"),
        ({"type": "BAD TYPE"}, "type"),
        ({"name": 7}, "name"),
        ({"user_id": ""}, "user_id"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_a_bad_schedule_is_422_naming_the_field_and_writes_nothing(
    api: Api, change: dict[str, Any], field: str
) -> None:
    ops = await admin(api)
    body = NIGHTLY | {"user_id": "alice"} | change
    answer = await api.client.post("/api/v1/admin/schedules", json=body, headers=ops)
    assert assert_problem(answer, 422, "invalid-input")["errors"][0]["field"] == field
    assert await api.desk.list_schedules() == []


async def test_a_duplicate_name_is_422_and_the_first_schedule_stays(api: Api) -> None:
    ops = await admin(api)
    first = await api.client.post(
        "/api/v1/admin/schedules", json=NIGHTLY | {"user_id": "alice"}, headers=ops
    )
    again = await api.client.post(
        "/api/v1/admin/schedules",
        json=NIGHTLY | {"user_id": "bob", "cron": "@hourly"},
        headers=ops,
    )
    assert assert_problem(again, 422, "invalid-input")["errors"][0]["field"] == "name"
    listed = (await api.client.get("/api/v1/admin/schedules", headers=ops)).json()
    assert listed == [first.json()]


async def test_the_server_fires_due_schedules_by_itself(
    desk: JobDesk, clock: ManualClock, make_app: MakeApp
) -> None:
    made = await desk.schedule("often", "* * * * *", "report", {}, user_id="alice")
    clock.set(made.next_run_at)
    app = make_app(schedule_interval_seconds=0.01)
    async with running(app), asyncio.timeout(30):
        # The server writes the job; nothing in this process is told of it on PostgreSQL.
        while not (await desk.get_user_jobs("alice")).items:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    [job] = (await desk.get_user_jobs("alice")).items
    assert job.idempotency_key == "schedule:often@2026-03-01T12:01:00Z"


async def test_the_operator_dashboard_lists_schedules_with_their_next_runs(
    api: Api, clock: ManualClock
) -> None:
    await api.desk.schedule("nightly", "0 3 * * *", "report", {}, user_id="alice")
    paused = await api.desk.schedule("hourly", "@hourly", "report", {}, user_id="<b>odd</b>")
    await api.desk.pause_schedule(paused.name)
    await signed_in(api.client, await api.desk.create_admin_token("ops"))
    overview = await api.client.get("/admin")
    assert overview.status_code == 200
    section = overview.text[overview.text.index('id="schedules-title"') :]
    assert "nightly" in section
    assert "0 3 * * *" in section
    assert "2026-03-02 03:00" in section
    assert "paused" in section
    assert "<b>odd</b>" not in section  # user ids are escaped
    assert "&lt;b&gt;odd&lt;/b&gt;" in section
