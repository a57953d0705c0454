"""``jobdesk worker`` as real processes on each store: kill -9, SIGTERM, SIGSTOP.

Each test runs the example app's ``character_extraction`` handler in worker
subprocesses with a short lease (1.5 s) and looks at the database, polling for a
state with a deadline; nothing waits on a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobdesk import Job, JobStatus
from jobdesk.sync import JobDesk as SyncJobDesk
from tests.processes import DEADLINE, REPOSITORY, wait_for

APP = "examples.character_extraction.jobs:registry"
LEASE_SECONDS = 1.5
REAP_INTERVAL = 0.3
USER = "user-1"


@dataclass
class WorkerProcess:
    """A ``jobdesk worker`` subprocess and the file its log goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    def exit_code(self, within: float = DEADLINE) -> int:
        return self.process.wait(timeout=within)


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def db(store_url: str) -> Iterator[SyncJobDesk]:
    """The test's own desk on the workers' database (the real clock, as theirs)."""
    with SyncJobDesk.open(store_url) as desk:
        yield desk


@pytest.fixture
def start_worker(store_url: str, db: SyncJobDesk, tmp_path: Path) -> Iterator[StartWorker]:
    """Start ``jobdesk worker`` subprocesses, each with a worker token of its own."""
    started: list[WorkerProcess] = []

    def start(name: str, *options: str, app: str = APP) -> WorkerProcess:
        token = db.create_worker_token(name)
        log = tmp_path / f"{name}.log"
        command = [
            sys.executable, "-m", "jobdesk", "worker", "--app", app, "--db", store_url,
            "--lease-seconds", str(LEASE_SECONDS), "--retry-backoff", "0.1",
            "--poll-interval", "0.2", "--reap-interval", str(REAP_INTERVAL), *options,
        ]  # fmt: skip
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env={**os.environ, "JOBDESK_WORKER_TOKEN": token},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(name, process, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=DEADLINE)


def new_job(db: SyncJobDesk, episodes: int, seconds_per_episode: float) -> Job:
    episode_ids = [f"ep-{n}" for n in range(episodes)]
    job_input: dict[str, Any] = {
        "episode_ids": episode_ids,
        "seconds_per_episode": seconds_per_episode,
    }
    return db.create_job(USER, "character_extraction", job_input)


def job_when(db: SyncJobDesk, job: Job, test: Callable[[Job], bool]) -> Callable[[], Job | None]:
    """A reader for :func:`wait_for`: the job once ``test`` holds for it."""

    def read() -> Job | None:
        now = db.get_job_status(job.id, USER)
        return now if test(now) else None

    return read


def running_under(name: str) -> Callable[[Job], bool]:
    """The job is processing under worker ``name`` and has reported progress."""
    return lambda job: (
        job.status is JobStatus.PROCESSING and job.worker_id == name and job.progress > 0
    )


def is_finished(job: Job) -> bool:
    return job.status.is_finished


def completions(db: SyncJobDesk, job: Job) -> int:
    history = db.get_job_history(job.id, USER)
    return [event.status for event in history].count(JobStatus.COMPLETED)


