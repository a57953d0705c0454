"""What a hostile or careless client sends, through the real HTTP app on each store:
datetimes past the calendar, invented methods, string ``exp`` claims, guessed ids,
shared worker names; and what every response tells the browser (no CDN scripts)."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import jwt
import pytest

from jobdesk import JobDesk, ids
from jobdesk.errors import JobdeskError
from tests.acceptance.conftest import JWT_SECRET, Api, MakeApp, bearer, running


@pytest.mark.parametrize(
    "run_at",
    [
        "9999-12-31T23:59:59+14:00",
        "9999-12-31T23:59:59-14:00",
        "9000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00-01:00",
    ],
)
async def test_a_run_at_beyond_the_sane_range_is_422_naming_the_field(
    api: Api, run_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = await api.user("alice")
    body = {"type": "x", "input": {}, "run_at": run_at}
    with caplog.at_level(logging.ERROR):
        response = await api.client.post("/api/v1/jobs", json=body, headers=headers)
    assert response.status_code == 422, response.text
    fields = [error["field"] for error in response.json()["errors"]]
    assert fields == ["run_at"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_run_at_inside_the_range_is_kept(api: Api) -> None:
    job = await api.create(await api.user("alice"), run_at="8999-12-31T15:00:00-05:00")
    assert job["run_at"].startswith("8999-12-31T20:00:00")


async def test_the_docs_pages_are_off_unless_turned_on(desk: JobDesk, make_app: MakeApp) -> None:
    async with running(make_app()) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/redoc")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 200
        signin = await client.get("/signin")
    assert '<script src="http' not in signin.text
    async with running(make_app(api_docs=True)) as client:
        docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_every_api_response_forbids_scripts_and_framing(api: Api) -> None:
    headers = await api.user("alice")
    for response in (
        await api.client.get("/api/v1/jobs", headers=headers),
        await api.client.get("/api/v1/jobs/nope", headers=headers),
        await api.client.get("/openapi.json"),
        await api.client.get("/healthz"),
    ):
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    # The dashboard keeps its own, wider policy (its scripts come from /static).
    page = await api.client.get("/signin")
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_invented_methods_are_counted_as_other(api: Api) -> None:
    for method in ("FOO", "BREW", "X-ANYTHING-42"):
        await api.client.request(method, "/api/v1/jobs")
        await api.client.request(method, "/no/such/path")
    metrics = (await api.client.get("/metrics")).text
    lines = [line for line in metrics.splitlines() if "http_request_duration_seconds_count" in line]
    assert any('method="other"' in line for line in lines)
    for method in ("FOO", "BREW", "X-ANYTHING-42"):
        assert method not in metrics
    assert all("/no/such/path" not in line for line in lines)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_a_jwt_whose_time_claims_are_strings_is_401(api: Api, claim: str) -> None:
    claims: dict[str, Any] = {"sub": "alice", "exp": int(time.time()) + 3600}
    claims[claim] = str(int(time.time()) + (3600 if claim == "exp" else -10))
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    response = await api.client.get("/api/v1/jobs", headers=bearer(token))
    assert response.status_code == 401
    assert claim in response.json()["detail"]


async def test_ids_made_in_one_millisecond_do_not_tell_their_neighbours(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: frozen)  # every id in one millisecond
    headers = await api.user("alice")
    made = [(await api.create(headers))["id"] for _ in range(10)]
    values = [_value(job_id) for job_id in made]
    assert values == sorted(values)  # still time-ordered
    steps = [later - earlier for earlier, later in itertools.pairwise(values)]
    assert min(steps) > 1 << 16  # not +1: the next id cannot be guessed from this one
    # A guessed neighbour is someone else's job at best, and a 404 like any other.
    guess = _id(values[-1] + 1)
    assert (await api.client.get(f"/api/v1/jobs/{guess}", headers=headers)).status_code == 404


async def test_a_worker_tokens_name_is_unique_among_live_tokens(api: Api, desk: JobDesk) -> None:
    first = await api.worker("gpu-1")
    with pytest.raises(JobdeskError):
        await desk.create_worker_token("gpu-1")
    # Once revoked, the name may be reused, and the old token no longer acts.
    await desk.revoke_worker_token("gpu-1")
    second = await api.worker("gpu-1")
    assert (await api.client.get("/api/v1/worker/me", headers=first)).status_code == 401
    me = await api.client.get("/api/v1/worker/me", headers=second)
    assert me.status_code == 200
    assert me.json()["name"] == "gpu-1"


def _value(job_id: str) -> int:
    value = 0
    for char in job_id:
        value = value * 32 + ids.CROCKFORD.index(char)
    return value


def _id(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(ids.CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
