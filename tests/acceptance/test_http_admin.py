"""Operator routes over HTTP: users' limits and weights, types' pools and rates; on each store."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import Api, bearer
from tests.acceptance.test_http_jobs import assert_problem


async def admin(api: Api) -> dict[str, str]:
    """The headers of a fresh admin token."""
    return bearer(await api.desk.create_admin_token("ops"))


async def test_operator_routes_take_admin_tokens_only(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    for headers in ({}, alice, worker, bearer("jda_not-a-real-token")):
        answer = await api.client.get("/api/v1/admin/types", headers=headers)
        assert_problem(answer, 401, "unauthorized")
        answer = await api.client.put(
            "/api/v1/admin/users/alice/limits", json={"weight": 2}, headers=headers
        )
        assert_problem(answer, 401, "unauthorized")


async def test_a_users_limits_and_weight_are_set_and_shown(api: Api) -> None:
    ops = await admin(api)
    body = {"max_running": 2, "max_waiting": 50, "max_daily": None, "weight": 3}
    set_ = await api.client.put("/api/v1/admin/users/alice/limits", json=body, headers=ops)
    assert set_.status_code == 200, set_.text
    shown = (await api.client.get("/api/v1/admin/users/alice/limits", headers=ops)).json()
    assert shown == set_.json()
    wanted = {"max_running": 2, "max_waiting": 50, "max_daily": 1000, "weight": 3.0}
    assert {name: shown[name] for name in wanted} == wanted


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weight": 0}, "weight"),
        ({"weight": -1}, "weight"),
        ({"weight": 1001}, "weight"),
        ({"weight": "2"}, "weight"),
        ({"max_running": -1}, "max_running"),
        ({"max_waiting": -5}, "max_waiting"),
        ({"max_daily": 1.5}, "max_daily"),
        ({"max_active": 3}, "max_active"),
    ],
)
async def test_a_bad_user_limit_is_422_naming_the_field_and_writes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    ops = await admin(api)
    answer = await api.client.put("/api/v1/admin/users/alice/limits", json=body, headers=ops)
    assert assert_problem(answer, 422, "invalid-input")["errors"][0]["field"] == field
    shown = (await api.client.get("/api/v1/admin/users/alice/limits", headers=ops)).json()
    assert (shown["max_running"], shown["max_waiting"], shown["weight"]) == (10, 1000, 1.0)


@pytest.mark.parametrize("weight", ["NaN", "Infinity", "-Infinity"])
async def test_a_weight_that_is_not_finite_is_422(api: Api, weight: str) -> None:
    ops = await admin(api)
    answer = await api.client.put(
        "/api/v1/admin/users/alice/limits",
        content=f'{{"weight": {weight}}}'.encode(),
        headers={**ops, "Content-Type": "application/json"},
    )
    assert assert_problem(answer, 422, "invalid-input")["errors"][0]["field"] == "weight"


async def test_a_types_pool_and_rate_are_set_listed_and_removed(api: Api) -> None:
    ops = await admin(api)
    body = {"max_running": 4, "rate": "60/min"}
    set_ = await api.client.put("/api/v1/admin/types/gpu.render/limits", json=body, headers=ops)
    assert set_.json() == {"type": "gpu.render", "max_running": 4, "rate": "60/min"}
    listed = await api.client.get("/api/v1/admin/types", headers=ops)
    assert listed.json() == [set_.json()]
    await api.client.put("/api/v1/admin/types/gpu.render/limits", json={}, headers=ops)
    assert (await api.client.get("/api/v1/admin/types", headers=ops)).json() == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("gpu", {"rate": "0/min"}, "rate"),
        ("gpu", {"rate": "5/fortnight"}, "rate"),
        ("gpu", {"rate": "abc"}, "rate"),
        ("gpu", {"max_running": -1}, "max_running"),
        ("has%20space", {"max_running": 1}, "type"),
    ],
)
async def test_a_bad_type_limit_is_422_naming_the_field_and_writes_nothing(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    ops = await admin(api)
    answer = await api.client.put(f"/api/v1/admin/types/{path}/limits", json=body, headers=ops)
    assert assert_problem(answer, 422, "invalid-input")["errors"][0]["field"] == field
    assert (await api.client.get("/api/v1/admin/types", headers=ops)).json() == []


async def test_a_snooze_out_of_range_is_422(api: Api) -> None:
    worker = await api.worker("w1")
    answer = await api.client.post(
        "/api/v1/worker/jobs/01JQ0000000000000000000000/snooze",
        json={"attempt": 1, "delay": -1},
        headers=worker,
    )
    assert assert_problem(answer, 422, "invalid-input")["errors"][0]["field"] == "delay"
