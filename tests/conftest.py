"""Shared fixtures.

``store_url`` is parametrised over every real store, so a test that uses
``desk`` (or ``open_desk``) runs once per store: adding a store adds a
parameter here and nothing else. There is no fake store: SQLite is the fake.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from jobdesk import JobDesk, Limits, Worker
from jobdesk.testing import ManualClock

STORES = ["sqlite", "postgres"]
POSTGRES_URL_VARIABLE = "JOBDESK_TEST_POSTGRES_URL"

OpenDesk = Callable[..., AbstractAsyncContextManager[JobDesk]]


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test advances it."""
    return ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database replaced by ``database``."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a PostgreSQL server the tests may create databases on.

    From ``JOBDESK_TEST_POSTGRES_URL``. Without it the PostgreSQL tests are skipped,
    except under CI (``CI=true``), where a missing or unreachable server fails them.
    """
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not url:
        if in_ci:
            pytest.fail(f"{POSTGRES_URL_VARIABLE} must be set in CI")
        pytest.skip(f"set {POSTGRES_URL_VARIABLE} to run the PostgreSQL tests")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        if in_ci:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL_VARIABLE} is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    return url


def _admin(server_url: str, statement: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(statement)  # names are ours, never input


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[str]:
    """A database migrated once per test session, copied for each test."""
    template = f"jobdesk_template_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server, f"CREATE DATABASE {template}")

    async def migrate() -> None:
        async with JobDesk.open(database_url(postgres_server, template)):
            pass

    asyncio.run(migrate())
    yield template
    _admin(postgres_server, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")


@pytest.fixture(scope="module")
def postgres_module_database(postgres_server: str, postgres_template: str) -> Iterator[str]:
    """A database for one test module, copied from the migrated template."""
    database = f"jobdesk_test_{uuid.uuid4().hex[:12]}"
    _admin(
        postgres_server,
        f"CREATE DATABASE {database} TEMPLATE {postgres_template} STRATEGY FILE_COPY",
    )
    yield database
    _admin(postgres_server, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_server: str, postgres_module_database: str) -> str:
    """The module's database, emptied for this test (faster than a database per test)."""
    url = database_url(postgres_server, postgres_module_database)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE jobdesk.jobs, jobdesk.job_events, jobdesk.users, jobdesk.tokens, "
            "jobdesk.type_limits, jobdesk.schedules RESTART IDENTITY"
        )
        connection.execute(
            "TRUNCATE jobdesk.groups, jobdesk.group_jobs, jobdesk.webhooks, "
            "jobdesk.webhook_outbox RESTART IDENTITY"
        )
        connection.execute(
            "UPDATE jobdesk.retention_runs SET holder = NULL, held_until = NULL, "
            "last_started_at = NULL, last_finished_at = NULL, last_deleted = NULL"
        )
        # With no webhook left, the outbox trigger is off again (as remove_webhook leaves it).
        connection.execute("ALTER TABLE jobdesk.job_events DISABLE TRIGGER job_events_to_webhooks")
        connection.execute(
            "ALTER TABLE jobdesk.job_events DISABLE TRIGGER job_events_to_group_webhooks"
        )
        connection.execute("ALTER TABLE jobdesk.groups DISABLE TRIGGER group_cancel_to_webhooks")
    return url + "?pool_max=4"


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each store kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobdesk.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_desk(store_url: str, clock: ManualClock) -> OpenDesk:
    """Another desk (another connection) on the test's database: ``async with open_desk():``."""

    def opener(
        limits: Limits | None = None, **options: object
    ) -> AbstractAsyncContextManager[JobDesk]:
        return JobDesk.open(store_url, limits=limits, clock=clock, **options)  # type: ignore[arg-type]

    return opener


@pytest.fixture
async def desk(open_desk: OpenDesk) -> AsyncIterator[JobDesk]:
    """A desk with default limits on a fresh database, on the test's manual clock."""
    async with open_desk() as opened:
        yield opened


@pytest.fixture
async def worker(desk: JobDesk) -> Worker:
    """A worker allowed every job type."""
    return await desk.verify_worker_token(await desk.create_worker_token("worker-1"))
