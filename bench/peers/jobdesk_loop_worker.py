"""The bench loop worker for the peer harness: ``jobdesk_loop_worker.py DATABASE_URL [VARIANT]``.

One asyncio loop: claim up to 10 due jobs (``claim_jobs(limit=10)``), run them
concurrently (each records its start with ``common.record(enq_ts)``), complete
them, claim again. Variant ``c10`` completes each job with ``complete_job`` (one
transaction each); ``c10_batch`` completes the claimed batch with one
``complete_jobs`` call (one transaction). When the queue is empty it sleeps 5 ms
and polls again: this bench worker has no wake-up notification across processes.
Variant ``c10_listen`` completes in batches too, and when idle waits for a change
notification instead of polling. Variant ``c10_overlap`` is ``c10_listen`` with the
batch's ``complete_jobs`` running while the next ``claim_jobs`` does (two connections),
as the real runtime's claims and completions overlap. Stops on SIGTERM or SIGINT. ``common`` is the
harness's module (on ``PYTHONPATH``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from jobdesk_adapter import BATCH, LIMITS, LOOP_VARIANTS, POLL_SECONDS, record

from jobdesk import Completion, Job, JobDesk, Worker
from jobdesk.changes import Subscription


async def handle(desk: JobDesk, worker: Worker, job: Job) -> None:
    """The no-op handler every library runs: record the start, then complete."""
    record(enqueue_time(job))
    await desk.complete_job(worker, job.id, None, attempt=job.attempt)


def enqueue_time(job: Job) -> float:
    """The producer's ``time.time()`` when it enqueued ``job``."""
    enq_ts = job.input.get("enq_ts", 0.0) if isinstance(job.input, dict) else 0.0
    return float(enq_ts)


async def work(url: str, variant: str = "c10") -> None:
    """Claim, run, complete, until told to stop."""
    if variant not in LOOP_VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}: expected one of {LOOP_VARIANTS}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with JobDesk.open(url, limits=LIMITS) as desk, desk.subscribe() as changes:
        token = await desk.create_worker_token(f"bench-worker-{os.getpid()}")
        worker = await desk.verify_worker_token(token)
        if variant == "c10_overlap":
            await overlap(desk, worker, changes, stop)
        else:
            await in_turn(desk, worker, changes, stop, variant)


async def in_turn(
    desk: JobDesk, worker: Worker, changes: Subscription, stop: asyncio.Event, variant: str
) -> None:
    """Claim a batch, run it, complete it, then claim the next."""
    while not stop.is_set():
        jobs = await desk.claim_jobs(worker, limit=BATCH)
        if not jobs and variant == "c10_listen":
            # Idle: wait for a change (NOTIFY on PostgreSQL, data_version on SQLite).
            await changes.next_change(within=0.5)
        elif not jobs:
            await asyncio.sleep(POLL_SECONDS)
        elif variant != "c10":
            for job in jobs:
                record(enqueue_time(job))
            await desk.complete_jobs(worker, [Completion(job.id, job.attempt) for job in jobs])
        else:
            await asyncio.gather(*(handle(desk, worker, job) for job in jobs))


async def overlap(
    desk: JobDesk, worker: Worker, changes: Subscription, stop: asyncio.Event
) -> None:
    """Claim the next batch while the previous one's completion commits."""
    completing: asyncio.Task[object] | None = None
    while not stop.is_set():
        jobs = await desk.claim_jobs(worker, limit=BATCH)
        if completing is not None:
            await completing
            completing = None
        if not jobs:
            await changes.next_change(within=0.5)
            continue
        for job in jobs:
            record(enqueue_time(job))
        completions = [Completion(job.id, job.attempt) for job in jobs]
        completing = asyncio.create_task(desk.complete_jobs(worker, completions))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2)
    asyncio.run(work(sys.argv[1], *sys.argv[2:3]))