def test_a_killed_worker_s_job_is_finished_by_another_after_its_lease(
    db: SyncJobDesk,
    start_worker: StartWorker,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    job = new_job(db, episodes=8, seconds_per_episode=0.1)
    first = start_worker("first")
    wait_for(job_when(db, job, running_under("first")))
    second = start_worker("second")

    first.process.kill()  # SIGKILL: no hand-back, no goodbye
    killed_at = time.monotonic()
    first.exit_code()
    done = wait_for(job_when(db, job, is_finished))
    recovery = time.monotonic() - killed_at

    with capsys.disabled():
        print(f"\nkill -9 recovery: job {job.id} completed {recovery:.2f} s after the kill")
    record_property("recovery_seconds", round(recovery, 2))
    assert (done.status, done.worker_id, done.attempt) == (JobStatus.COMPLETED, "second", 2)
    assert sorted(done.result["characters"]) == done.result["characters"]
    assert completions(db, job) == 1
    history = db.get_job_history(job.id, USER)
    assert [(event.status, event.worker_id) for event in history] == [
        (JobStatus.PENDING, None),
        (JobStatus.PROCESSING, "first"),
        (JobStatus.PENDING, None),  # the reaper, after the lease
        (JobStatus.PROCESSING, "second"),
        (JobStatus.COMPLETED, "second"),
    ]
    assert history[2].error is not None
    assert history[2].error["code"] == "lease_expired"
    # The lease, a reap, the backoff and the 0.8 s of work, with room for a slow machine.
    assert recovery < LEASE_SECONDS + REAP_INTERVAL + 0.8 + 10
    second.signal(signal.SIGTERM)
    assert second.exit_code() == 0


def test_on_sigterm_a_running_job_finishes_within_the_grace(
    db: SyncJobDesk, start_worker: StartWorker
) -> None:
    job = new_job(db, episodes=5, seconds_per_episode=0.2)
    queued = new_job(db, episodes=1, seconds_per_episode=0.1)
    worker = start_worker("only", "--grace", "20")
    wait_for(job_when(db, job, running_under("only")))

    worker.signal(signal.SIGTERM)

    assert worker.exit_code() == 0
    done = db.get_job_status(job.id, USER)
    assert (done.status, done.worker_id, done.attempt) == (JobStatus.COMPLETED, "only", 1)
    assert completions(db, job) == 1
    assert db.get_job_status(queued.id, USER).status is JobStatus.PENDING  # not claimed
    assert "SIGTERM" in worker.log_text()


@pytest.mark.parametrize("signals", [1, 2], ids=["grace-runs-out", "second-signal"])
def test_on_sigterm_a_job_that_outlasts_the_grace_is_handed_back_and_runs_once_more(
    db: SyncJobDesk, start_worker: StartWorker, signals: int
) -> None:
    job = new_job(db, episodes=10, seconds_per_episode=0.1)
    # With a second signal the grace is long: only the second signal can end it early.
    grace = "0.3" if signals == 1 else "600"
    first = start_worker("first", "--grace", grace)
    wait_for(job_when(db, job, running_under("first")))

    first.signal(signal.SIGTERM)
    if signals == 2:
        wait_for(lambda: "SIGTERM: no new jobs" in first.log_text() or None)
        first.signal(signal.SIGTERM)
    assert first.exit_code() == 0

    released = db.get_job_status(job.id, USER)
    assert (released.status, released.worker_id, released.attempt) == (
        JobStatus.PENDING,
        None,
        1,
    )
    assert released.attempts_left == released.max_attempts  # the attempt was not spent
    start_worker("second")
    done = wait_for(job_when(db, job, is_finished))
    assert (done.status, done.worker_id, done.attempt) == (JobStatus.COMPLETED, "second", 2)
    assert completions(db, job) == 1
    history = [(event.status, event.worker_id) for event in db.get_job_history(job.id, USER)]
    assert history == [
        (JobStatus.PENDING, None),
        (JobStatus.PROCESSING, "first"),
        (JobStatus.PENDING, None),  # handed back
        (JobStatus.PROCESSING, "second"),
        (JobStatus.COMPLETED, "second"),
    ]


def test_a_stale_worker_cannot_overwrite_the_attempt_that_replaced_it(
    db: SyncJobDesk, start_worker: StartWorker
) -> None:
    job = new_job(db, episodes=3, seconds_per_episode=0.4)
    # The stale worker reaps only at its start: paused inside a reap it would hold
    # SQLite's write lock. It is paused just after a progress report, between writes.
    stale = start_worker("stale", "--reap-interval", "3600")
    wait_for(job_when(db, job, running_under("stale")))
    stale.signal(signal.SIGSTOP)
    try:
        start_worker("fresh")
        wait_for(job_when(db, job, lambda now: now.attempt == 2))
        done = wait_for(job_when(db, job, is_finished))
    finally:
        stale.signal(signal.SIGCONT)

    # Back from its pause, the stale worker's next write is refused and it drops its work.
    wait_for(lambda: "lease lost" in stale.log_text() or None)
    stale.signal(signal.SIGTERM)
    assert stale.exit_code() == 0
    after = db.get_job_status(job.id, USER)
    assert (after.status, after.worker_id, after.attempt) == (JobStatus.COMPLETED, "fresh", 2)
    assert (after.result, after.progress, after.updated_at) == (
        done.result,
        done.progress,
        done.updated_at,
    )
    assert completions(db, job) == 1


STUBBORN_APP = """
import asyncio
from jobdesk.worker import Registry

registry = Registry()

@registry.handler("stubborn")
async def stubborn(ctx, payload):
    while True:  # swallows every cancellation: a handler must not do this
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
"""


def test_a_handler_that_swallows_cancellation_does_not_keep_the_worker_from_exiting(
    db: SyncJobDesk, start_worker: StartWorker, tmp_path: Path
) -> None:
    (tmp_path / "stubborn_app.py").write_text(STUBBORN_APP, encoding="utf-8")
    job = db.create_job(USER, "stubborn", {})
    worker = start_worker(
        "stubborn", "--grace", "600", "--app-dir", str(tmp_path), app="stubborn_app:registry"
    )
    wait_for(job_when(db, job, lambda now: now.status is JobStatus.PROCESSING))

    worker.signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM: no new jobs" in worker.log_text() or None)
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)

    assert worker.exit_code(within=15) == 0
    exited_after = time.monotonic() - signalled
    print(f"stubborn handler: the worker exited {exited_after:.2f} s after the second signal")
    assert "abandoning it" in worker.log_text()
    released = db.get_job_status(job.id, USER)
    assert (released.status, released.worker_id) == (JobStatus.PENDING, None)
    assert released.attempts_left == released.max_attempts
