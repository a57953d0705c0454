"""Registering handlers and configuring a worker: every mistake names its field.

These need no database, except to make a transport for the worker checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jobdesk import Job, JobDesk
from jobdesk.errors import InvalidInput, StoreUnavailable
from jobdesk.worker import DeskTransport, JobContext, Registry, SyncJobContext, WorkerRuntime


async def handle(ctx: JobContext, payload: Any) -> None:
    return None


def handle_blocking(ctx: SyncJobContext, payload: Any) -> None:
    return None


class CallableHandler:
    async def __call__(self, ctx: JobContext, payload: Any) -> None:
        return None


def test_a_registry_knows_its_types_and_how_to_run_each_handler() -> None:
    registry = Registry()
    registry.handler("character_extraction", timeout=600, max_attempts=3)(handle)
    registry.add("summary", handle_blocking)
    registry.add("callable", CallableHandler())

    assert registry.types == {"character_extraction", "summary", "callable"}
    assert "summary" in registry
    assert len(registry) == 3
    extraction = registry.get("character_extraction")
    assert (extraction.is_async, extraction.timeout, extraction.max_attempts) == (True, 600, 3)
    assert registry.get("summary").is_async is False
    assert registry.get("callable").is_async is True
    assert [handler.type for handler in registry] == ["character_extraction", "summary", "callable"]


def test_the_decorator_returns_the_function_unchanged() -> None:
    registry = Registry()
    assert registry.handler("demo")(handle) is handle


@pytest.mark.parametrize(
    ("job_type", "options", "field"),
    [
        ("Not A Type", {}, "type"),
        ("demo", {"timeout": 0}, "timeout"),
        ("demo", {"timeout": float("inf")}, "timeout"),
        ("demo", {"timeout": True}, "timeout"),
        ("demo", {"max_attempts": 0}, "max_attempts"),
        ("demo", {"max_attempts": 101}, "max_attempts"),
    ],
)
def test_a_bad_registration_is_refused_naming_the_field(
    job_type: str, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        Registry().add(job_type, handle, **options)
    assert refused.value.field == field


def test_a_type_is_registered_once_and_a_handler_must_be_callable() -> None:
    registry = Registry()
    registry.add("demo", handle)
    with pytest.raises(InvalidInput, match="already registered") as twice:
        registry.add("demo", handle)
    assert twice.value.field == "type"
    with pytest.raises(InvalidInput) as not_callable:
        registry.add("other", "handle")  # type: ignore[arg-type]
    assert not_callable.value.field == "handler"


@pytest.fixture
async def transport(tmp_path: Path) -> AsyncIterator[DeskTransport]:
    async with JobDesk.open(f"sqlite:///{tmp_path / 'jobdesk.db'}") as desk:
        yield await DeskTransport.connect(desk, await desk.create_worker_token("w"))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"types": ["unknown"]}, "types"),
        ({"types": []}, "types"),
        ({"concurrency": 0}, "concurrency"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"grace": -1}, "grace"),
        ({"cancel_grace": float("nan")}, "cancel_grace"),
        ({"reap_interval": "soon"}, "reap_interval"),
    ],
)
async def test_a_bad_worker_option_is_refused_naming_it(
    transport: DeskTransport, options: dict[str, Any], field: str
) -> None:
    registry = Registry()
    registry.add("demo", handle)
    with pytest.raises(InvalidInput) as refused:
        WorkerRuntime(registry, transport, **options)
    assert refused.value.field == field


async def test_a_worker_needs_a_registry_with_handlers(transport: DeskTransport) -> None:
    with pytest.raises(InvalidInput) as empty:
        WorkerRuntime(Registry(), transport)
    assert empty.value.field == "registry"
    with pytest.raises(InvalidInput) as wrong:
        WorkerRuntime({"demo": handle}, transport)  # type: ignore[arg-type]
    assert wrong.value.field == "registry"


async def test_a_worker_runs_once(transport: DeskTransport) -> None:
    registry = Registry()
    registry.add("demo", handle)
    worker = WorkerRuntime(registry, transport)
    await worker.run(until_empty=True)
    with pytest.raises(RuntimeError, match="runs once"):
        await worker.run(until_empty=True)


class UnreadableQueue(DeskTransport):
    """A transport whose claims fail as a locked or unreachable database makes them."""

    async def claim(self, types: frozenset[str], limit: int) -> list[Job]:
        raise StoreUnavailable("the database is locked")


async def test_drain_mode_raises_when_the_queue_cannot_be_read(
    transport: DeskTransport,
) -> None:
    registry = Registry()
    registry.add("demo", handle)
    unreadable = UnreadableQueue(transport.desk, transport.worker)
    with pytest.raises(StoreUnavailable, match="locked"):
        await WorkerRuntime(registry, unreadable).run(until_empty=True)
