"""Fair scheduling on PostgreSQL: does one user's backlog make everyone else wait?

    .venv/bin/python bench/bench_fairness.py starvation                 # backlogs 0, 10k, 100k
    .venv/bin/python bench/bench_fairness.py starvation --backlog 10000 # one backlog
    .venv/bin/python bench/bench_fairness.py claim-cost                 # 1,000,000 pending jobs
    .venv/bin/python bench/bench_fairness.py starvation --quick         # smoke runs, seconds
    .venv/bin/python bench/bench_fairness.py claim-cost --quick
    .venv/bin/python bench/bench_fairness.py weights                    # 3:1, then 1:1
    .venv/bin/python bench/bench_fairness.py caps                       # 60 s under every limit
    .venv/bin/python bench/bench_fairness.py weights --quick
    .venv/bin/python bench/bench_fairness.py caps --quick               # 15 s

``starvation``: user A ("heavy") holds a backlog of 50 ms jobs (its limits raised);
4 real ``jobdesk worker`` processes run them; 50 light users each create one job
every 2 s for the window. Measured: the light users' create->start (the first
start in the job's history minus its creation: both the database's clock),
p50/p95/p99/max, and the starts per user during the window. Given several
backlogs (the default), each runs on its own fresh database and the light
users' p95 is compared with the run without a backlog and between the two
largest backlogs (issue 14: within 2x of no backlog, and moving under 20%).

``claim-cost``: 1,000,000 pending jobs over 10,000 users, the heaviest (100,000,
the oldest) at its running cap, inserted with SQL, then ``ANALYZE``; then
``claim_jobs(worker, limit=1)`` timed one by one, and ``EXPLAIN (ANALYZE, BUFFERS)``
of the store's ``claim`` statement, with the plans of the statements it runs
inside functions (``auto_explain``).

``weights``: two users, each with a backlog of 5 ms jobs bigger than their share
of the measure, weights 3 and 1 and running caps of their whole backlog (so that
the weights, not the caps, decide), 4 ``jobdesk worker`` processes; their starts
among the first 10,000 in the history (by event id), and their ratio against 3.0
+- 5%; then the same with equal weights (1.0 +- 5%). One fresh database each.
Beside them: the claims that made those starts (a claim's starts share a worker
and a time), and how many that started several jobs took them all from one user.
``--prefetch 0`` runs the workers without claiming ahead: smaller claims.

``caps``: for ``--duration`` (60 s), 6 users with ``max_running`` 3 and backlogs
of 50 ms jobs, a fifth of them of a type with a pool of 2, a fifth of a type with
a rate of 20/s, 4 ``jobdesk worker`` processes; then the whole history replayed
in event-id order: the most jobs processing at once per user and of the pooled
type, and the most starts of the rated type in any 1 s window, each against its
limit (PASS only if none is ever exceeded).

Each run makes a database of its own on the server of ``--server-url`` and drops
it afterwards. Figures go to stdout and to ``bench/results/bench_fairness-*.json``
with the commit, the machine and the load average beside every figure: the
machine may be shared, so compare runs made side by side.

Written for today's limits (``set_user_limits(max_active=, max_daily=)``) and for
those of issue 14 (``max_running=, max_waiting=, max_daily=, weight=``): the
keywords are chosen from ``JobDesk.set_user_limits``' signature. ``weights`` and
``caps`` need issue 14's (``weight=``, ``set_type_limits``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from fairness_handlers import JOB_TYPE, POOLED_TYPE, RATED_TYPE
from jobdesk import JobDesk, JobSpec, Limits
from jobdesk.errors import RateLimited
from jobdesk.scheduling import Rate
from jobdesk.store.postgres import Q

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
REPOSITORY = BENCH.parent
DEFAULT_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")

HEAVY = "heavy"
LIGHT_PREFIX = "light-"
WARMUP = "warmup"
#: a light user creates one job per period, in seconds
LIGHT_PERIOD = 2.0
#: the widest limits set_user_limits accepts today
MAX_ACTIVE = 1_000_000
MAX_DAILY = 100_000_000


@dataclass(frozen=True, slots=True)
class Scale:
    """The sizes of one run: the issue's (full) or a smoke run's (quick)."""

    backlogs: tuple[int, ...]
    light_users: int
    duration: float
    claim_jobs: int
    claim_users: int
    claim_heaviest: int
    claims: int
    #: weights: the starts counted, and each user's backlog (above 3/4 of them)
    weight_starts: int
    weight_backlog: int
    #: caps: the users with a running cap
    caps_users: int


FULL = Scale((0, 10_000, 100_000), 50, 60.0, 1_000_000, 10_000, 100_000, 2_000, 10_000, 9_000, 6)
QUICK = Scale((0, 2_000), 10, 15.0, 20_000, 200, 2_000, 500, 1_000, 900, 4)


# -- the machine, the load, the database -------------------------------------------------


def command_output(*command: str) -> str:
    """What ``command`` prints, stripped; empty if it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPOSITORY)
    except OSError:
        return ""
    return done.stdout.strip()


