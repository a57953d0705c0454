"""``python -m jobdesk.demo``: jobdesk in one minute, on a fresh SQLite file.

Two users ask for character extraction over their episodes. Alice asks for
more than her limit allows and is refused; Bob cancels one job half-way; one
job fails once and is retried by the queue. A small in-process worker runs the
jobs with live progress bars.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from jobdesk import Job, JobDesk, Limits, Worker
from jobdesk.errors import InvalidTransition, LeaseLost, RateLimited

console = Console()
STEP_SECONDS = 0.15


async def extract_characters(
    desk: JobDesk, worker: Worker, job: Job, progress: Progress, bar: TaskID
) -> None:
    """A pretend handler: one step per episode, reporting progress after each."""
    episodes = job.input["episode_ids"]
    try:
        for done, episode in enumerate(episodes, start=1):
            await asyncio.sleep(STEP_SECONDS)
            if job.input.get("flaky") and job.attempt == 1 and done == 2:
                await desk.fail_job(worker, job.id, "model timed out", attempt=job.attempt)
                progress.update(bar, description=f"{job.user_id} {job.id[-6:]} [yellow]retrying")
                return
            pct = 100 * done / len(episodes)
            reply = await desk.update_job_progress(
                worker, job.id, pct, f"episode {episode}", attempt=job.attempt
            )
            progress.update(bar, completed=pct)
            if reply.cancel_requested:
                progress.update(bar, description=f"{job.user_id} {job.id[-6:]} [red]cancelled")
                return
        characters = [f"character-{episode}" for episode in episodes]
        await desk.complete_job(worker, job.id, {"characters": characters}, attempt=job.attempt)
        progress.update(bar, description=f"{job.user_id} {job.id[-6:]} [green]completed")
    except LeaseLost:
        progress.update(bar, description=f"{job.user_id} {job.id[-6:]} [red]lease lost")


async def run_worker(
    desk: JobDesk, worker: Worker, progress: Progress, stop: asyncio.Event
) -> None:
    """Claim one job at a time until ``stop`` is set and the queue is empty."""
    while True:
        claimed = await desk.claim_jobs(worker, limit=1)
        if not claimed:
            if stop.is_set() and not await desk.get_pending_jobs(worker, limit=1):
                return
            await asyncio.sleep(0.05)
            continue
        job = claimed[0]
        bar = progress.add_task(f"{job.user_id} {job.id[-6:]} attempt {job.attempt}", total=100)
        await extract_characters(desk, worker, job, progress, bar)


def describe(job: Job) -> str:
    """One short line on how a job ended."""
    parts = []
    if isinstance(job.result, dict):
        parts.append(f"{len(job.result['characters'])} characters")
    if job.error is not None:
        parts.append(f"after error: {job.error['message']}")
    if job.status.value == "cancelled":
        parts.append(f"cancelled by {job.user_id} at {job.progress:.0f}%")
    return "; ".join(parts)


async def bob_cancels_half_way(desk: JobDesk, job: Job) -> None:
    """Bob watches his job and cancels it once it is under way."""
    while True:
        seen = await desk.get_job_status(job.id, "bob")
        if seen.status.is_finished or seen.progress >= 25:
            break
        await asyncio.sleep(0.05)
    with contextlib.suppress(InvalidTransition):  # it may have finished meanwhile
        await desk.cancel_job(job.id, "bob")


async def main(path: Path) -> None:
    """Run the demo on the (fresh) database at ``path``."""
    limits = Limits(max_active_per_user=10, retry_backoff_seconds=0.2)
    async with JobDesk.open(f"sqlite:///{path}", limits=limits) as desk:
        console.rule("[bold]jobdesk demo")
        console.print(f"database: {path} (SQLite, created just now)")
        token = await desk.create_worker_token("demo-worker", types=["character_extraction"])
        worker = await desk.verify_worker_token(token)
        console.print(f"worker token for [bold]demo-worker[/]: {token[:12]}... (shown once)")

        jobs = []
        for number in range(12):
            episodes = [f"ep-{number}-{step}" for step in range(4)]
            try:
                job = await desk.create_job(
                    "alice",
                    "character_extraction",
                    {"episode_ids": episodes, "flaky": number == 0},
                    project_id="pilot",
                )
                jobs.append(job)
            except RateLimited as refused:
                console.print(f"[yellow]alice's job {number + 1} refused:[/] {refused}")
        for number in range(3):
            episodes = [f"bob-{number}-{step}" for step in range(8)]
            jobs.append(
                await desk.create_job("bob", "character_extraction", {"episode_ids": episodes})
            )
        console.print(f"created {len(jobs)} jobs for alice and bob; 3 workers start\n")

        stop = asyncio.Event()
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%")
        ) as progress:
            workers = [
                asyncio.create_task(run_worker(desk, worker, progress, stop)) for _ in range(3)
            ]
            await bob_cancels_half_way(desk, jobs[-3])
            stop.set()
            await asyncio.gather(*workers)

        for user in ("alice", "bob"):
            table = Table(title=f"{user}'s jobs (newest first)")
            for column in ("id", "status", "attempt", "progress", "result / error"):
                table.add_column(column)
            page = await desk.get_user_jobs(user, limit=20)
            for job in page.items:
                table.add_row(
                    f"…{job.id[-8:]}",
                    job.status.value,
                    f"{job.attempt}/{job.max_attempts}",
                    f"{job.progress:.0f}%",
                    describe(job),
                )
            console.print(table)
            usage = await desk.get_user_usage(user)
            console.print(
                f"{user}: {usage.active}/{usage.max_active} active, "
                f"{usage.created_today}/{usage.max_daily} created today\n"
            )


def cli() -> None:
    """Entry point of ``python -m jobdesk.demo``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("jobdesk-demo.db"), help="SQLite file")
    path = parser.parse_args().db
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    asyncio.run(main(path))


if __name__ == "__main__":
    cli()
