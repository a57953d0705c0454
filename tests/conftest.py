"""Shared fixtures.

``store_url`` is parametrised over every real store, so a test that uses
``desk`` (or ``open_desk``) runs once per store: adding a store adds a
parameter here and nothing else. There is no fake store: SQLite is the fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobdesk import JobDesk, Limits, Worker
from jobdesk.testing import ManualClock

STORES = ["sqlite"]

OpenDesk = Callable[..., AbstractAsyncContextManager[JobDesk]]


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test advances it."""
    return ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each store kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobdesk.db'}"
    else:  # pragma: no cover - every kind is listed above
        raise AssertionError(request.param)


@pytest.fixture
def open_desk(store_url: str, clock: ManualClock) -> OpenDesk:
    """Open another desk (another connection) on the test's database: ``async with open_desk():``."""

    def opener(limits: Limits | None = None, **options: object) -> AbstractAsyncContextManager[JobDesk]:
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
