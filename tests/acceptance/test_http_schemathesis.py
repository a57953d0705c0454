"""Property-based conformance of the whole API with schemathesis, in-process over ASGI.

Every operation is fuzzed with valid tokens (positive and negative data); then a
state machine follows the OpenAPI links (create -> get/cancel/retry/start ->
progress/complete/...). Checks: no 5xx, status codes, content types, headers and
bodies as documented, negative data refused, auth enforced, and our own check
that replays each successful request on a job id with another principal's token
and expects 404.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import hypothesis
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import Case
from schemathesis.auths import AuthContext
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import BaseSchema

from jobdesk import JobDesk
from jobdesk.http import Settings, create_app
from tests.acceptance.conftest import bearer
from tests.conftest import STORES, database_url

AnyCase = Case[Any]

# A type no generated job has: the other worker may touch none of them.
UNREACHABLE_TYPE = "type-that-schemathesis-never-makes"
EXAMPLES = 10
STATEFUL_EXAMPLES = 20
STREAM_CUT = 0.3  # seconds: event streams never end by themselves; cut them here
TIMEOUT = 10.0  # seconds: any other request


def timeout(case: AnyCase) -> float:
    """How long to wait for the whole response of ``case``."""
    return STREAM_CUT if case.path.endswith("/events") else TIMEOUT


@dataclass(frozen=True)
class Principals:
    """Valid tokens: one user and one worker act, the others are the "someone else"."""

    user: dict[str, str]
    other_user: dict[str, str]
    worker: dict[str, str]
    other_worker: dict[str, str]

    def acting(self, case: AnyCase) -> dict[str, str]:
        """The headers the request is sent with."""
        return self._pick(case, self.user, self.worker)

    def someone_else(self, case: AnyCase) -> dict[str, str]:
        """Headers of a principal who must not reach the case's job."""
        return self._pick(case, self.other_user, self.other_worker)

    @staticmethod
    def _pick(case: AnyCase, user: dict[str, str], worker: dict[str, str]) -> dict[str, str]:
        if case.path.startswith("/api/v1/worker/"):
            return worker
        return user if case.path.startswith("/api/v1/") else {}


@pytest.fixture(scope="module", params=STORES)
def fuzzed_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per store for the whole module: the fuzzer's jobs pile up in it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'jobdesk.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    database = f"jobdesk_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database} TEMPLATE {template}")
    yield database_url(server, database)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.fixture(scope="module")
def principals(fuzzed_url: str) -> Principals:
    async def issue() -> Principals:
        async with JobDesk.open(fuzzed_url) as desk:
            # Room for every job the fuzzer makes: the limits are tested elsewhere.
            await desk.set_user_limits("alice", max_waiting=1_000_000, max_daily=100_000_000)
            return Principals(
                user=bearer(await desk.create_user_token("alice")),
                other_user=bearer(await desk.create_user_token("mallory")),
                worker=bearer(await desk.create_worker_token("w1")),
                other_worker=bearer(await desk.create_worker_token("w2", types=[UNREACHABLE_TYPE])),
            )

    return asyncio.run(issue())


def load_schema(app: Any, principals: Principals) -> BaseSchema:
    """The app's schema, fetched in-process, with valid tokens for every request."""
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)

    class Tokens:
        """Valid tokens, which schemathesis leaves out when it tests a missing credential."""

        def get(self, case: AnyCase, context: AuthContext) -> str | None:
            return principals.acting(case).get("Authorization")

        def set(self, case: AnyCase, data: str, context: AuthContext) -> None:
            case.headers["Authorization"] = data

    # Not cached: the token depends on the operation (user or worker route).
    loaded.auth(refresh_interval=None)(Tokens)
    return loaded


