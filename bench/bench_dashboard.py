"""How long the dashboard's pages take to render, server-side, with 10,000 jobs for one user.

    .venv/bin/python bench/bench_dashboard.py                 # SQLite file, 10,000 jobs
    .venv/bin/python bench/bench_dashboard.py --history 300000  # and an old history
    .venv/bin/python bench/bench_dashboard.py --quick         # 1,000 jobs, fewer rounds
    .venv/bin/python bench/bench_dashboard.py --url postgresql://root@127.0.0.1/db
    .venv/bin/python bench/bench_dashboard.py --url URL --populated  # measure again, no set-up

One user gets ``--jobs`` jobs (mostly completed, some failed, cancelled, pending and
processing, over a few types and projects). With ``--history N``, N jobs of
``--history-users`` other users were created and finished three days before (their
ids minted on that clock too, as ids carry their creation time): what a desk that has
run for a while holds, and what the operator's overview must not read on every
request. Each page is then requested ``--rounds`` times through the whole ASGI app in
this process (middleware, cookie session check, CSRF token, desk, store, Jinja2): the
time measured is the server's, without a network or a browser. Prints p50/p95/max per
page and writes JSON to ``bench/results/``. The goal is under 100 ms for every page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import httpx

from jobdesk import Completion, Job, JobDesk, JobSpec, Limits, Worker, ids
from jobdesk.errors import StoreUnavailable
from jobdesk.http import Settings, create_app
from jobdesk.testing import ManualClock

USER = "bench-user"
TYPES = ("character_extraction", "transcription", "thumbnail")
GOAL_MS = 100.0
RESULTS = Path(__file__).parent / "results"


async def populate(desk: JobDesk, count: int) -> dict[str, str]:
    """``count`` jobs for one user in every status; some ids worth visiting."""
    await desk.set_user_limits(USER, max_active=1_000_000, max_daily=100_000_000)
    worker = await desk.verify_worker_token(await desk.create_worker_token("bench-worker"))
    ids: list[str] = []
    for number in range(count):
        job = await desk.create_job(
            USER, TYPES[number % 3], {"n": number, "text": "x" * 200}, f"project-{number % 7}"
        )
        ids.append(job.id)
        if len(ids) % 500 == 0 or number == count - 1:
            await _finish(desk, worker, len(ids))
    failed = (await desk.get_user_jobs(USER, status="failed", limit=1)).items[0]
    processing = await desk.create_job(USER, TYPES[0], {"n": count}, "project-0")
    await desk.start_job(worker, processing.id)
    await desk.update_job_progress(worker, processing.id, 40, "episode 2 of 5", attempt=1)
    await desk.create_job(USER, TYPES[1], {"n": count + 1}, "project-1")  # stays pending
    return {"failed": failed.id, "processing": processing.id, "oldest": ids[0]}


async def populate_history(url: str, count: int, users: int) -> None:
    """``count`` jobs of ``users`` users, created and finished three days ago."""
    if count <= 0:
        return
    clock = ManualClock(datetime.now(UTC) - timedelta(days=3))
    shifted = SimpleNamespace(time_ns=lambda: int(clock().timestamp() * 1e9))
    roomy = Limits(max_active_per_user=1_000_000, max_created_per_day=100_000_000)
    per_user = max(1, count // users)
    with mock.patch.object(ids, "time", shifted):  # ids carry their creation time
        async with JobDesk.open(url, limits=roomy, clock=clock) as desk:
            token = await desk.create_worker_token("history-worker")
            worker = await desk.verify_worker_token(token)
            made = 0
            for number in range(users):
                wanted = min(per_user, count - made) if number < users - 1 else count - made
                while wanted > 0:
                    batch = min(wanted, 100)
                    specs = [
                        JobSpec(TYPES[(made + n) % 3], {"n": made + n}, f"p-{number % 50}")
                        for n in range(batch)
                    ]
                    try:
                        await desk.create_jobs(f"old-user-{number}", specs)
                        made += batch
                        wanted -= batch
                        clock.advance(seconds=0.5)
                        await _drain(desk, worker)
                    except StoreUnavailable as exc:  # another program restarted the server
                        await _recover(desk, clock, exc)
                        continue
                    if made % 10_000 < batch:
                        print(f"  history: {made} jobs", end="\r", flush=True)
    print()


async def _recover(desk: JobDesk, clock: ManualClock, error: StoreUnavailable) -> None:
    """Wait for the database to come back, then put the jobs whose claim or completion
    was lost back in the queue (their leases run out on the history's clock)."""
    print(f"\n  {error}: waiting for the database")
    for _ in range(120):
        try:
            await desk.ping()
            break
        except StoreUnavailable:
            await asyncio.sleep(1)
    clock.advance(minutes=10)
    await desk.requeue_expired()


async def _drain(desk: JobDesk, worker: Worker) -> None:
    """Claim every pending job; complete them but one in fifty, which fails."""
    while batch := await desk.claim_jobs(worker, limit=100):
        done = []
        for index, job in enumerate(batch):
            if index % 50 == 0:
                await desk.fail_job(
                    worker, job.id, "old failure", retryable=False, attempt=job.attempt
                )
            else:
                done.append(Completion(job.id, job.attempt, {"ok": True}))
        if done:
            await desk.complete_jobs(worker, done)


async def _finish(desk: JobDesk, worker: Worker, total: int) -> None:
    """Finish most of the jobs waiting (a few stay pending), in batches of 100."""
    claimed: list[Job] = []
    while len(claimed) < 480:
        batch = await desk.claim_jobs(worker, limit=100)
        if not batch:
            break
        claimed += batch
    done: list[Completion] = []
    for index, job in enumerate(claimed):
        if index % 20 == 0:
            await desk.fail_job(worker, job.id, "bench failure", retryable=False, attempt=1)
        elif index % 25 == 0:
            await desk.cancel_job(job.id, USER)
        else:
            done.append(Completion(job.id, job.attempt, {"characters": ["Ann", "Bob"]}))
    if done:
        await desk.complete_jobs(worker, done)
    print(f"  {total} jobs", end="\r", flush=True)


async def _signed_in(client: httpx.AsyncClient, token: str) -> None:
    form = (await client.get("/signin")).text
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
    assert match is not None
    response = await client.post("/signin", data={"token": token, "csrf_token": match.group(1)})
    assert response.status_code == 303, response.text


async def measure(client: httpx.AsyncClient, path: str, rounds: int) -> dict[str, float]:
    """p50/p95/max milliseconds of ``rounds`` GETs of ``path`` (after 5 warm-up ones)."""
    for _ in range(5):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    times.sort()
    return {
        "p50_ms": statistics.median(times),
        "p95_ms": times[int(len(times) * 0.95) - 1],
        "max_ms": times[-1],
    }


async def existing(desk: JobDesk) -> dict[str, str]:
    """The ids worth visiting among the jobs an earlier run left (``--populated``); any
    job serves for the admin job page, here the newest."""
    found = {}
    for name, status in (("failed", "failed"), ("processing", "processing"), ("oldest", None)):
        page = await desk.get_user_jobs(USER, status=status, limit=1)
        found[name] = page.items[0].id
    return found


async def run(
    url: str, count: int, rounds: int, history: int, users: int, *, populated: bool = False
) -> dict[str, object]:
    """Populate (unless ``populated``), then time every main page."""
    if history and not populated:
        print(f"populating a history of {history} old jobs of {users} users")
        started = time.perf_counter()
        await populate_history(url, history, users)
        print(f"  done in {time.perf_counter() - started:.1f} s")
    async with JobDesk.open(url) as desk:
        if populated:
            ids = await existing(desk)
        else:
            print(f"populating {count} jobs for one user on {url.split('?', maxsplit=1)[0]}")
            started = time.perf_counter()
            ids = await populate(desk, count)
            print(f"\n  done in {time.perf_counter() - started:.1f} s")
        app = create_app(desk, Settings(reap_interval_seconds=0))
        user_token = await desk.create_user_token(USER)
        admin_token = await desk.create_admin_token(f"bench-admin-{time.time_ns()}")
        page = await desk.get_user_jobs(USER, limit=25)
        deep = page.next_cursor
        for _ in range(20):  # a cursor 20 pages down
            later = await desk.get_user_jobs(USER, limit=25, cursor=deep)
            deep = later.next_cursor or deep
        pages = {
            "jobs list (first page)": "/",
            "jobs list, 21st page (cursor)": f"/?cursor={deep}",
            "jobs list, status=failed": "/?status=failed",
            "jobs list, type + project": f"/?type={TYPES[1]}&project=project-3",
            "load more (rows fragment)": f"/rows?cursor={page.next_cursor}",
            "job detail (failed)": f"/jobs/{ids['failed']}",
            "job detail (processing)": f"/jobs/{ids['processing']}",
        }
        admin_pages = {
            "admin overview": "/admin",
            "admin job": f"/admin/jobs/{ids['oldest']}",
            "admin user": f"/admin/users/{USER}",
            **({"admin user (old history)": "/admin/users/old-user-0"} if history else {}),
        }
        figures: dict[str, dict[str, float]] = {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            for token, group in ((user_token, pages), (admin_token, admin_pages)):
                async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                    await _signed_in(client, token)
                    for name, path in group.items():
                        figures[name] = await measure(client, path, rounds)
                        row = figures[name]
                        print(
                            f"{name:32} p50 {row['p50_ms']:6.1f} ms   p95 {row['p95_ms']:6.1f} ms"
                            f"   max {row['max_ms']:6.1f} ms"
                        )
    worst = max(row["p95_ms"] for row in figures.values())
    print(f"worst p95: {worst:.1f} ms (goal: under {GOAL_MS:.0f} ms)")
    return {
        "store": url.split(":", 1)[0],
        "jobs": count,
        "history": history,
        "history_users": users if history else 0,
        "rounds": rounds,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} python {platform.python_version()}",
        "pages": figures,
        "worst_p95_ms": worst,
    }


def main() -> None:
    """Parse the arguments, run, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--history", type=int, default=0, help="old finished jobs of other users (e.g. 300000)"
    )
    parser.add_argument("--history-users", type=int, default=3_000)
    parser.add_argument(
        "--populated",
        action="store_true",
        help="measure the jobs an earlier run left in --url (to compare two versions on them)",
    )
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 30 rounds")
    arguments = parser.parse_args()
    count, rounds = (1_000, 30) if arguments.quick else (arguments.jobs, arguments.rounds)
    with tempfile.TemporaryDirectory() as directory:
        url = arguments.url or f"sqlite:///{directory}/bench.db?synchronous=normal"
        result = asyncio.run(
            run(
                url,
                count,
                rounds,
                arguments.history,
                arguments.history_users,
                populated=arguments.populated,
            )
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    suffix = f"-history{arguments.history}" if arguments.history else ""
    target = RESULTS / f"dashboard-{result['store']}{suffix}-{stamp}.json"
    target.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
