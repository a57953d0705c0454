"""group.* webhook events, on each store: a group's status change (jobdesk.groups.summarize)
is written to the outbox in the transaction of the job change (or cancel) that made it,
once per change, and delivered signed like a job's, to the receiver that asked for it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import sqlite3
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi import FastAPI, Request

from jobdesk import JobDesk, JobSpec, Worker
from jobdesk.errors import JobdeskError
from jobdesk.groups import GroupStatus, summarize
from jobdesk.models import JobStatus
from jobdesk.webhooks import GROUP_EVENTS, JOB_EVENTS
from tests.acceptance.conftest import served
from tests.acceptance.test_webhooks import SECRET, Receiver, finish, receiver

__all__ = ["receiver"]  # the fixture, shared with test_webhooks

GROUP_ONLY = list(GROUP_EVENTS)


async def hook(desk: JobDesk, receiver: Receiver, events: list[str] | None = None) -> None:
    await desk.set_webhook(
        receiver.url,
        user_id="alice",
        secret=SECRET,
        events=events,
        allow_http=True,
        allow_private=True,
    )


async def group_of(desk: JobDesk, size: int) -> tuple[str, list[str]]:
    group = await desk.create_group("alice", [JobSpec("extract", {"n": n}) for n in range(size)])
    jobs = await desk.get_group_jobs(group.id, "alice")
    return group.id, [job.id for job in jobs]


async def fail(desk: JobDesk, worker: Worker, job_id: str) -> None:
    job = await desk.start_job(worker, job_id)
    await desk.fail_job(worker, job.id, "no", retryable=False, attempt=job.attempt)


def group_events(receiver: Receiver) -> list[tuple[str, str]]:
    return [
        (event["type"], event["data"]["group_id"])
        for event in receiver.events
        if event["type"].startswith("group.")
    ]


async def test_a_group_s_changes_are_delivered_as_group_events(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, GROUP_ONLY)
    group_id, jobs = await group_of(desk, 3)
    for job_id in jobs:
        await finish(desk, worker, job_id)
    assert await desk.deliver_webhooks() == 2
    assert group_events(receiver) == [("group.running", group_id), ("group.completed", group_id)]
    data = receiver.events[-1]["data"]
    assert (data["status"], data["group"]["status"], data["group"]["progress"]) == (
        "completed",
        "completed",
        100.0,
    )
    assert data["group"]["counts"]["completed"] == 3


async def test_the_group_event_is_in_the_outbox_as_the_last_job_finishes(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, ["group.completed", "group.partially_failed"])
    group_id, [first, second] = await group_of(desk, 2)
    await finish(desk, worker, first)
    assert await desk.get_webhook_deliveries() == []  # running: not asked for
    await fail(desk, worker, second)
    # No sender ran: the transition itself wrote it.
    [delivery] = await desk.get_webhook_deliveries(state="pending")
    assert (delivery.subject, delivery.event, delivery.job_id) == (
        "group",
        "group.partially_failed",
        group_id,
    )
    assert delivery.status is GroupStatus.PARTIALLY_FAILED


async def test_cancel_and_retry_of_a_group_are_announced(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, GROUP_ONLY)
    group_id, [first, second] = await group_of(desk, 2)
    await fail(desk, worker, first)
    await desk.cancel_group(group_id, "alice")
    await desk.retry_group(group_id, "alice")  # the failed one again; the cancelled stays
    await finish(desk, worker, first)
    assert (await desk.get_group(group_id, "alice")).status is GroupStatus.PARTIALLY_FAILED
    await desk.deliver_webhooks()
    assert [event for event, _ in group_events(receiver)] == [
        "group.running",
        "group.cancelled",
        "group.running",
        "group.partially_failed",
    ]
    assert second not in {event["data"].get("job_id") for event in receiver.events}


async def test_cancelling_a_finished_group_is_announced_by_the_cancel_itself(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, GROUP_ONLY)
    group_id, [job_id] = await group_of(desk, 1)
    await fail(desk, worker, job_id)
    await desk.cancel_group(group_id, "alice")  # no job changes: the mark does
    await desk.deliver_webhooks()
    assert [event for event, _ in group_events(receiver)] == [
        "group.running",
        "group.failed",
        "group.cancelled",
    ]


async def test_a_webhook_set_while_a_group_runs_counts_it_from_its_jobs(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    group_id, jobs = await group_of(desk, 3)
    await finish(desk, worker, jobs[0])
    started = await desk.start_job(worker, jobs[1])
    await hook(desk, receiver, GROUP_ONLY)
    await desk.complete_job(worker, started.id, None, attempt=started.attempt)
    await finish(desk, worker, jobs[2])
    await desk.deliver_webhooks()
    assert group_events(receiver) == [("group.running", group_id), ("group.completed", group_id)]


async def test_job_events_only_send_no_group_events(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, list(JOB_EVENTS))
    _, [job_id] = await group_of(desk, 1)
    await finish(desk, worker, job_id)
    await desk.deliver_webhooks()
    assert [event["type"] for event in receiver.events] == [
        "job.pending",
        "job.processing",
        "job.completed",
    ]
    [webhook] = await desk.get_webhooks()
    assert webhook.group_statuses == frozenset()


async def test_jobs_of_one_group_finishing_at_once_announce_it_once(
    open_desk: Any, desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, ["group.completed"])
    group_id, jobs = await group_of(desk, 8)  # all running at once: max_running is 10
    started = [await desk.start_job(worker, job_id) for job_id in jobs]

    async def complete(chunk: list[Any]) -> None:
        async with open_desk() as other:
            for job in chunk:
                await other.complete_job(worker, job.id, None, attempt=job.attempt)

    await asyncio.gather(*(complete(started[n::4]) for n in range(4)))
    deliveries = await desk.get_webhook_deliveries()
    assert [(d.event, d.job_id) for d in deliveries] == [("group.completed", group_id)]


#: every tally of up to 2 jobs per status, with and without the cancel mark
TALLIES = [
    (*counts, cancelled)
    for counts in itertools.product(range(3), repeat=5)
    for cancelled in (False, True)
]


def python_status(tally: tuple[int, ...]) -> str:
    *numbers, marked = tally
    statuses = (
        JobStatus.PENDING,
        JobStatus.PROCESSING,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    )
    counts = dict(zip(statuses, numbers, strict=True))
    return summarize(counts, 0.0, cancelled=bool(marked))[0].value


async def test_the_stores_sql_group_status_agrees_with_summarize(
    desk: JobDesk, store_url: str
) -> None:
    """jobdesk.group_status (PostgreSQL, migration 0013) and group_tally_status (SQLite,
    migration 10) restate jobdesk.groups.summarize: every tally gives the same status."""
    expected = [python_status(tally) for tally in TALLIES]
    if store_url.startswith("postgresql"):
        url = urlunsplit(urlsplit(store_url)._replace(query=""))
        async with await psycopg.AsyncConnection.connect(url) as connection:
            found = []
            for tally in TALLIES:
                cursor = await connection.execute(
                    "SELECT jobdesk.group_status(%s, %s, %s, %s, %s, %s)", tally
                )
                row = await cursor.fetchone()
                assert row is not None
                found.append(row[0])
    else:
        group = await desk.create_group("alice", [JobSpec("extract", {})])
        path = store_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as connection:
            found = []
            for *counts, marked in TALLIES:
                connection.execute(
                    "UPDATE groups SET tally_pending = ?, tally_processing = ?, "
                    "tally_completed = ?, tally_failed = ?, tally_cancelled = ?, "
                    "cancelled_at = ? WHERE id = ?",
                    (*counts, "2026-01-01T00:00:00.000000Z" if marked else None, group.id),
                )
                [status] = connection.execute(
                    "SELECT status FROM group_tally_status WHERE id = ?", (group.id,)
                ).fetchone()
                found.append(status)
    assert found == expected
    assert set(expected) == {status.value for status in GroupStatus}


async def test_a_sender_stopped_mid_batch_records_what_it_sent(
    desk: JobDesk, worker: Worker
) -> None:
    """Cancelled while a send hangs: the sends already answered are recorded (not sent
    again), the one cut short stays pending for the next sender."""
    hanging, release = asyncio.Event(), asyncio.Event()
    app = FastAPI()

    @app.post("/hook")
    async def receive(request: Request) -> dict[str, bool]:
        if json.loads(await request.body())["type"] == "job.processing":
            hanging.set()
            await release.wait()  # no answer until the sender has gone
        return {"ok": True}

    async with served(app) as url:
        await desk.set_webhook(
            f"{url}/hook",
            user_id="alice",
            secret=SECRET,
            events=["job.pending", "job.processing"],
            allow_http=True,
            allow_private=True,
        )
        job = await desk.create_job("alice", "extract", {})
        await desk.start_job(worker, job.id)
        # One job's deliveries go in order: pending answered, then processing hangs.
        sender = asyncio.create_task(desk.deliver_webhooks())
        async with asyncio.timeout(10):
            await hanging.wait()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        release.set()
    [delivered] = await desk.get_webhook_deliveries(state="delivered")
    assert (delivered.event, delivered.tries) == ("job.pending", 1)
    [cut_short] = await desk.get_webhook_deliveries(state="pending")
    assert (cut_short.event, cut_short.tries) == ("job.processing", 0)


@pytest.mark.parametrize("seed", [18, 7, 2026])
async def test_the_last_group_event_is_always_the_group_s_status(
    desk: JobDesk, worker: Worker, seed: int
) -> None:
    """A script of starts, completions, failures, cancels and retries of a group's jobs
    (and of the group; a retried job brings a finished group back): after each step, the
    group's last announced status is the one get_group derives from its jobs (the
    triggers' tally never drifts from summarize)."""
    await desk.set_webhook(
        "http://127.0.0.1:9/hook",
        user_id="alice",
        events=list(GROUP_EVENTS),
        allow_http=True,
        allow_private=True,
    )
    group_id, jobs = await group_of(desk, 3)
    chooser = random.Random(seed)
    seen: set[GroupStatus] = set()
    steps = ["start", "start", "complete", "complete", "fail", "retry", "retry", "cancel"]
    for _ in range(120):
        step = chooser.choice([*steps, "retry_group"])
        job_id = chooser.choice(jobs)
        job = await desk.get_job_status(job_id, "alice")
        with contextlib.suppress(JobdeskError):
            if step == "start" and job.status is JobStatus.PENDING:
                await desk.start_job(worker, job_id)
            elif step in ("complete", "fail") and job.status is JobStatus.PROCESSING:
                if step == "complete":
                    await desk.complete_job(worker, job_id, None, attempt=job.attempt)
                else:
                    await desk.fail_job(
                        worker, job_id, "no", retryable=chooser.random() < 0.5, attempt=job.attempt
                    )
            elif step == "retry" and job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
                await desk.retry_job(job_id, "alice")
            elif step == "cancel":
                await (
                    desk.cancel_group(group_id, "alice")
                    if chooser.random() < 0.1
                    else desk.cancel_job(job_id, "alice")
                )
            elif step == "retry_group":
                await desk.retry_group(group_id, "alice")
        announced = [d for d in await desk.get_webhook_deliveries() if d.subject == "group"]
        last = announced[0].status if announced else GroupStatus.PENDING
        assert last == (await desk.get_group(group_id, "alice")).status
        seen.add(GroupStatus(last))
    assert len(seen) >= 3  # the script went through several statuses
