"""Webhooks with real processes on each store: a sender killed with SIGKILL mid-batch, a
receiver that is down, answers 500 or too late; and ``jobdesk worker`` as the sender.

The receiver is ``webhook_sink.py`` in a process of its own (it checks signatures and
records every arrival); the senders are ``jobdesk webhooks deliver --forever`` and
``jobdesk worker --db`` processes. Every delivery in the outbox must arrive answered 200
(lost = 0); an id may arrive more than once (at least once: the killed sender's claimed
batch, a send the sender gave up on), always with the same event, so a receiver dedupes
on ``webhook-id``; and one job's events arrive in order. Waits poll the database or the
sink's log with a deadline; nothing sleeps a fixed time to let something happen.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobdesk import JobSpec
from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.webhooks import GROUP_EVENTS, new_secret
from tests.processes import REPOSITORY, Processes, free_port, running, wait_for

SINK = REPOSITORY / "tests" / "acceptance" / "webhook_sink.py"
SECRET = new_secret()
#: how long a test waits for a state before it fails (a bound, not a sleep): a delivery
#: that failed twice waits 5 + 30 s (jobdesk.webhooks.BACKOFF_SECONDS)
DEADLINE = 90.0


def arrivals(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def start_sink(processes: Processes, port: int, log: Path, *faults: str) -> subprocess.Popen[bytes]:
    """The receiver, once it listens on ``port``."""
    command = [sys.executable, str(SINK), "--port", str(port), "--secret", SECRET,
               "--log", str(log), *faults]  # fmt: skip
    sink = processes.start("sink", command)

    def listening() -> bool | None:
        with socket.socket() as probe:
            return True if probe.connect_ex(("127.0.0.1", port)) == 0 else None

    wait_for(listening, DEADLINE)
    return sink


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running(tmp_path)


@pytest.fixture
def db(store_url: str) -> Iterator[SyncJobDesk]:
    """The test's own desk on the processes' database (the real clock, as theirs)."""
    with SyncJobDesk.open(store_url) as desk:
        yield desk


def hook(db: SyncJobDesk, port: int, events: list[str]) -> None:
    db.set_webhook(
        f"http://127.0.0.1:{port}/hook",
        user_id="alice",
        secret=SECRET,
        events=events,
        allow_http=True,
        allow_private=True,
    )


def check_every_delivery_arrived(db: SyncJobDesk, log: Path) -> list[dict[str, Any]]:
    """Lost = 0, duplicates the same event, and each subject's events in order."""
    outbox = db.get_webhook_deliveries(limit=1000)
    assert {delivery.state for delivery in outbox} == {"delivered"}
    received = [arrival for arrival in arrivals(log) if arrival["answer"] == 200]
    assert {arrival["id"] for arrival in received} == {f"msg_{d.id}" for d in outbox}
    by_id: dict[str, set[tuple[str, str]]] = {}
    for arrival in received:
        by_id.setdefault(arrival["id"], set()).add((arrival["type"], arrival["subject"]))
    assert all(len(events) == 1 for events in by_id.values())  # a duplicate is the same event
    first: dict[str, dict[str, Any]] = {}
    for arrival in received:
        first.setdefault(arrival["id"], arrival)
    for delivery in outbox:
        later = [d for d in outbox if d.job_id == delivery.job_id and int(d.id) > int(delivery.id)]
        for after in later:
            mine, theirs = first[f"msg_{delivery.id}"], first[f"msg_{after.id}"]
            assert mine["received"] <= theirs["received"]
    return received


def test_no_delivery_is_lost_to_a_killed_sender_outages_500s_or_timeouts(
    store_url: str, db: SyncJobDesk, processes: Processes, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "sink.jsonl"
    hook(db, port, ["job.pending", "job.cancelled", "group.cancelled"])
    group = db.create_group("alice", [JobSpec("extract", {"n": n}) for n in range(60)])
    db.cancel_group(group.id, "alice")
    expected = 60 + 60 + 1
    assert len(db.get_webhook_deliveries(limit=1000)) == expected
    sender = [sys.executable, "-m", "jobdesk", "webhooks", "deliver", "--forever",
              "--db", store_url, "--interval", "0.05", "--concurrency", "8",
              "--send-timeout", "0.5", "--lease-seconds", "3"]  # fmt: skip
    first = processes.start("sender-1", sender)
    # The receiver is down: the sender's first sends fail (connection refused).
    wait_for(
        lambda: (
            True
            if any(d.tries for d in db.get_webhook_deliveries(state="pending", limit=1000))
            else None
        ),
        DEADLINE,
    )
    start_sink(processes, port, log, "--fail-every", "7", "--stall-every", "13",
               "--stall-seconds", "1.0", "--delay-seconds", "0.02")  # fmt: skip
    # Mid-batch (100 claimed at once, 8 in flight): SIGKILL.
    wait_for(lambda: True if len(arrivals(log)) >= 20 else None, DEADLINE)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    processes.start("sender-2", sender)
    wait_for(
        lambda: (
            True
            if all(d.state == "delivered" for d in db.get_webhook_deliveries(limit=1000))
            else None
        ),
        DEADLINE,
    )
    received = check_every_delivery_arrived(db, log)
    assert len({arrival["id"] for arrival in received}) == expected
    everything = arrivals(log)
    assert any(arrival["answer"] == 500 for arrival in everything)  # the faults happened
    assert any(arrival["answer"] == 504 for arrival in everything)


def test_jobdesk_worker_on_the_database_sends_deliveries(
    store_url: str, db: SyncJobDesk, processes: Processes, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "sink.jsonl"
    start_sink(processes, port, log)
    hook(db, port, ["job.completed", *GROUP_EVENTS])
    group = db.create_group(
        "alice",
        [
            JobSpec("character_extraction", {"episode_ids": ["e1"], "seconds_per_episode": 0})
            for _ in range(3)
        ],
    )
    token = db.create_worker_token("worker-1")
    processes.start(
        "worker",
        [
            sys.executable,
            "-m",
            "jobdesk",
            "worker",
            "--app",
            "examples.character_extraction.jobs:registry",
            "--db",
            store_url,
            "--poll-interval",
            "0.1",
            "--webhook-interval",
            "0.1",
        ],
        JOBDESK_WORKER_TOKEN=token,
    )

    def finished() -> list[str] | None:
        types = [arrival["type"] for arrival in arrivals(log) if arrival["answer"] == 200]
        return types if "group.completed" in types and types.count("job.completed") == 3 else None

    types = wait_for(finished, DEADLINE)
    assert sorted(types) == ["group.completed", "group.running", *["job.completed"] * 3]
    assert all(arrival["subject"] for arrival in arrivals(log))
    check_every_delivery_arrived(db, log)
    assert db.get_group(group.id, "alice").status.value == "completed"