def load() -> dict[str, object]:
    """The load right now: ``uptime`` as printed, and the three load averages."""
    return {"uptime": command_output("uptime"), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


async def machine(server: str) -> dict[str, object]:
    """What a reader needs to place the figures: code, date, machine, PostgreSQL."""
    async with await psycopg.AsyncConnection.connect(server, autocommit=True) as connection:
        row = await (await connection.execute("SHOW server_version")).fetchone()
    return {
        "commit": command_output("git", "rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(command_output("git", "status", "--porcelain", "--", "src")),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "postgres": row[0] if row else "unknown",
    }


def url_of(server: str, database: str, **query: str) -> str:
    """The server URL pointed at ``database``, with store options in its query."""
    options = "&".join(f"{key}={value}" for key, value in query.items())
    return urlunsplit(urlsplit(server)._replace(path=f"/{database}", query=options))


@asynccontextmanager
async def fresh_database(server: str) -> AsyncIterator[str]:
    """A new database migrated by ``JobDesk.open``, dropped afterwards; yields its name."""
    name = f"jobdesk_fair_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(server, autocommit=True) as admin:
        await admin.execute(f"CREATE DATABASE {name}".encode())
    try:
        async with JobDesk.open(url_of(server, name)):
            pass
        yield name
    finally:
        async with await psycopg.AsyncConnection.connect(server, autocommit=True) as admin:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


async def scalar(connection: psycopg.AsyncConnection[Any], query: str, **params: Any) -> Any:
    """The first column of the first row of ``query``."""
    row = await (await connection.execute(query.encode(), params)).fetchone()
    return None if row is None else row[0]


# -- limits, today's and issue 14's ------------------------------------------------------


def limit_keywords(*, waiting: int, daily: int, running: int | None = None) -> dict[str, int]:
    """``set_user_limits`` keywords for this code: ``max_waiting``/``max_running`` once
    the desk has them (issue 14), else today's one ``max_active`` (pending + processing).

    ``running`` None leaves the running cap at its default.
    """
    parameters = inspect.signature(JobDesk.set_user_limits).parameters
    if "max_waiting" in parameters:
        keywords = {"max_waiting": min(waiting, MAX_ACTIVE), "max_daily": daily}
        if running is not None:
            keywords["max_running"] = running
        return keywords
    return {"max_active": min(waiting + (running or 0), MAX_ACTIVE), "max_daily": daily}


def default_running_cap() -> int:
    """The default per-user running cap: a ``Limits`` field named for it (issue 14), else
    the 10 of DESIGN.md (today there is none: ``max_active`` counts pending jobs too)."""
    defaults = Limits()
    for field in fields(defaults):
        if "running" in field.name and isinstance(getattr(defaults, field.name), int):
            return int(getattr(defaults, field.name))
    return 10


async def fill_with_api(desk: JobDesk, user: str, count: int, seconds: float) -> None:
    """Queue ``count`` jobs for ``user`` with ``create_jobs``, 1,000 per call (set-up)."""
    for start in range(0, count, 1000):
        specs = [JobSpec(JOB_TYPE, {"seconds": seconds})] * min(1000, count - start)
        await desk.create_jobs(user, specs)


# -- worker processes --------------------------------------------------------------------


def start_workers(
    url: str, tokens: list[str], concurrency: int, logs: Path, prefetch: int | None = None
) -> list[subprocess.Popen[bytes]]:
    """One ``jobdesk worker`` process per token, each logging to a file of ``logs``;
    ``prefetch`` None leaves the worker's own (automatic) prefetch."""
    executable = Path(sys.executable).with_name("jobdesk")
    processes = []
    for index, token in enumerate(tokens):
        log = (logs / f"worker-{index}.log").open("wb")
        command = [
            str(executable), "worker", "--db", url, "--concurrency", str(concurrency),
            "--app", "fairness_handlers:registry", "--app-dir", str(BENCH),
            "--log-level", "warning",
        ]  # fmt: skip
        if prefetch is not None:
            command += ["--prefetch", str(prefetch)]
        # The token goes by environment, not argv, where every user of the machine sees it.
        environment = {**os.environ, "JOBDESK_WORKER_TOKEN": token}
        processes.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        )
    return processes


def check_workers(processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    """Raise, with its log, if a worker process has exited."""
    for index, process in enumerate(processes):
        if process.poll() is not None:
            tail = (logs / f"worker-{index}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"worker {index} exited with {process.returncode}:\n{tail}")


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> list[int | None]:
    """SIGTERM every worker, as an operator stops them; their exit statuses."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    statuses: list[int | None] = []
    for process in processes:
        try:
            statuses.append(process.wait(timeout=60))
        except subprocess.TimeoutExpired:
            process.kill()
            statuses.append(None)  # did not stop within a minute: killed
    return statuses


# -- starvation --------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def wait_for_workers(
    desk: JobDesk,
    connection: psycopg.AsyncConnection[Any],
    processes: list[subprocess.Popen[bytes]],
    logs: Path,
    seconds: float,
) -> None:
    """Until every worker has claimed a job: the heavy backlog's, else warm-up jobs'."""
    deadline = time.monotonic() + 120
    query = "SELECT count(DISTINCT worker_id) FROM jobdesk.jobs WHERE worker_id IS NOT NULL"
    while await scalar(connection, query) < len(processes):
        check_workers(processes, logs)
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not all claim a job within 2 minutes")
        if not await scalar(
            connection, "SELECT count(*) FROM jobdesk.jobs WHERE status = 'pending'"
        ):
            await desk.create_jobs(WARMUP, [JobSpec(JOB_TYPE, {"seconds": seconds})] * 40)
        await asyncio.sleep(0.5)
    warmup = "SELECT count(*) FROM jobdesk.jobs WHERE user_id = %(user)s AND status = 'pending'"
    for _ in range(600):  # the warm-up jobs out of the way: a minute at most
        if not await scalar(connection, warmup, user=WARMUP):
            break
        await asyncio.sleep(0.1)


async def light_users(
    desk: JobDesk, users: int, duration: float, seconds: float
) -> tuple[int, int]:
    """``users`` users each creating one job per period from a random offset, for
    ``duration`` seconds; how many jobs were created and how many refused."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    counts = {"created": 0, "refused": 0}

    async def user(name: str) -> None:
        first = start + random.uniform(0, LIGHT_PERIOD)
        for n in range(int(duration / LIGHT_PERIOD) + 1):
            at = first + n * LIGHT_PERIOD
            if at >= start + duration:
                return
            await asyncio.sleep(max(0.0, at - loop.time()))
            try:
                await desk.create_job(name, JOB_TYPE, {"seconds": seconds})
                counts["created"] += 1
            except RateLimited:
                counts["refused"] += 1

    await asyncio.gather(*(user(f"{LIGHT_PREFIX}{n:02d}") for n in range(users)))
    return counts["created"], counts["refused"]


async def wait_for_light_starts(
    connection: psycopg.AsyncConnection[Any],
    processes: list[subprocess.Popen[bytes]],
    logs: Path,
    max_wait: float,
) -> float:
    """Until every light job has started, at most ``max_wait`` seconds; the time waited."""
    query = "SELECT count(*) FROM jobdesk.jobs WHERE user_id LIKE %(prefix)s AND status = 'pending'"
    started = time.monotonic()
    shown = started
    while waiting := await scalar(connection, query, prefix=LIGHT_PREFIX + "%"):
        check_workers(processes, logs)
        now = time.monotonic()
        if now - started > max_wait:
            print(f"  gave up after {max_wait:.0f} s: {waiting} light jobs never started")
            break
        if now - shown >= 15:
            heavy = await scalar(
                connection,
                "SELECT count(*) FROM jobdesk.jobs WHERE user_id = %(user)s AND status = 'pending'",
                user=HEAVY,
            )
            print(f"  {now - started:.0f} s: {waiting} light jobs still pending, {heavy} of A's")
            shown = now
        await asyncio.sleep(1.0)
    return time.monotonic() - started


async def light_figures(
    connection: psycopg.AsyncConnection[Any], window: tuple[datetime, datetime]
) -> dict[str, Any]:
    """Create->start of the light jobs, and the starts per user within ``window``."""
    cursor = await connection.execute(
        b"""
        SELECT j.created_at, (
            SELECT min(e.at) FROM jobdesk.job_events AS e
            WHERE e.job_id = j.id AND e.status = 'processing'
        ) FROM jobdesk.jobs AS j WHERE j.user_id LIKE %(prefix)s
        """,
        {"prefix": LIGHT_PREFIX + "%"},
    )
    rows = await cursor.fetchall()
    waits = [(start - created).total_seconds() * 1000 for created, start in rows if start]
    # The light jobs created while A still had jobs waiting (before A's last start): what
    # a light user meets while a heavy one is backlogged, however soon A's backlog drains.
    cursor = await connection.execute(
        b"""
        SELECT max(e.at) FROM jobdesk.job_events AS e JOIN jobdesk.jobs AS j ON j.id = e.job_id
        WHERE j.user_id = %(heavy)s AND e.status = 'processing'
        """,
        {"heavy": HEAVY},
    )
    heavy_row = await cursor.fetchone()
    heavy_last = None if heavy_row is None else heavy_row[0]
    contended = [
        (start - created).total_seconds() * 1000
        for created, start in rows
        if start and heavy_last is not None and created < heavy_last
    ]
    cursor = await connection.execute(
        b"""
        SELECT j.user_id, count(*) FROM jobdesk.job_events AS e
        JOIN jobdesk.jobs AS j ON j.id = e.job_id
        WHERE e.status = 'processing' AND e.at >= %(start)s AND e.at < %(end)s
        GROUP BY j.user_id
        """,
        {"start": window[0], "end": window[1]},
    )
    starts = {user: int(count) for user, count in await cursor.fetchall()}
    light = [count for user, count in starts.items() if user.startswith(LIGHT_PREFIX)]
    seconds = (window[1] - window[0]).total_seconds()
    figures: dict[str, Any] = {
        "light_jobs": len(rows),
        "light_started": len(waits),
        "light_never_started": len(rows) - len(waits),
        "window_s": round(seconds, 1),
        "starts_in_window": sum(starts.values()),
        "starts_per_s": round(sum(starts.values()) / seconds, 1),
        "heavy_starts_in_window": starts.get(HEAVY, 0),
        "light_starts_in_window": sum(light),
        "light_users_with_a_start": len(light),
        "light_starts_per_user": {
            "min": min(light, default=0),
            "median": statistics.median(light) if light else 0,
            "max": max(light, default=0),
        },
    }
    if waits:
        figures["create_to_start_ms"] = _waits(waits)
    figures["light_jobs_while_a_waits"] = len(contended)
    if contended:
        figures["create_to_start_while_a_waits_ms"] = _waits(contended)
    return figures


def _waits(waits: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(waits), 1),
        "p95": round(percentile(waits, 0.95), 1),
        "p99": round(percentile(waits, 0.99), 1),
        "max": round(max(waits), 1),
    }


async def run_starvation(server: str, backlog: int, scale: Scale, options: Any) -> dict[str, Any]:
    """One starvation run with a backlog of ``backlog`` jobs for A, on a fresh database."""
    seconds = options.job_ms / 1000
    slots = options.workers * options.concurrency
    # No cap asked for: more than the workers ever hold, so that the order, not a cap,
    # decides who waits. Not just the slots: the jobs a worker prefetches are claimed, so
    # they count as running too (about 0.1 s of work per worker on top of its slots).
    uncapped = slots * 25
    heavy_running = {None: uncapped, 0: None}.get(
        options.heavy_max_running, options.heavy_max_running
    )
    async with fresh_database(server) as name:
        url = url_of(server, name)
        async with (
            JobDesk.open(url_of(server, name, pool_max="10")) as desk,
            await psycopg.AsyncConnection.connect(url, autocommit=True) as connection,
        ):
            fill_started = time.perf_counter()
            await desk.set_user_limits(
                HEAVY,
                **limit_keywords(waiting=backlog + 1000, daily=MAX_DAILY, running=heavy_running),
            )
            await fill_with_api(desk, HEAVY, backlog, seconds)
            fill_seconds = time.perf_counter() - fill_started
            # Light users' jobs wait behind A's backlog today: room for all their window's
            # jobs, so that a refusal does not hide a wait. Their running cap stays default.
            for n in range(scale.light_users):
                await desk.set_user_limits(
                    f"{LIGHT_PREFIX}{n:02d}", **limit_keywords(waiting=1000, daily=10_000)
                )
            await desk.set_user_limits(WARMUP, **limit_keywords(waiting=10_000, daily=MAX_DAILY))
            tokens = [await desk.create_worker_token(f"fair-{n}") for n in range(options.workers)]
            with tempfile.TemporaryDirectory(prefix="bench-fairness-") as directory:
                logs = Path(directory)
                processes = start_workers(url, tokens, options.concurrency, logs, options.prefetch)
                try:
                    await wait_for_workers(desk, connection, processes, logs, seconds)
                    heavy_pending = (
                        "SELECT count(*) FROM jobdesk.jobs "
                        "WHERE user_id = %(user)s AND status = 'pending'"
                    )
                    load_before = load()
                    heavy_at_start = await scalar(connection, heavy_pending, user=HEAVY)
                    window_start = await scalar(connection, "SELECT now()")
                    created, refused = await light_users(
                        desk, scale.light_users, options.duration, seconds
                    )
                    window_end = await scalar(connection, "SELECT now()")
                    heavy_at_end = await scalar(connection, heavy_pending, user=HEAVY)
                    load_after = load()
                    waited = await wait_for_light_starts(
                        connection, processes, logs, options.max_wait
                    )
                finally:
                    statuses = stop_workers(processes)
            figures = await light_figures(connection, (window_start, window_end))
    return {
        "backlog": backlog,
        "heavy_max_running": heavy_running,
        "worker_prefetch": options.prefetch,
        "fill_s": round(fill_seconds, 1),
        "heavy_pending_at_window_start": heavy_at_start,
        "heavy_pending_at_window_end": heavy_at_end,
        "light_created": created,
        "light_refused": refused,
        "waited_after_window_s": round(waited, 1),
        **figures,
        "worker_exit_statuses": statuses,
        "load_at_window_start": load_before,
        "load_at_window_end": load_after,
    }


def print_starvation(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The runs as a table, then the issue's two ratios where the runs allow them."""
    print()
    print(
        f"{'backlog':>8} {'A at start':>10} {'light jobs':>10} {'never':>5} {'p50 ms':>10} "
        f"{'p95 ms':>10} {'p99 ms':>10} {'max ms':>10} {'starts/s':>8} {'A starts':>8} "
        f"{'light/user':>12} {'load 1m':>7} {'while A waits: jobs':>19} {'p95 ms':>8}"
    )
    for run in runs:
        wait = run.get("create_to_start_ms", {})
        contended = run.get("create_to_start_while_a_waits_ms", {})
        per_user = run["light_starts_per_user"]
        print(
            f"{run['backlog']:>8,} {run['heavy_pending_at_window_start']:>10,} "
            f"{run['light_jobs']:>10,} {run['light_never_started']:>5} "
            f"{wait.get('p50', float('nan')):>10,.1f} {wait.get('p95', float('nan')):>10,.1f} "
            f"{wait.get('p99', float('nan')):>10,.1f} {wait.get('max', float('nan')):>10,.1f} "
            f"{run['starts_per_s']:>8,.1f} {run['heavy_starts_in_window']:>8,} "
            f"{per_user['min']:>4}/{per_user['median']:g}/{per_user['max']:<4} "
            f"{run['load_at_window_end']['loadavg'][0]:>7} "
            f"{run['light_jobs_while_a_waits']:>19,} {contended.get('p95', float('nan')):>8,.1f}"
        )
    p95 = {
        run["backlog"]: run["create_to_start_ms"]["p95"]
        for run in runs
        if "create_to_start_ms" in run
    }
    ratios: dict[str, float] = {}
    if 0 in p95 and p95[0] > 0:
        for backlog, value in sorted(p95.items()):
            if backlog:
                ratios[f"p95_{backlog}_over_p95_0"] = round(value / p95[0], 2)
    loaded = sorted(backlog for backlog in p95 if backlog)
    if len(loaded) >= 2 and p95[loaded[-2]] > 0:
        ratios[f"p95_{loaded[-1]}_over_p95_{loaded[-2]}"] = round(
            p95[loaded[-1]] / p95[loaded[-2]], 2
        )
    for label, value in ratios.items():
        print(f"{label}: {value}")
    print("(light/user: the light users' starts within the window, min-median-max)")
    return ratios


async def starvation(server: str, scale: Scale, options: Any) -> dict[str, Any]:
    """Every backlog asked for, one fresh database each; saved after each run."""
    backlogs = options.backlog or scale.backlogs
    report: dict[str, Any] = {
        "scenario": "starvation",
        "machine": await machine(server),
        "settings": {
            "workers": options.workers,
            "concurrency": options.concurrency,
            "job_ms": options.job_ms,
            "light_users": scale.light_users,
            "light_period_s": LIGHT_PERIOD,
            "duration_s": options.duration,
            "max_wait_s": options.max_wait,
            # Which limits this code has: A's running cap applies only with max_running.
            "limit_keywords": sorted(limit_keywords(waiting=1, daily=1, running=1)),
        },
        "runs": [],
    }
    for backlog in backlogs:
        print(f"starvation: backlog {backlog:,}, {scale.light_users} light users, "
              f"{options.duration:.0f} s window ...")  # fmt: skip
        report["runs"].append(await run_starvation(server, backlog, scale, options))
        save(report, options.output)
    report["ratios"] = print_starvation(report["runs"])
    return report


# -- claim cost --------------------------------------------------------------------------

#: ids as jobdesk.ids.new_job_id makes them (48 bits of milliseconds, then random bits,
#: Crockford base 32), for ``ms`` and ``low`` (random bits below 2**62: chars 10-12 are 0)
JOB_ID_FUNCTION = """
CREATE FUNCTION pg_temp.bench_job_id(ms bigint, low bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', (CASE
        WHEN i <= 9 THEN (ms >> (5 * (9 - i))) & 31
        WHEN 5 * (25 - i) >= 63 THEN 0
        ELSE (low >> (5 * (25 - i))) & 31
    END)::integer + 1, 1), '' ORDER BY i)
    FROM generate_series(0, 25) AS i
$$
"""

#: the heaviest user's jobs first (the oldest: a claim in queue order meets them first),
#: its first ``cap`` running; the others' spread over the other users
FILL_JOBS = """
INSERT INTO jobdesk.jobs (
    id, user_id, type, status, input, priority, attempt, max_attempts, attempt_offset,
    created_at, run_at, updated_at, started_at, worker_id, lease_expires_at, cancel_requested
)
SELECT
    pg_temp.bench_job_id(%(base_ms)s + n, (random() * 4611686018427387903)::bigint),
    CASE WHEN n < %(heaviest)s THEN 'user-00000'
         ELSE 'user-' || lpad((1 + (n - %(heaviest)s) %% (%(users)s - 1))::text, 5, '0') END,
    %(type)s,
    CASE WHEN n < %(cap)s THEN 'processing' ELSE 'pending' END,
    %(input)s::jsonb, 0, CASE WHEN n < %(cap)s THEN 1 ELSE 0 END, %(max_attempts)s, 0,
    at, at, at,
    CASE WHEN n < %(cap)s THEN now() END,
    CASE WHEN n < %(cap)s THEN 'bench-heavy' END,
    CASE WHEN n < %(cap)s THEN now() + interval '1 day' END,
    false
FROM generate_series(0, %(jobs)s - 1) AS n,
     LATERAL (SELECT to_timestamp((%(base_ms)s + n) / 1000.0) AS at) AS stamp
"""


async def fill_claim_cost(database_url: str, scale: Scale, cap: int) -> float:
    """The claim-cost table, with SQL (set-up, not the thing measured); its seconds.

    Writes jobs and users rows only (no history entries), with the change
    announcements switched off for the fill: a million NOTIFYs nobody listens to.
    If issue 14 keeps scheduling state that its triggers do not maintain, fill it here.
    """
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        announcing = [
            row[0]
            for row in await (
                await connection.execute(
                    b"SELECT t.tgname FROM pg_trigger AS t JOIN pg_proc AS p ON p.oid = t.tgfoid "
                    b"WHERE t.tgrelid = 'jobdesk.jobs'::regclass AND p.proname = 'announce_change'"
                )
            ).fetchall()
        ]
        for trigger in announcing:
            await connection.execute(f"ALTER TABLE jobdesk.jobs DISABLE TRIGGER {trigger}".encode())
        await connection.execute(JOB_ID_FUNCTION.encode())
        await connection.execute(
            b"INSERT INTO jobdesk.users (user_id) "
            b"SELECT 'user-' || lpad(i::text, 5, '0') FROM generate_series(0, %(users)s - 1) AS i",
            {"users": scale.claim_users},
        )
        await connection.execute(
            FILL_JOBS.encode(),
            {
                "base_ms": int(time.time() * 1000) - scale.claim_jobs - 60_000,
                "heaviest": scale.claim_heaviest,
                "users": scale.claim_users,
                "cap": cap,
                "jobs": scale.claim_jobs,
                "type": JOB_TYPE,
                "input": json.dumps({"seconds": 0.05}),
                "max_attempts": Limits().max_attempts,
            },
        )
        # The scheduler's count of each user's pending jobs, where the schema keeps one
        # (jobdesk.users.waiting, from migration 0007): the fill bypassed the writers.
        has_waiting = await scalar(
            connection,
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'jobdesk' "
            "AND table_name = 'users' AND column_name = 'waiting'",
        )
        if has_waiting:
            await connection.execute(
                b"UPDATE jobdesk.users AS u SET waiting = p.count FROM (SELECT user_id, "
                b"count(*) AS count FROM jobdesk.jobs WHERE status = 'pending' "
                b"GROUP BY user_id) AS p WHERE u.user_id = p.user_id"
            )
        for trigger in announcing:
            await connection.execute(f"ALTER TABLE jobdesk.jobs ENABLE TRIGGER {trigger}".encode())
        await connection.commit()
        sample = await scalar(connection, "SELECT id FROM jobdesk.jobs ORDER BY id LIMIT 1")
        await connection.execute(b"ANALYZE jobdesk.jobs")
        await connection.execute(b"ANALYZE jobdesk.users")
        await connection.commit()
    from jobdesk.ids import JOB_ID_PATTERN  # noqa: PLC0415 - only this check needs it

    assert JOB_ID_PATTERN.fullmatch(sample), f"the fill made an id unlike new_job_id's: {sample}"
    return time.perf_counter() - started


async def explain_claim(database_url: str, worker_name: str) -> tuple[str, list[str]]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the store's claim statement, rolled back, and the
    plans auto_explain reports for the statements it runs inside functions."""
    known: dict[str, object] = {
        "now": None,
        "types": None,
        "limit": 1,
        "worker_id": worker_name,
        "lease_seconds": Limits().lease_seconds,
        "default_max_running": Limits().max_running_per_user,
    }
    names = set(re.findall(r"%\((\w+)\)s", Q["claim"]))
    if unknown := names - known.keys():
        raise RuntimeError(f"the claim statement takes parameters this benchmark lacks: {unknown}")
    nested: list[str] = []
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        connection.add_notice_handler(lambda notice: nested.append(notice.message_primary or ""))
        await connection.execute(b"LOAD 'auto_explain'")
        for setting in (
            "log_min_duration = 0",
            "log_analyze = on",
            "log_buffers = on",
            "log_nested_statements = on",
            "log_level = notice",
        ):
            await connection.execute(f"SET auto_explain.{setting}".encode())
        cursor = await connection.execute(
            ("EXPLAIN (ANALYZE, BUFFERS) " + Q["claim"]).encode(),
            {name: known[name] for name in names},
        )
        plan = "\n".join(row[0] for row in await cursor.fetchall())
        await connection.rollback()
    # auto_explain reports the EXPLAIN itself too, and the change trigger's statements.
    inside = [text for text in nested if "jobdesk." in text and "Query Text: EXPLAIN" not in text]
    return plan, inside


async def claim_cost(server: str, scale: Scale, options: Any) -> dict[str, Any]:
    """Claims one by one from the big table, and the claim's plan."""
    cap = default_running_cap()
    claims = options.claims or scale.claims
    print(
        f"claim-cost: {scale.claim_jobs:,} jobs over {scale.claim_users:,} users, the heaviest "
        f"{scale.claim_heaviest:,} with {cap} running; {claims:,} claims ..."
    )
    report: dict[str, Any] = {"scenario": "claim-cost", "machine": await machine(server)}
    async with fresh_database(server) as name:
        url = url_of(server, name)
        fill_seconds = await fill_claim_cost(url, scale, cap)
        async with JobDesk.open(url) as desk:
            await desk.set_user_limits(
                "user-00000",
                **limit_keywords(waiting=scale.claim_heaviest, daily=MAX_DAILY, running=cap),
            )
            worker = await desk.verify_worker_token(await desk.create_worker_token("claimer"))
            load_before = load()
            timings: list[float] = []
            claimed_from: dict[str, int] = {}
            for _ in range(claims):
                started = time.perf_counter()
                jobs = await desk.claim_jobs(worker, limit=1)
                timings.append((time.perf_counter() - started) * 1000)
                for job in jobs:
                    claimed_from[job.user_id] = claimed_from.get(job.user_id, 0) + 1
            load_after = load()
        plan, nested = await explain_claim(url, "claimer")
    report["run"] = {
        "jobs": scale.claim_jobs,
        "users": scale.claim_users,
        "heaviest": scale.claim_heaviest,
        "heaviest_running": cap,
        "fill_s": round(fill_seconds, 1),
        "claims": claims,
        "claim_ms": {
            "p50": round(statistics.median(timings), 2),
            "p99": round(percentile(timings, 0.99), 2),
            "max": round(max(timings), 2),
        },
        "claims_from_heaviest": claimed_from.get("user-00000", 0),
        "users_claimed_from": len(claimed_from),
        "load_before": load_before,
        "load_after": load_after,
        "explain": plan,
        "explain_nested": nested,
    }
    run = report["run"]
    print(
        f"\nfill {run['fill_s']} s; claim p50 {run['claim_ms']['p50']} ms, "
        f"p99 {run['claim_ms']['p99']} ms, max {run['claim_ms']['max']} ms over {claims:,} "
        f"claims; {run['claims_from_heaviest']:,} from the heaviest user, "
        f"{run['users_claimed_from']:,} users; load {load_after['loadavg']}"
    )
    print("\nEXPLAIN (ANALYZE, BUFFERS) claim:\n" + plan)
    for statement in nested:
        print("\nauto_explain, inside the claim:\n" + statement)
    return report


# -- weights and caps: shared ------------------------------------------------------------


@asynccontextmanager
async def workers_running(
    desk: JobDesk, url: str, options: Any
) -> AsyncIterator[tuple[list[subprocess.Popen[bytes]], Path, list[int | None]]]:
    """``options.workers`` worker processes, stopped on leaving; yields them, the folder of
    their logs, and a list that receives their exit statuses once they are stopped."""
    tokens = [await desk.create_worker_token(f"fair-{n}") for n in range(options.workers)]
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as directory:
        logs = Path(directory)
        processes = start_workers(url, tokens, options.concurrency, logs, options.prefetch)
        statuses: list[int | None] = []
        try:
            yield processes, logs, statuses
        finally:
            statuses.extend(stop_workers(processes))


def verdict(passed: bool) -> str:
    """How a table shows a check's outcome."""
    return "PASS" if passed else "FAIL"


# -- weights -----------------------------------------------------------------------------

#: the pairs of weights compared, one run each: issue 14's 3 to 1, then equal weights
WEIGHT_PAIRS = ((3.0, 1.0), (1.0, 1.0))
#: how far the ratio of starts may stray from the ratio of weights (issue 14: 5%)
WEIGHT_TOLERANCE = 0.05
START_COUNT = "SELECT count(*) FROM jobdesk.job_events WHERE status = 'processing'"


async def wait_for_starts(
    connection: psycopg.AsyncConnection[Any],
    processes: list[subprocess.Popen[bytes]],
    logs: Path,
    starts: int,
    max_wait: float,
) -> None:
    """Until the history holds ``starts`` starts; raise after ``max_wait`` seconds."""
    deadline = time.monotonic() + max_wait
    while await scalar(connection, START_COUNT) < starts:
        check_workers(processes, logs)
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {starts:,} starts within {max_wait:.0f} s")
        await asyncio.sleep(0.5)


async def first_starts(
    connection: psycopg.AsyncConnection[Any], starts: int
) -> tuple[dict[str, int], dict[str, Any]]:
    """The starts per user among the first ``starts`` of the history, in event-id order,
    and the claims that made them.

    A claim stamps its starts with one worker and one time, so those two tell claims
    apart: how many there were, and how many of those that started several jobs took
    them all from one user (each claim plans only over the users it could lock).
    """
    cursor = await connection.execute(
        b"""
        SELECT j.user_id, e.worker_id, e.at FROM (
            SELECT job_id, worker_id, at FROM jobdesk.job_events WHERE status = 'processing'
            ORDER BY id LIMIT %(starts)s
        ) AS e JOIN jobdesk.jobs AS j ON j.id = e.job_id
        """,
        {"starts": starts},
    )
    per_user: dict[str, int] = {}
    claims: dict[tuple[str, datetime], list[str]] = {}
    for user, worker, at in await cursor.fetchall():
        per_user[user] = per_user.get(user, 0) + 1
        claims.setdefault((worker, at), []).append(user)
    several = [users for users in claims.values() if len(users) > 1]
    figures = {
        "claims": len(claims),
        "starts_per_claim": round(starts / len(claims), 1) if claims else 0,
        "claims_of_several_starts": len(several),
        "of_them_from_one_user": sum(1 for users in several if len(set(users)) == 1),
    }
    return per_user, figures


def weights_cap(options: Any, scale: Scale) -> int:
    """The users' running cap in ``weights`` unless asked otherwise: their whole backlog, so
    that the weights, not the caps, decide. Every worker slot is not enough: a job the
    worker has claimed ahead of its slots (prefetch), or whose end it has not written yet,
    is processing too, and with caps of the slots alone both users sit at their caps and
    share the starts evenly, whatever their weights."""
    return int(options.max_running or scale.weight_backlog)


async def run_weights(
    server: str, weights: tuple[float, float], scale: Scale, options: Any
) -> dict[str, Any]:
    """Two backlogged users of ``weights``: their starts among the first of the history."""
    seconds = options.job_ms / 1000
    cap = weights_cap(options, scale)
    users = [f"weighted-{index}" for index in range(len(weights))]
    async with fresh_database(server) as name:
        url = url_of(server, name)
        async with (
            JobDesk.open(url_of(server, name, pool_max="10")) as desk,
            await psycopg.AsyncConnection.connect(url, autocommit=True) as connection,
        ):
            fill_started = time.perf_counter()
            for user, weight in zip(users, weights, strict=True):
                await desk.set_user_limits(
                    user,
                    max_running=cap,
                    max_waiting=scale.weight_backlog,
                    max_daily=MAX_DAILY,
                    weight=weight,
                )
                await fill_with_api(desk, user, scale.weight_backlog, seconds)
            fill_seconds = time.perf_counter() - fill_started
            async with workers_running(desk, url, options) as (processes, logs, statuses):
                load_before = load()
                started = time.monotonic()
                await wait_for_starts(
                    connection, processes, logs, scale.weight_starts, options.max_wait
                )
                elapsed = time.monotonic() - started
                load_after = load()
            counted, claims = await first_starts(connection, scale.weight_starts)
            # The measure's history, replayed: whether a running cap was ever reached in it.
            last = await scalar(
                connection,
                "SELECT id FROM jobdesk.job_events WHERE status = 'processing' "
                "ORDER BY id OFFSET %(skip)s LIMIT 1",
                skip=scale.weight_starts - 1,
            )
            rows = await (await connection.execute(HISTORY, {"until": last})).fetchall()
    most_processing = replay(rows)["most_by_user"]
    starts = [counted.get(user, 0) for user in users]
    expected = weights[0] / weights[1]
    ratio = starts[0] / starts[1] if starts[1] else float("inf")
    deviation = ratio / expected - 1
    # A user whose backlog ran out within the measure could not take their share.
    backlogged = all(count < scale.weight_backlog for count in starts)
    return {
        "weights": list(weights),
        "backlog_per_user": scale.weight_backlog,
        "max_running": cap,
        "most_processing_per_user": [most_processing.get(user, 0) for user in users],
        "fill_s": round(fill_seconds, 1),
        "starts_counted": sum(starts),
        "starts_per_user": dict(zip(users, starts, strict=True)),
        "ratio": round(ratio, 3),
        "expected_ratio": expected,
        "deviation": round(deviation, 4),
        "tolerance": WEIGHT_TOLERANCE,
        "backlogged_throughout": backlogged,
        "passed": abs(deviation) <= WEIGHT_TOLERANCE and backlogged,
        "claims": claims,
        "seconds_to_count": round(elapsed, 1),
        "starts_per_s": round(scale.weight_starts / elapsed, 1),
        "worker_exit_statuses": statuses,
        "load_at_start": load_before,
        "load_at_end": load_after,
    }


def print_weights(runs: list[dict[str, Any]]) -> bool:
    """The runs as a table and one PASS/FAIL line; whether every run passed."""
    print()
    print(
        f"{'weights':>8} {'starts':>7} {'first':>7} {'second':>7} {'ratio':>6} "
        f"{'expected':>8} {'deviation':>9} {'starts/s':>8} {'claims':>6} {'one user':>9} "
        f"{'cap':>4} {'most':>7} {'backlogged':>10} {'load 1m':>7} {'verdict':>7}"
    )
    for run in runs:
        first, second = run["starts_per_user"].values()
        claims = run["claims"]
        most = "/".join(str(count) for count in run["most_processing_per_user"])
        print(
            f"{'{:g}:{:g}'.format(*run['weights']):>8} {run['starts_counted']:>7,} "
            f"{first:>7,} {second:>7,} {run['ratio']:>6.3f} {run['expected_ratio']:>8.2f} "
            f"{run['deviation']:>+9.2%} {run['starts_per_s']:>8,.1f} "
            f"{claims['claims']:>6,} "
            f"{claims['of_them_from_one_user']:>4}/{claims['claims_of_several_starts']:<4} "
            f"{run['max_running']:>4} {most:>7}"
            f"{'yes' if run['backlogged_throughout'] else 'NO':>10} "
            f"{run['load_at_end']['loadavg'][0]:>7} {verdict(run['passed']):>7}"
        )
    passed = all(run["passed"] for run in runs)
    print(
        f"weights: {verdict(passed)} - every ratio of starts within "
        f"{WEIGHT_TOLERANCE:.0%} of the ratio of weights, both users backlogged throughout"
    )
    print("(one user: of the claims that started several jobs, those that took them all from")
    print(" one user, though both waited; most: the most processing at once per user, from the")
    print(" history, beside their running cap)")
    return passed


async def weights(server: str, scale: Scale, options: Any) -> dict[str, Any]:
    """Each pair of weights on a fresh database; saved after each run."""
    report: dict[str, Any] = {
        "scenario": "weights",
        "machine": await machine(server),
        "settings": {
            "workers": options.workers,
            "concurrency": options.concurrency,
            "job_ms": options.job_ms,
            "starts_counted": scale.weight_starts,
            "backlog_per_user": scale.weight_backlog,
            "max_running": weights_cap(options, scale),
            "prefetch": options.prefetch,
        },
        "runs": [],
    }
    for pair in WEIGHT_PAIRS:
        print(f"weights: {pair[0]:g} and {pair[1]:g}, {scale.weight_backlog:,} jobs each, "
              f"the first {scale.weight_starts:,} starts ...")  # fmt: skip
        report["runs"].append(await run_weights(server, pair, scale, options))
        save(report, options.output)
    report["passed"] = print_weights(report["runs"])
    return report


# -- caps --------------------------------------------------------------------------------

#: every user's running cap, the pooled type's pool, the rated type's rate
CAPS_MAX_RUNNING = 3
CAPS_POOL = 2
CAPS_RATE = "20/s"
#: the share of each user's backlog of each limited type (the rest: JOB_TYPE)
CAPS_MIX = {POOLED_TYPE: 0.2, RATED_TYPE: 0.2}
#: backlogs this much above what the caps let the run start, so that nobody runs dry
CAPS_BACKLOG_MARGIN = 1.2

#: the history with each job's user and type, in event-id order, up to the entry ``until``
#: (None: all of it)
HISTORY = b"""
SELECT e.job_id, e.status, e.at, j.user_id, j.type
FROM jobdesk.job_events AS e JOIN jobdesk.jobs AS j ON j.id = e.job_id
WHERE %(until)s::bigint IS NULL OR e.id <= %(until)s::bigint
ORDER BY e.id
"""


def caps_backlog(user: int, jobs: int) -> list[str]:
    """A user's backlog, as the types of its jobs in their order: CAPS_MIX, shuffled (the
    same for every run: seeded by the user's number)."""
    types = [kind for kind, share in CAPS_MIX.items() for _ in range(round(jobs * share))]
    types += [JOB_TYPE] * (jobs - len(types))
    random.Random(user).shuffle(types)
    return types


def most_in_window(starts: list[datetime], period: float) -> int:
    """The most of ``starts`` in any window ``[t, t + period)``: the busiest window starts
    at a start, so each start is tried as a window's beginning."""
    ordered = sorted(starts)
    most = 0
    end = 0
    for begin, at in enumerate(ordered):
        while end < len(ordered) and (ordered[end] - at).total_seconds() < period:
            end += 1
        most = max(most, end - begin)
    return most


def replay(rows: list[tuple[str, str, datetime, str, str]]) -> dict[str, Any]:
    """The history replayed: a job processes from its start event until its next event.

    Returns the most processing at once per user and per type, the starts per user and per
    type, and the start times of each type.
    """
    processing: dict[str, tuple[str, str]] = {}
    now_by_user: dict[str, int] = {}
    now_by_type: dict[str, int] = {}
    most_by_user: dict[str, int] = {}
    most_by_type: dict[str, int] = {}
    starts_by_user: dict[str, int] = {}
    start_times: dict[str, list[datetime]] = {}
    for job_id, status, at, user, kind in rows:
        if job_id in processing:  # any entry after a start ends that start
            ended_user, ended_type = processing.pop(job_id)
            now_by_user[ended_user] -= 1
            now_by_type[ended_type] -= 1
        if status == "processing":
            processing[job_id] = (user, kind)
            now_by_user[user] = now_by_user.get(user, 0) + 1
            now_by_type[kind] = now_by_type.get(kind, 0) + 1
            most_by_user[user] = max(most_by_user.get(user, 0), now_by_user[user])
            most_by_type[kind] = max(most_by_type.get(kind, 0), now_by_type[kind])
            starts_by_user[user] = starts_by_user.get(user, 0) + 1
            start_times.setdefault(kind, []).append(at)
    return {
        "most_by_user": most_by_user,
        "most_by_type": most_by_type,
        "starts_by_user": starts_by_user,
        "start_times": start_times,
        "still_processing": len(processing),
    }


async def caps(server: str, scale: Scale, options: Any) -> dict[str, Any]:
    """A run under every kind of limit at once, then its history replayed."""
    seconds = options.job_ms / 1000
    rate = Rate.parse(CAPS_RATE)
    users = [f"capped-{n}" for n in range(scale.caps_users)]
    # What the users' caps let start over the run, shared among them, plus the margin.
    per_user = int(CAPS_MAX_RUNNING / seconds * options.duration * CAPS_BACKLOG_MARGIN)
    print(f"caps: {len(users)} users with max_running {CAPS_MAX_RUNNING} and {per_user:,} jobs "
          f"each, {POOLED_TYPE} pool {CAPS_POOL}, {RATED_TYPE} rate {CAPS_RATE}, "
          f"{options.duration:.0f} s ...")  # fmt: skip
    report: dict[str, Any] = {
        "scenario": "caps",
        "machine": await machine(server),
        "settings": {
            "workers": options.workers,
            "concurrency": options.concurrency,
            "job_ms": options.job_ms,
            "duration_s": options.duration,
            "users": len(users),
            "backlog_per_user": per_user,
            "mix": CAPS_MIX,
            "max_running": CAPS_MAX_RUNNING,
            "pool": {POOLED_TYPE: CAPS_POOL},
            "rate": {RATED_TYPE: CAPS_RATE},
            "prefetch": options.prefetch,
        },
    }
    async with fresh_database(server) as name:
        url = url_of(server, name)
        async with (
            JobDesk.open(url_of(server, name, pool_max="10")) as desk,
            await psycopg.AsyncConnection.connect(url, autocommit=True) as connection,
        ):
            fill_started = time.perf_counter()
            await desk.set_type_limits(POOLED_TYPE, max_running=CAPS_POOL)
            await desk.set_type_limits(RATED_TYPE, rate=CAPS_RATE)
            for number, user in enumerate(users):
                await desk.set_user_limits(
                    user, max_running=CAPS_MAX_RUNNING, max_waiting=per_user, max_daily=MAX_DAILY
                )
                backlog = caps_backlog(number, per_user)
                for start in range(0, per_user, 1000):
                    await desk.create_jobs(
                        user,
                        [
                            JobSpec(kind, {"seconds": seconds})
                            for kind in backlog[start : start + 1000]
                        ],
                    )
            fill_seconds = time.perf_counter() - fill_started
            async with workers_running(desk, url, options) as (processes, logs, statuses):
                load_before = load()
                window_start = await scalar(connection, "SELECT now()")
                deadline = time.monotonic() + options.duration
                while time.monotonic() < deadline:
                    check_workers(processes, logs)
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                window_end = await scalar(connection, "SELECT now()")
                load_after = load()
            pending = await scalar(
                connection, "SELECT count(*) FROM jobdesk.jobs WHERE status = 'pending'"
            )
            rows = await (await connection.execute(HISTORY, {"until": None})).fetchall()
    history = replay(rows)
    rated = history["start_times"].get(RATED_TYPE, [])
    checks = [
        {
            "limit": f"user {user} max_running",
            "allowed": CAPS_MAX_RUNNING,
            "most": history["most_by_user"].get(user, 0),
            "starts": history["starts_by_user"].get(user, 0),
        }
        for user in users
    ]
    checks.append(
        {
            "limit": f"type {POOLED_TYPE} pool",
            "allowed": CAPS_POOL,
            "most": history["most_by_type"].get(POOLED_TYPE, 0),
            "starts": len(history["start_times"].get(POOLED_TYPE, [])),
        }
    )
    checks.append(
        {
            "limit": f"type {RATED_TYPE} rate {rate}, starts in {rate.period_seconds:g} s",
            "allowed": rate.count,
            "most": most_in_window(rated, rate.period_seconds),
            "starts": len(rated),
        }
    )
    for check in checks:
        check["passed"] = check["most"] <= check["allowed"]
    run_seconds = (window_end - window_start).total_seconds()
    report["run"] = {
        "fill_s": round(fill_seconds, 1),
        "window_s": round(run_seconds, 1),
        "history_entries": len(rows),
        "starts": sum(history["starts_by_user"].values()),
        "starts_by_type": {kind: len(times) for kind, times in history["start_times"].items()},
        "rated_starts_per_s": round(len(rated) / run_seconds, 1),
        "pending_at_end": pending,
        "checks": checks,
        "passed": all(check["passed"] for check in checks),
        "worker_exit_statuses": statuses,
        "load_at_start": load_before,
        "load_at_end": load_after,
    }
    print_caps(report["run"])
    return report


def print_caps(run: dict[str, Any]) -> None:
    """The checks as a table, then one PASS/FAIL line."""
    print()
    print(f"{'limit':<42} {'allowed':>7} {'most':>5} {'starts':>7} {'verdict':>7}")
    for check in run["checks"]:
        print(
            f"{check['limit']:<42} {check['allowed']:>7} {check['most']:>5} "
            f"{check['starts']:>7,} {verdict(check['passed']):>7}"
        )
    by_type = ", ".join(
        f"{kind} {count:,}" for kind, count in sorted(run["starts_by_type"].items())
    )
    print(
        f"{run['starts']:,} starts in {run['window_s']} s ({by_type}); "
        f"{run['rated_starts_per_s']} rated starts/s; {run['pending_at_end']:,} jobs still "
        f"pending; load {run['load_at_end']['loadavg']}"
    )
    failed = [check["limit"] for check in run["checks"] if not check["passed"]]
    print(
        "caps: PASS - no limit exceeded at any point of the history"
        if not failed
        else f"caps: FAIL - exceeded: {'; '.join(failed)}"
    )


# -- the scenarios -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """One benchmark: its name on the command line, what it shows, how to run it."""

    name: str
    summary: str
    run: Callable[[str, Scale, Any], Awaitable[dict[str, Any]]]


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario("starvation", "light users' create->start beside one user's backlog", starvation),
        Scenario("claim-cost", "claim latency and plan on 1,000,000 pending jobs", claim_cost),
        Scenario("weights", "starts of two backlogged users by weight, 3:1 and 1:1", weights),
        Scenario("caps", "user caps, a type's pool and rate, replayed from the history", caps),
    )
}


def save(report: dict[str, Any], output: Path | None) -> Path:
    """Write ``report`` as JSON (to ``output``, else a new file under bench/results/)."""
    if output is None:
        RESULTS.mkdir(exist_ok=True)
        stamp = report["machine"]["date"].replace(":", "").replace("-", "").replace("+0000", "Z")
        output = RESULTS / f"bench_fairness-{report['scenario']}-{stamp}.json"
    output.write_text(json.dumps(report, indent=2, default=str))
    return output


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS), help="the benchmark to run")
    parser.add_argument("--server-url", default=DEFAULT_SERVER, help="PostgreSQL server")
    parser.add_argument("--quick", action="store_true", help="small numbers: a smoke run")
    parser.add_argument(
        "--backlog",
        type=int,
        action="append",
        help="starvation: A's backlog (repeat for several runs; default 0, 10000 and 100000)",
    )
    parser.add_argument(
        "--duration", type=float, help="starvation and caps: the window, s (default 60)"
    )
    parser.add_argument("--workers", type=int, default=4, help="worker processes (4)")
    parser.add_argument("--concurrency", type=int, default=10, help="slots per worker (10)")
    parser.add_argument(
        "--job-ms", type=float, help="a job's length, ms (weights 5, the others 50)"
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        help="starvation, weights, caps: the workers' --prefetch (default: theirs, which "
        "adapts; 0: none, so a job is claimed at the next free slot, not behind prefetched "
        "work)",
    )
    parser.add_argument(
        "--heavy-max-running",
        type=int,
        help="starvation, issue 14's limits: A's running cap (default: 25 times the worker "
        "slots, more than the workers hold with what they prefetch, so that the order, not "
        "the cap, is measured; 0 keeps the default cap)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=600.0,
        help="starvation: seconds to wait after the window; weights: for the starts (600)",
    )
    parser.add_argument(
        "--max-running",
        type=int,
        help="weights: each user's running cap (default: their backlog, so that it never binds)",
    )
    parser.add_argument("--claims", type=int, help="claim-cost: claims timed (default 2000)")
    parser.add_argument("--output", type=Path, help="the JSON file (default under bench/results)")
    options = parser.parse_args()
    scale = QUICK if options.quick else FULL
    if options.duration is None:
        options.duration = scale.duration
    if options.job_ms is None:
        # weights counts 10,000 starts: short jobs keep that short
        options.job_ms = 5.0 if options.scenario == "weights" else 50.0
    return options


async def main() -> None:
    """Run the scenario asked for and save its figures."""
    options = arguments()
    scale = QUICK if options.quick else FULL
    report = await SCENARIOS[options.scenario].run(options.server_url, scale, options)
    print(f"\nsaved {save(report, options.output)}")


if __name__ == "__main__":
    asyncio.run(main())