@pytest.fixture(scope="module")
def fuzzed_app(fuzzed_url: str, principals: Principals) -> Iterator[Any]:
    """The app under test, opened by schemathesis (its lifespan runs on first request).

    The server's own loops are off: they run beside Hypothesis in this process, and a draw
    from the global ``random`` while it draws a case (the connection pool's jitter) is
    reported as a flaky strategy."""
    settings = Settings(
        reap_interval_seconds=0,
        schedule_interval_seconds=0,
        webhook_interval_seconds=0,
        retention_interval_seconds=0,
        sse_keepalive_seconds=0.1,
    )
    yield create_app(fuzzed_url, settings)
    shutdown_lifespans()


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: Any, principals: Principals) -> BaseSchema:
    return load_schema(fuzzed_app, principals)


def someone_else_gets_404(principals: Principals) -> Any:
    """The custom check: a job another principal reached stays unreachable for the others."""

    def check(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
        if not 200 <= response.status_code < 300 or "id" not in (case.path_parameters or {}):
            return None
        replay = case.call(headers=principals.someone_else(case), timeout=timeout(case))
        if replay.status_code != 404:
            raise AssertionError(
                f"{case.method} {case.path} with id {case.path_parameters['id']} answered "
                f"{replay.status_code} to another principal, not 404: {replay.text[:200]}"
            )
        return None

    return check


def stateful_checks() -> list[Any]:
    """What only a sequence of calls can show: a created job is there, a gone one stays gone."""
    names = ["use_after_free", "ensure_resource_availability"]
    return [getattr(schemathesis.checks, name) for name in names]


def checks() -> list[Any]:
    """Every built-in check but ``positive_data_acceptance``: a schema-valid request may
    still break a rule JSON Schema cannot state (printable ids, no NUL characters,
    the 256 KiB input limit), and the core rightly refuses it with 422."""
    names = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "ignored_auth",
    ]
    return [getattr(schemathesis.checks, name) for name in names]


def cases() -> list[tuple[GenerationMode, str, str]]:
    """``(mode, method, path)``: every operation with valid data, and those that take
    input with invalid data too (the schema needs no database)."""
    document = create_app("sqlite:///unused.db", Settings()).openapi()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            found.append((GenerationMode.POSITIVE, method.upper(), path))
            if operation.get("parameters") or operation.get("requestBody"):
                found.append((GenerationMode.NEGATIVE, method.upper(), path))
    return found


