"""The OpenAPI document as typed clients read it: each problem type its own schema,
request defaults optional, responses fully required, the server's rules stated, and
every problem the server answers valid against the schema its route documents."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest

from jobdesk import validation, wire
from jobdesk.errors import InvalidInput, LeaseLost, RateLimited
from jobdesk.http import Settings, create_app
from jobdesk.http.schemas_problems import PROBLEM_SCHEMAS, type_uri
from jobdesk.limits import Limits
from tests.acceptance.conftest import Api, running
from tests.conftest import OpenDesk

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app("sqlite:///unused.db", Settings()).openapi()


def response_schema(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    """The schema a route documents for ``status``, resolvable against ``document``."""
    response = document["paths"][path][method]["responses"][str(status)]
    return response["content"][PROBLEM]["schema"]


def assert_matches(
    document: dict[str, Any], path: str, method: str, response: Any, slug: str
) -> dict[str, Any]:
    """``response`` is the problem ``slug`` and fits the schema its route documents."""
    body: dict[str, Any] = response.json()
    assert response.headers["content-type"] == PROBLEM
    assert body["type"] == wire.PROBLEM_PREFIX + slug, body
    # The route's schema by a JSON pointer into the whole document, so that its own
    # "#/components/..." references resolve (the document's other members are no keywords).
    pointer = "/".join(
        quote(part.replace("~", "~0").replace("/", "~1"), safe="~+")
        for part in ("paths", path, method, "responses", str(response.status_code))
    )
    schema = {**document, "$ref": f"#/{pointer}/content/application~1problem+json/schema"}
    validator = jsonschema_rs.Draft202012Validator(schema)
    validator.validate(body)
    return body


def test_each_problem_schema_carries_exactly_its_wire_members() -> None:
    for error, model in PROBLEM_SCHEMAS.items():
        problem = wire.PROBLEMS[error]  # type: ignore[index]
        assert type_uri(model) == problem.uri
        extra = set(model.model_fields) - {"type", "title", "status", "detail", "request_id"}
        assert extra == set(problem.members), model.__name__


def test_routes_document_the_problem_types_they_answer(document: dict[str, Any]) -> None:
    ref = "#/components/schemas/{}".format
    jobs = "/api/v1/jobs"
    assert response_schema(document, jobs, "post", 429) == {"$ref": ref("RateLimitedProblem")}
    assert response_schema(document, jobs, "post", 422) == {"$ref": ref("InvalidInputProblem")}
    assert response_schema(document, jobs, "post", 503) == {"$ref": ref("StoreUnavailableProblem")}
    cancel = "/api/v1/jobs/{id}/cancel"
    assert response_schema(document, cancel, "post", 409) == {
        "$ref": ref("InvalidTransitionProblem")
    }
    assert response_schema(document, cancel, "post", 404) == {"$ref": ref("JobNotFoundProblem")}
    complete = response_schema(document, "/api/v1/worker/jobs/{id}/complete", "post", 409)
    assert complete["oneOf"] == [
        {"$ref": ref("InvalidTransitionProblem")},
        {"$ref": ref("LeaseLostProblem")},
    ]
    schemas = document["components"]["schemas"]
    limited = schemas["RateLimitedProblem"]
    assert {"limit", "allowed", "retry_after"} <= set(limited["required"])
    assert limited["properties"]["limit"]["enum"] == ["waiting", "daily"]
    conflict = schemas["InvalidTransitionProblem"]
    assert {"job_status", "action"} <= set(conflict["required"])
    assert "outcome_unknown" in schemas["StoreUnavailableProblem"]["required"]


def test_job_error_is_an_error_detail(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for model in ("JobOut", "JobEventOut"):
        error = schemas[model]["properties"]["error"]
        assert {"$ref": "#/components/schemas/ErrorDetail"} in error["anyOf"], model


def test_requests_require_only_what_has_no_default_and_responses_require_all(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        if name.endswith("Request") or name in {"JobSpecIn", "CompletionItem"}:
            defaulted = {key for key, value in properties.items() if "default" in value}
            assert not (defaulted & required), name
        elif name.endswith("Out") or name.endswith("Outcome"):
            assert required == set(properties), name
    create = schemas["CreateJobRequest"]
    assert set(create["required"]) == {"type", "input"}
    assert "priority" not in schemas["ClaimRequest"].get("required", [])


def test_the_schema_states_the_rules_the_server_enforces(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def rule(model: str, field: str, keyword: str) -> Any:
        # On a nullable field the keyword may sit beside `anyOf` (it binds only the
        # type it is about) or in the branch of that type.
        schema = schemas[model]["properties"][field]
        for place in [schema, *schema.get("anyOf", [])]:
            if keyword in place:
                return place[keyword]
        raise AssertionError(f"{model}.{field} states no {keyword}")

    assert rule("ClaimRequest", "types", "minItems") == 1
    assert rule("FailRequest", "retry_after", "maximum") == Limits().retry_backoff_max_seconds
    assert rule("CreateJobsRequest", "jobs", "minItems") == 1
    project = {"pattern": rule("JobSpecIn", "project_id", "pattern")}
    message = {"pattern": rule("ProgressRequest", "message", "pattern")}
    # Each pattern refuses what the core refuses (and the core refuses at least as much).
    printable, no_nul = re.compile(project["pattern"]), re.compile(message["pattern"])
    for text in ["proj-1", "a b", "tab\there", "nul\x00", "bell\x07", "del\x7f", "c1\x85"]:
        core_ok = True
        try:
            validation.principal_id("project_id", text)
        except InvalidInput:
            core_ok = False
        if printable.match(text) is None:
            assert not core_ok, repr(text)
        elif not core_ok:
            assert not text.isprintable()
        assert (no_nul.match(text) is None) == ("\x00" in text)


async def test_a_405_allows_every_method_served_on_the_path(api: Api) -> None:
    response = await api.client.put("/api/v1/jobs")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


async def test_a_bad_cursor_names_the_cursor_parameter(api: Api) -> None:
    alice = await api.user("alice")
    response = await api.client.get("/api/v1/jobs", params={"cursor": "xyz"}, headers=alice)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "cursor"
    assert "get_user_jobs" not in error["rule"]
    assert "next_cursor" in error["rule"]


async def test_every_problem_the_server_answers_fits_its_documented_schema(
    api: Api, document: dict[str, Any], open_desk: OpenDesk
) -> None:
    alice = await api.user("alice")
    worker = await api.worker("w1")
    post = api.client.post

    missing = await api.client.get("/api/v1/jobs/01M96TYYF79SHNHJF97T95GVE8", headers=alice)
    assert_matches(document, "/api/v1/jobs/{id}", "get", missing, "job-not-found")

    invalid = await post("/api/v1/jobs", json={"type": "x", "input": {}, "priority": "hi"})
    assert invalid.status_code == 401
    assert_matches(document, "/api/v1/jobs", "post", invalid, "unauthorized")
    invalid = await post(
        "/api/v1/jobs", json={"type": "x", "input": {}, "project_id": "a\x07"}, headers=alice
    )
    body = assert_matches(document, "/api/v1/jobs", "post", invalid, "invalid-input")
    assert body["errors"][0]["field"] == "project_id"

    job = await api.create(alice)
    again = await post(f"/api/v1/jobs/{job['id']}/retry", headers=alice)
    body = assert_matches(document, "/api/v1/jobs/{id}/retry", "post", again, "invalid-transition")
    assert (body["job_status"], body["action"]) == ("pending", "retried")
    await post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice)

    job = await api.create(alice)
    [claimed] = (await post("/api/v1/worker/jobs/claim", json={}, headers=worker)).json()
    stale = await post(
        f"/api/v1/worker/jobs/{claimed['id']}/complete",
        json={"attempt": claimed["attempt"] + 1},
        headers=worker,
    )
    path = "/api/v1/worker/jobs/{id}/complete"
    assert_matches(document, path, "post", stale, wire.PROBLEMS[LeaseLost].slug)

    await api.desk.set_user_limits("bob", max_waiting=1)
    bob = await api.user("bob")
    await api.create(bob)
    limited = await post("/api/v1/jobs", json={"type": "x", "input": {}}, headers=bob)
    body = assert_matches(document, "/api/v1/jobs", "post", limited, "rate-limited")
    assert body["limit"] == "waiting"
    assert body["allowed"] == 1
    assert body["retry_after"] is None
    assert wire.PROBLEMS[RateLimited].status == 429

    async with open_desk() as closed:
        pass
    app = create_app(closed, Settings(reap_interval_seconds=0))
    async with running(app) as client:
        down = await client.post("/api/v1/jobs", json={"type": "x", "input": {}}, headers=alice)
    body = assert_matches(document, "/api/v1/jobs", "post", down, "store-unavailable")
    assert body["outcome_unknown"] is False
