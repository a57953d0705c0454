"""Authentication over HTTP: user tokens, host-signed JWTs and worker tokens, each in its place."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import jwt
import pytest

from jobdesk.testing import ManualClock
from tests.acceptance.conftest import JWT_SECRET, Api, MakeApp, bearer, running
from tests.acceptance.test_http_jobs import assert_problem

INVALID = 'Bearer realm="jobdesk", error="invalid_token"'


def signed(claims: dict[str, Any], secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    """A JWT as a host application would sign it."""
    return jwt.encode(claims, secret, algorithm=algorithm)


def in_an_hour() -> int:
    return int(time.time()) + 3600


async def test_a_missing_token_is_401_with_a_bare_challenge(api: Api) -> None:
    response = await api.client.get("/api/v1/jobs")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="jobdesk"'


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        "Bearer two tokens",
        "Bearer jdu_short",
        "Bearer jdu_" + "A" * 50,
        "Bearer not-a-token-at-all",
        "Bearer a.b.c",
    ],
)
async def test_a_malformed_token_is_401_invalid_token(api: Api, header: str) -> None:
    response = await api.client.get("/api/v1/jobs", headers={"Authorization": header})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith(INVALID)


async def test_a_revoked_user_token_is_401(api: Api) -> None:
    token = await api.desk.create_user_token("alice")
    assert (await api.client.get("/api/v1/jobs", headers=bearer(token))).status_code == 200
    await api.desk.revoke_user_tokens("alice")
    response = await api.client.get("/api/v1/jobs", headers=bearer(token))
    assert "revoked" in assert_problem(response, 401)["detail"]
    assert response.headers["www-authenticate"].startswith(INVALID)


async def test_an_expired_user_token_is_401(api: Api, clock: ManualClock) -> None:
    token = await api.desk.create_user_token("alice", expires_at=clock() + timedelta(minutes=5))
    assert (await api.client.get("/api/v1/jobs", headers=bearer(token))).status_code == 200
    clock.advance(minutes=6)
    response = await api.client.get("/api/v1/jobs", headers=bearer(token))
    assert "expired" in assert_problem(response, 401)["detail"]


async def test_a_host_signed_jwt_acts_as_its_subject(api: Api) -> None:
    alice = bearer(signed({"sub": "alice", "exp": in_an_hour()}))
    created = await api.client.post(
        "/api/v1/jobs", json={"type": "extract", "input": {}}, headers=alice
    )
    assert created.status_code == 201
    assert created.json()["user_id"] == "alice"
    assert (await api.desk.get_job_status(created.json()["id"], "alice")).user_id == "alice"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (signed({"sub": "alice", "exp": int(time.time()) - 10}), "expired"),
        (signed({"sub": "alice", "exp": in_an_hour()}, secret="x" * 40), "Signature"),
        (signed({"sub": "alice"}), "exp"),
        (signed({"exp": in_an_hour()}), "sub"),
        (signed({"sub": "", "exp": in_an_hour()}), "sub"),
        (signed({"sub": "alice", "exp": in_an_hour()}, algorithm="HS512"), "alg"),
        (jwt.encode({"sub": "alice", "exp": in_an_hour()}, None, algorithm="none"), "alg"),
        (signed({"sub": "alice", "exp": in_an_hour(), "aud": "elsewhere"}), "audience"),
    ],
    ids=["expired", "wrong-secret", "no-exp", "no-sub", "empty-sub", "hs512", "none", "aud"],
)
async def test_a_bad_jwt_is_401(api: Api, token: str, reason: str) -> None:
    response = await api.client.get("/api/v1/jobs", headers=bearer(token))
    body = assert_problem(response, 401, "unauthorized")
    assert reason.lower() in body["detail"].lower()
    assert response.headers["www-authenticate"].startswith(INVALID)


async def test_jwt_audience_and_issuer_are_checked_when_configured(make_app: MakeApp) -> None:
    app = make_app(jwt_audience="jobdesk", jwt_issuer="https://app.example")
    good = {"sub": "alice", "exp": in_an_hour(), "aud": "jobdesk", "iss": "https://app.example"}
    async with running(app) as client:
        accepted = await client.get("/api/v1/jobs", headers=bearer(signed(good)))
        wrong_aud = await client.get(
            "/api/v1/jobs", headers=bearer(signed({**good, "aud": "other"}))
        )
        wrong_iss = await client.get(
            "/api/v1/jobs", headers=bearer(signed({**good, "iss": "https://evil.example"}))
        )
        no_aud = await client.get(
            "/api/v1/jobs", headers=bearer(signed({"sub": "alice", "exp": in_an_hour()}))
        )
    assert accepted.status_code == 200
    assert "audience" in assert_problem(wrong_aud, 401)["detail"].lower()
    assert "issuer" in assert_problem(wrong_iss, 401)["detail"].lower()
    assert_problem(no_aud, 401)


async def test_jwts_are_refused_when_no_secret_is_configured(make_app: MakeApp) -> None:
    async with running(make_app(jwt_secret=None)) as client:
        response = await client.get(
            "/api/v1/jobs", headers=bearer(signed({"sub": "alice", "exp": in_an_hour()}))
        )
    assert "JOBDESK_JWT_SECRET" in assert_problem(response, 401)["detail"]


async def test_a_worker_token_on_a_user_route_is_401(api: Api) -> None:
    worker = await api.worker("w1")
    for method, path in [
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs"),
        ("GET", "/api/v1/usage"),
    ]:
        response = await api.client.request(method, path, headers=worker, json={})
        assert "worker token cannot call user routes" in assert_problem(response, 401)["detail"]


async def test_user_tokens_and_jwts_on_worker_routes_are_401(api: Api) -> None:
    alice = await api.user("alice")
    token = bearer(signed({"sub": "alice", "exp": in_an_hour()}))
    for headers in (alice, token):
        claim = await api.client.post("/api/v1/worker/jobs/claim", json={}, headers=headers)
        assert "send a worker token" in assert_problem(claim, 401)["detail"]
        pending = await api.client.get("/api/v1/worker/jobs/pending", headers=headers)
        assert_problem(pending, 401)
    assert (await api.client.post("/api/v1/worker/jobs/claim", json={})).status_code == 401


async def test_a_revoked_worker_token_is_401(api: Api) -> None:
    worker = await api.worker("w1")
    assert (await api.client.get("/api/v1/worker/jobs/pending", headers=worker)).status_code == 200
    await api.desk.revoke_worker_token("w1")
    response = await api.client.get("/api/v1/worker/jobs/pending", headers=worker)
    assert "revoked" in assert_problem(response, 401)["detail"]


async def test_a_worker_restricted_to_types_sees_only_those(api: Api) -> None:
    alice = await api.user("alice")
    extract = await api.create(alice, type="extract")
    render = await api.create(alice, type="render")
    renderer = await api.worker("renderer", types=["render"])
    pending = await api.client.get("/api/v1/worker/jobs/pending", headers=renderer)
    assert [job["id"] for job in pending.json()] == [render["id"]]
    forbidden_type = await api.client.post(
        f"/api/v1/worker/jobs/{extract['id']}/start", headers=renderer
    )
    assert_problem(forbidden_type, 404, "job-not-found")
    claimed = await api.client.post(
        "/api/v1/worker/jobs/claim", json={"limit": 5}, headers=renderer
    )
    assert [job["id"] for job in claimed.json()] == [render["id"]]