# schemathesis's own pytest integration (`from_fixture`) does not run on pytest 9 yet,
# so each operation's strategy is driven by Hypothesis directly.
@pytest.mark.parametrize(("mode", "method", "path"), cases())
def test_every_operation_conforms_to_its_schema(
    api_schema: BaseSchema, principals: Principals, mode: GenerationMode, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    extra = someone_else_gets_404(principals)

    @hypothesis.given(case=operation.as_strategy(mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case: AnyCase) -> None:
        response = case.call(timeout=timeout(case))
        case.validate_response(response, checks=checks(), additional_checks=[extra])

    conforms()


async def forget_every_job(url: str) -> None:
    """Cancel the acting user's active jobs and prune every finished one."""
    async with JobDesk.open(url) as desk:
        while active := await desk.get_user_jobs("alice", status=["pending", "processing"]):
            if not active.items:
                break
            for job in active.items:
                await desk.cancel_job(job.id, "alice")
        await desk.prune_finished(timedelta(0))


def test_linked_operations_conform_statefully(
    fuzzed_app: Any, principals: Principals, fuzzed_url: str
) -> None:
    linked = load_schema(fuzzed_app, principals)
    # Scenarios go deeper on valid data (the fuzzing above covers invalid data).
    linked.config.generation.update(modes=[GenerationMode.POSITIVE], allow_x00=False)
    base = linked.as_state_machine()
    extra = someone_else_gets_404(principals)

    class Workflow(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            # Each scenario starts from no jobs, so that Hypothesis, which replays the
            # start of earlier scenarios, sees the same answers again.
            asyncio.run(forget_every_job(fuzzed_url))

        def get_call_kwargs(self, case: AnyCase) -> dict[str, Any]:
            return {"timeout": timeout(case)}

        def validate_response(
            self, response: Response, case: AnyCase, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response,
                checks=[*checks(), *stateful_checks()],
                additional_checks=[extra],
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=8,
            deadline=None,
            database=None,
            # The database keeps what earlier scenarios did, so a scenario cannot be
            # replayed identically: report what generation finds, do not shrink it.
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )


# Datetimes at and past the calendar's ends, with the offsets that push them over:
# each must be a 201 or a 422 naming the field, never a 5xx.
DATETIME_EXTREMES = [
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999Z",
    "8999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "1900-01-01T00:00:00Z",
]


@pytest.mark.parametrize("run_at", DATETIME_EXTREMES)
def test_run_at_extremes_are_refused_or_kept_never_5xx(
    api_schema: BaseSchema, principals: Principals, run_at: str
) -> None:
    operation = api_schema["/api/v1/jobs"]["POST"]
    case = operation.Case(
        body={"type": "extract", "input": {}, "run_at": run_at}, headers=principals.user
    )
    response = case.call(timeout=TIMEOUT)
    case.validate_response(response, checks=checks())
    # 429: the fuzzing above may have filled alice's queue; what matters is no 5xx.
    assert response.status_code in {201, 422, 429}, response.text
    if response.status_code == 422:
        assert [error["field"] for error in response.json()["errors"]] == ["run_at"]


def test_every_problem_type_fits_the_schema_its_route_documents(
    api_schema: BaseSchema, principals: Principals, fuzzed_url: str
) -> None:
    """Fuzzing meets some problems by chance; here each type is provoked on a route that
    documents it, and schemathesis checks the answer against that route's schema."""

    async def limited_user() -> dict[str, str]:
        async with JobDesk.open(fuzzed_url) as desk:
            user_id = f"limited-{uuid.uuid4().hex[:8]}"
            await desk.set_user_limits(user_id, max_waiting=1)
            return bearer(await desk.create_user_token(user_id))

    limited = asyncio.run(limited_user())
    seen: dict[str, int] = {}
    names = ["status_code_conformance", "content_type_conformance", "response_schema_conformance"]
    documented = [getattr(schemathesis.checks, name) for name in names]

    def call(method: str, path: str, headers: dict[str, str], **parts: Any) -> Response:
        case = api_schema[path][method].Case(headers=headers, **parts)
        response = case.call(timeout=TIMEOUT)
        case.validate_response(response, checks=documented)
        if response.status_code >= 400:
            seen[response.json()["type"].removeprefix("urn:jobdesk:problem:")] = (
                response.status_code
            )
        return response

    user, worker = principals.user, principals.worker
    call("GET", "/api/v1/jobs", {"Authorization": "Bearer jdu_not-a-token"})
    call("GET", "/api/v1/jobs/{id}", user, path_parameters={"id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
    call("POST", "/api/v1/jobs", user, body={"type": "x", "input": {}, "priority": 5000})
    kind = f"problems-{uuid.uuid4().hex[:8]}"
    job = call("POST", "/api/v1/jobs", user, body={"type": kind, "input": {}}).json()
    call("POST", "/api/v1/jobs/{id}/retry", user, path_parameters={"id": job["id"]})
    [held] = call("POST", "/api/v1/worker/jobs/claim", worker, body={"types": [kind]}).json()
    call(
        "POST",
        "/api/v1/worker/jobs/{id}/complete",
        worker,
        path_parameters={"id": held["id"]},
        body={"attempt": held["attempt"] + 1},
    )
    for number in range(2):
        call("POST", "/api/v1/jobs", limited, body={"type": kind, "input": {"n": number}})
    assert seen == {
        "unauthorized": 401,
        "job-not-found": 404,
        "invalid-input": 422,
        "invalid-transition": 409,
        "lease-lost": 409,
        "rate-limited": 429,
    }
