"""A remote worker end to end, on each store: ``jobdesk serve`` in one process,
``jobdesk worker --server URL`` in another with only a worker token.

A job created over HTTP runs in the worker process, its progress shows in the
job's event stream as it happens, and it ends completed. SIGTERM hands a
running job back through the server.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobdesk import JobStatus
from jobdesk.sync import JobDesk as SyncJobDesk
from tests.processes import Processes, free_port, running

APP = "examples.character_extraction.jobs:registry"
DEADLINE = 30.0
#: the server's lease (``jobdesk serve --lease-seconds``): remote workers' jobs get it
LEASE_SECONDS = 20.0


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running(tmp_path, DEADLINE)


@pytest.fixture
def server(store_url: str, processes: Processes) -> str:
    """``jobdesk serve`` on the test's database; its base URL once it answers."""
    with SyncJobDesk.open(store_url):
        pass  # migrated before the server starts
    port = free_port()
    child = processes.start(
        "serve", [sys.executable, "-m", "jobdesk", "serve", "--db", store_url,
                  "--port", str(port), "--log-level", "warning",
                  "--lease-seconds", str(LEASE_SECONDS), "--max-waiting", "3"],
        JOBDESK_REAP_INTERVAL_SECONDS="0.5",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert child.poll() is None, processes.logs()
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("jobdesk serve did not start:\n" + processes.logs())


def start_worker(processes: Processes, server: str, token: str, *options: str) -> None:
    processes.start(
        "worker", [sys.executable, "-m", "jobdesk", "worker", "--app", APP, "--server", server,
                   "--poll-interval", "5", *options],
        JOBDESK_WORKER_TOKEN=token,
    )  # fmt: skip


def test_a_job_created_over_http_runs_in_a_remote_worker_with_live_progress(
    store_url: str, server: str, processes: Processes
) -> None:
    with SyncJobDesk.open(store_url) as desk:
        worker_token = desk.create_worker_token("remote-worker")
        user = {"Authorization": f"Bearer {desk.create_user_token('alice')}"}
    start_worker(processes, server, worker_token, "--concurrency", "2")
    body = {
        "type": "character_extraction",
        "input": {"episode_ids": ["e1", "e2", "e3", "e4"], "seconds_per_episode": 0.2},
    }
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=server, headers=user, timeout=DEADLINE) as client:
        created = client.post("/api/v1/jobs", json=body)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        final = client.get(f"/api/v1/jobs/{job_id}").json()

    assert events, processes.logs()
    running = [event for event in events if event["status"] == "processing"]
    progress = [event["progress"] for event in running]
    assert {25.0, 50.0, 75.0} <= set(progress), events  # seen live, while it ran
    assert progress == sorted(progress)
    assert events[-1]["status"] == "completed"
    assert final["status"] == "completed"
    assert final["worker_id"] == "remote-worker"
    assert final["attempt"] == 1
    assert set(final["result"]["by_episode"]) == {"e1", "e2", "e3", "e4"}


def test_sigterm_hands_a_remote_workers_job_back_through_the_server(
    store_url: str, server: str, processes: Processes
) -> None:
    with SyncJobDesk.open(store_url) as desk:
        worker_token = desk.create_worker_token("remote-worker")
        job = desk.create_job(
            "alice",
            "character_extraction",
            {"episode_ids": [f"e{n}" for n in range(100)], "seconds_per_episode": 0.2},
        )
        start_worker(processes, server, worker_token, "--grace", "0.5")
        deadline = time.monotonic() + DEADLINE
        while (running := desk.get_job_status(job.id, "alice")).progress == 0:
            assert time.monotonic() < deadline, processes.logs()
            time.sleep(0.05)
        assert running.lease_expires_at is not None
        lease = (running.lease_expires_at - running.updated_at).total_seconds()
        assert lease == pytest.approx(LEASE_SECONDS, abs=0.5)  # the server's, not the default
        worker, _ = processes.started[-1]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=DEADLINE) == 0, processes.logs()
        back = desk.get_job_status(job.id, "alice")

    assert back.status is JobStatus.PENDING, processes.logs()
    assert back.attempt == 1
    assert back.attempts_left == back.max_attempts
    assert back.worker_id is None
    assert back.finished_at is None


def test_the_servers_default_limits_are_its_options(store_url: str, server: str) -> None:
    with SyncJobDesk.open(store_url) as desk:
        user = {"Authorization": f"Bearer {desk.create_user_token('bob')}"}
    body = {"type": "character_extraction", "input": {"episode_ids": ["e1"]}}
    with httpx.Client(base_url=server, headers=user, timeout=DEADLINE) as client:
        answers = [client.post("/api/v1/jobs", json=body) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [201, 201, 201, 429]
    assert (answers[-1].json()["limit"], answers[-1].json()["allowed"]) == ("waiting", 3)
    # jobdesk serve --max-waiting 3
