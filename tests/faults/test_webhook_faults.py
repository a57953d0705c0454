"""Webhooks under faults, on each store: nothing lost, duplicates only as at-least-once allows.

While transitions go on (groups of jobs made, every other one cancelled: ``job.pending``,
``job.cancelled`` and ``group.cancelled`` deliveries), two senders (``jobdesk webhooks
deliver --forever``) send to a receiver process (tests/acceptance/webhook_sink.py) that
answers 500 to the first arrival of one id in 7 and too late (past the senders' timeout)
to one in 13. A fault every few seconds, in turn: SIGKILL of a sender mid-batch (started
again), the receiver killed and down for a few seconds (an outage), and on PostgreSQL a
crash of the server (``restart_postgres``, unless ``JOBDESK_FAULTS`` leaves it out, to
spare a shared server). Then every delivery in the outbox must have arrived answered 200,
each id's arrivals the same event, and each job's first arrivals in order.

The standalone twin that is safe on a shared machine (no database restart), and quick
enough for ``make test``, is tests/acceptance/test_webhook_crash.py; this one is ``long``:
``make faults`` runs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from jobdesk import JobSpec
from jobdesk.errors import JobdeskError
from jobdesk.sync import JobDesk as SyncJobDesk
from tests.acceptance.test_webhook_crash import (
    check_every_delivery_arrived,
    db,
    hook,
    processes,
    start_sink,
)
from tests.faults.cluster import restart_postgres
from tests.processes import Processes, free_port, wait_for

__all__ = ["db", "processes"]  # the fixtures, shared with test_webhook_crash

#: how long the faults go on, and the pause between two
DURATION = 60.0
INTERVAL = 4.0
#: a delivery hit by a fault at each of its first tries waits 5 + 30 + 120 s
DRAIN_DEADLINE = 600.0
SINK_FAULTS = ("--fail-every", "7", "--stall-every", "13", "--stall-seconds", "1.0")


def chosen_faults(kind: str) -> list[str]:
    faults = ["kill_sender", "receiver_outage", "kill_sender"]
    allowed = os.environ.get("JOBDESK_FAULTS")
    if kind == "postgres" and (not allowed or "restart_postgres" in allowed.split(",")):
        faults.append("restart_postgres")
    return faults


def make_transitions(db: SyncJobDesk, stop: threading.Event) -> None:
    """A group of 5 jobs a second, every other one cancelled (about 8 deliveries a
    second: the outbox stays under the 1,000 that one listing shows), until ``stop``;
    errors (the database restarting) are skipped: the outbox, not this count, says what
    must arrive."""
    number = 0
    while not stop.is_set():
        with contextlib.suppress(JobdeskError):
            group = db.create_group("alice", [JobSpec("extract", {"n": n}) for n in range(5)])
            if number % 2:
                db.cancel_group(group.id, "alice")
        number += 1
        stop.wait(1.0)


@pytest.mark.long  # up to ~12 minutes a store: make faults runs it, make test does not
@pytest.mark.timeout(900)
def test_webhooks_lose_nothing_to_killed_senders_outages_and_a_database_crash(
    store_url: str, db: SyncJobDesk, processes: Processes, tmp_path: Path
) -> None:
    kind = "postgres" if store_url.startswith("postgresql") else "sqlite"
    port, log = free_port(), tmp_path / "sink.jsonl"
    hook(db, port, ["job.pending", "job.cancelled", "group.cancelled"])
    db.set_user_limits("alice", max_waiting=1_000_000, max_daily=1_000_000)
    sender = [sys.executable, "-m", "jobdesk", "webhooks", "deliver", "--forever",
              "--db", store_url, "--interval", "0.05", "--concurrency", "8",
              "--send-timeout", "0.5", "--lease-seconds", "3"]  # fmt: skip
    sink = start_sink(processes, port, log, *SINK_FAULTS)
    senders = [processes.start(f"sender-{n}", sender) for n in range(2)]
    stop = threading.Event()
    maker = threading.Thread(target=make_transitions, args=(db, stop), daemon=True)
    maker.start()
    done: list[str] = []
    try:
        faults = chosen_faults(kind)
        started = time.monotonic()
        while time.monotonic() - started < DURATION:
            time.sleep(INTERVAL)
            fault = faults[len(done) % len(faults)]
            if fault == "kill_sender":
                victim = len(done) % len(senders)
                senders[victim].send_signal(signal.SIGKILL)
                senders[victim].wait(timeout=30)
                senders[victim] = processes.start(f"sender-{victim}-{len(done)}", sender)
            elif fault == "receiver_outage":
                sink.send_signal(signal.SIGKILL)
                sink.wait(timeout=30)
                time.sleep(3.0)  # the outage itself: the receiver is down
                sink = start_sink(processes, port, log, *SINK_FAULTS)
            else:
                restart_postgres()
            done.append(fault)
    finally:
        stop.set()
        maker.join(timeout=60)

    def drained() -> bool | None:
        try:
            deliveries = db.get_webhook_deliveries(limit=1000)
            pending = db.get_webhook_deliveries(state="pending", limit=1)
        except JobdeskError:
            return None
        return True if deliveries and not pending else None

    wait_for(drained, within=DRAIN_DEADLINE)
    outbox = db.get_webhook_deliveries(limit=1000)
    assert len(outbox) < 1000  # all of it listed, so all of it checked
    received = check_every_delivery_arrived(db, log)
    assert len(received) >= len(outbox)
    assert set(done) == set(chosen_faults(kind))
