"""Cross-cutting HTTP behaviour: body limit, problem details, request ids and access logs,
CORS, OpenAPI, health, readiness and metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from jobdesk import JobDesk
from jobdesk.errors import StoreUnavailable
from jobdesk.http import Settings, create_app
from tests.acceptance.conftest import Api, MakeApp, bearer, running
from tests.acceptance.test_http_jobs import assert_problem
from tests.conftest import OpenDesk


async def test_a_body_over_the_limit_is_413_with_or_without_content_length(
    make_app: MakeApp, desk: JobDesk
) -> None:
    app = make_app(max_body_bytes=1000)
    token = bearer(await desk.create_user_token("alice"))
    body = json.dumps({"type": "extract", "input": {"text": "x" * 2000}}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    async with running(app) as client:
        declared = await client.post(
            "/api/v1/jobs", content=body, headers={**token, "Content-Type": "application/json"}
        )
        streamed = await client.post(
            "/api/v1/jobs", content=chunks(), headers={**token, "Content-Type": "application/json"}
        )
        assert "content-length" not in streamed.request.headers
        small = await client.post(
            "/api/v1/jobs", json={"type": "extract", "input": {}}, headers=token
        )
    for response in (declared, streamed):
        problem = assert_problem(response, 413)
        assert "1000 bytes" in problem["detail"]
    assert small.status_code == 201
    assert (await desk.get_user_jobs("alice")).items[0].id == small.json()["id"]
    assert len((await desk.get_user_jobs("alice")).items) == 1


async def test_unexpected_errors_are_a_bare_500_logged_with_the_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await api.user("alice")
    job = await api.create(alice)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals: /srv/db password=hunter2")

    monkeypatch.setattr(api.desk, "get_job_status", broken)
    with caplog.at_level(logging.ERROR, logger="jobdesk.http"):
        response = await api.client.get(f"/api/v1/jobs/{job['id']}", headers=alice)
    problem = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    [record] = [r for r in caplog.records if r.name == "jobdesk.http"]
    assert problem["request_id"] in record.getMessage()
    assert record.exc_info is not None


async def test_an_unavailable_store_is_503_without_its_details(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await api.user("alice")

    async def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("SQLite database '/srv/private/jobs.db': disk I/O error")

    monkeypatch.setattr(api.desk, "get_user_jobs", down)
    response = await api.client.get("/api/v1/jobs", headers=alice)
    problem = assert_problem(response, 503, "store-unavailable")
    assert "/srv/private" not in response.text
    assert (
        problem["detail"] == "the database is unavailable; nothing was applied; try again shortly"
    )
    assert problem["outcome_unknown"] is False
    assert response.headers["retry-after"] == "1"


async def test_a_commit_cut_off_is_a_503_that_says_the_outcome_is_unknown(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await api.user("alice")

    async def cut(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("broke while committing to db.internal:5432", outcome_unknown=True)

    monkeypatch.setattr(api.desk, "create_job", cut)
    response = await api.client.post(
        "/api/v1/jobs", json={"type": "extract", "input": {}}, headers=alice
    )
    problem = assert_problem(response, 503, "store-unavailable")
    assert "db.internal" not in response.text
    assert problem["outcome_unknown"] is True
    assert "may have been applied" in problem["detail"]


async def test_unknown_routes_and_methods_are_problems_too(api: Api) -> None:
    assert_problem(await api.client.get("/api/v1/nothing"), 404)
    wrong_method = await api.client.delete("/api/v1/jobs")
    assert_problem(wrong_method, 405)
    assert "allow" in wrong_method.headers


async def test_request_ids_are_echoed_or_made_and_every_request_is_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await api.user("alice")
    with caplog.at_level(logging.INFO, logger="jobdesk.http.access"):
        given = await api.client.get("/api/v1/jobs", headers={**alice, "X-Request-ID": "req-42"})
        made = await api.client.get("/api/v1/jobs", headers={**alice, "X-Request-ID": "bad id!"})
        refused = await api.client.get("/api/v1/jobs")
    assert given.headers["x-request-id"] == "req-42"
    assert len(made.headers["x-request-id"]) == 32
    records = [r for r in caplog.records if r.name == "jobdesk.http.access"]
    assert [r.__dict__["request_id"] for r in records] == [
        "req-42",
        made.headers["x-request-id"],
        refused.headers["x-request-id"],
    ]
    first = records[0].__dict__
    assert first["method"] == "GET"
    assert first["route"] == "/api/v1/jobs"
    assert first["status"] == 200
    assert first["principal"] == "user:alice"
    assert first["duration_ms"] >= 0
    assert records[2].__dict__["status"] == 401
    assert records[2].__dict__["principal"] is None
    assert all("jdu_" not in r.getMessage() for r in records)


async def test_cors_is_off_by_default_and_configurable(make_app: MakeApp) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with running(make_app()) as client:
        closed = await client.options("/api/v1/jobs", headers=preflight)
        simple = await client.get("/healthz", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in closed.headers
    assert "access-control-allow-origin" not in simple.headers

    async with running(make_app(cors_origins=("https://app.example",))) as client:
        opened = await client.options("/api/v1/jobs", headers=preflight)
        other = await client.options(
            "/api/v1/jobs", headers={**preflight, "Origin": "https://evil.example"}
        )
    assert opened.status_code == 200
    assert opened.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in opened.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers
    assert "origin" in assert_problem(other, 400)["detail"]


async def test_openapi_is_served_and_the_docs_pages_are_off_by_default(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "jobdesk"
    assert {"Problem", "FieldProblem", "JobOut"} <= set(schema["components"]["schemas"])
    assert set(schema["components"]["securitySchemes"]) == {
        "adminToken",
        "userToken",
        "workerToken",
    }
    create = schema["paths"]["/api/v1/jobs"]["post"]
    assert create["responses"]["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/InvalidInputProblem"}}
    }
    assert "GetJob" in create["responses"]["201"]["links"]
    # Swagger UI loads a CDN's scripts: only with JOBDESK_API_DOCS (tests/security).
    assert (await api.client.get("/docs")).status_code == 404


async def test_health_and_readiness(api: Api, open_desk: OpenDesk) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ready"}

    async with open_desk() as other:
        pass  # closed on the way out
    app = create_app(other, Settings(reap_interval_seconds=0))
    async with running(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert_problem(await client.get("/readyz"), 503, "store-unavailable")


async def test_a_url_app_opens_its_desk_in_its_lifespan(store_url: str) -> None:
    app = create_app(store_url, Settings(reap_interval_seconds=0))
    async with running(app) as client:
        assert (await client.get("/readyz")).status_code == 200
    assert app.state.jobdesk.desk is None


async def test_metrics_count_jobs_queue_depth_and_requests(api: Api) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    first = await api.create(alice, type="extract")
    await api.create(alice, type="extract")
    await api.create(alice, type="render")
    [claimed] = (
        await api.client.post(
            "/api/v1/worker/jobs/claim", json={"types": ["extract"]}, headers=worker
        )
    ).json()
    assert claimed["id"] == first["id"]
    await api.client.post(
        f"/api/v1/worker/jobs/{claimed['id']}/fail",
        json={"error": "boom", "retryable": False, "attempt": 1},
        headers=worker,
    )
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = set(response.text.splitlines())
    assert 'jobdesk_jobs_created_total{type="extract"} 2.0' in lines
    assert 'jobdesk_jobs_created_total{type="render"} 1.0' in lines
    assert 'jobdesk_jobs_started_total{type="extract"} 1.0' in lines
    assert 'jobdesk_jobs_failed_total{outcome="failed",type="extract"} 1.0' in lines
    assert 'jobdesk_queue_depth{status="pending",type="extract"} 1.0' in lines
    assert 'jobdesk_queue_depth{status="pending",type="render"} 1.0' in lines
    assert 'jobdesk_job_wait_seconds_count{type="extract"} 1.0' in lines
    assert "jobdesk_workers_seen 1.0" in lines
    assert 'jobdesk_job_run_seconds_count{outcome="failed",type="extract"} 1.0' in lines
    assert any(
        line.startswith("jobdesk_http_request_duration_seconds_count")
        and 'route="/api/v1/jobs"' in line
        and 'method="POST"' in line
        and 'status="201"' in line
        for line in lines
    )


async def test_mounted_in_a_host_app_it_works_without_its_lifespan(
    desk: JobDesk, make_app: MakeApp
) -> None:
    host = FastAPI()
    host.mount("/jobdesk", make_app())
    token = bearer(await desk.create_user_token("alice"))
    transport = httpx.ASGITransport(host)
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        created = await client.post(
            "/jobdesk/api/v1/jobs", json={"type": "extract", "input": {}}, headers=token
        )
        assert created.status_code == 201
        fetched = await client.get(f"/jobdesk/api/v1/jobs/{created.json()['id']}", headers=token)
        assert fetched.json()["status"] == "pending"
