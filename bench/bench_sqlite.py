"""jobdesk on SQLite: create, claim+complete and listing figures on this machine.

    .venv/bin/python bench/bench_sqlite.py            # the full run (a few minutes)
    .venv/bin/python bench/bench_sqlite.py --quick    # a smoke version (seconds)

Every figure is measured through the public ``JobDesk`` API on a fresh database
file in a temporary directory. The write figures are taken twice: with the
default durability (``synchronous=full``: every acknowledged write survives a
power cut) and with ``?synchronous=normal`` (survives a process crash). The
listing table of 1,000,000 jobs is set-up, not the thing measured: it is
bulk-inserted with ``sqlite3.executemany`` straight into ``jobs`` and analysed.

Prints a table and writes the figures as JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jobdesk import Completion, Job, JobDesk, Limits, Worker
from jobdesk.ids import new_job_id
from jobdesk.store.sqlite import Q

RESULTS = Path(__file__).resolve().parent / "results"
#: high enough that no create is refused: the figures measure inserts, not refusals
HIGH_LIMITS = Limits(max_active_per_user=1_000_000, max_created_per_day=100_000_000)
JOB_TYPES = ("character_extraction", "transcription", "render")
DURABILITIES = ("full", "normal")

Figures = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each benchmark does."""

    creates: int = 5_000
    create_users: int = 50
    drain_jobs: int = 10_000
    table_jobs: int = 1_000_000
    table_users: int = 10_000
    #: one user (``user-00000``) owns this many of ``table_jobs``: a long history
    heavy_user_jobs: int = 50_000
    list_queries: int = 2_000


FULL = Sizes()
QUICK = Sizes(
    creates=200,
    create_users=10,
    drain_jobs=500,
    table_jobs=10_000,
    table_users=100,
    heavy_user_jobs=1_000,
    list_queries=100,
)


# -- helpers ---------------------------------------------------------------------------------


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99 (and mean, max) of latencies in seconds, as milliseconds."""
    ms = sorted(s * 1000.0 for s in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
        "mean_ms": statistics.fmean(ms),
        "max_ms": ms[-1],
    }


def sqlite_url(path: Path, synchronous: str) -> str:
    """The jobdesk URL of a file; ``full`` is the default and needs no option."""
    url = f"sqlite:///{path}"
    return url if synchronous == "full" else f"{url}?synchronous={synchronous}"


def iso(moment: datetime) -> str:
    """A time as jobdesk's SQLite store writes it (ISO 8601 UTC, microseconds)."""
    return moment.isoformat(timespec="microseconds")


async def new_worker(desk: JobDesk, name: str) -> Worker:
    """A worker allowed every type, through the token path a real worker uses."""
    return await desk.verify_worker_token(await desk.create_worker_token(name))


_INSERT_ROW = """
INSERT INTO jobs (
    id, user_id, project_id, type, status, input, result, error, progress, progress_message,
    priority, attempt, max_attempts, attempt_offset, created_at, run_at, started_at,
    finished_at, updated_at, worker_id, lease_expires_at, cancel_requested, idempotency_key
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, 3, 0, ?, ?, ?, ?, ?, ?, ?, 0, NULL)
"""

Row = tuple[Any, ...]


def bulk_insert(path: Path, rows: Iterator[Row], chunk: int = 50_000) -> int:
    """Set-up only: write job rows straight into ``jobs``, then ANALYZE. How many rows.

    The secondary indexes of ``jobs`` are dropped first and rebuilt afterwards from
    the very SQL the migration stored in ``sqlite_master``: building an index once
    is much faster than updating it a million times, and the result is the same.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # This connection builds a fixture, so it may skip the fsyncs and use a big cache.
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute("PRAGMA cache_size = -1000000")
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        total = 0
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(_INSERT_ROW, batch)
                connection.execute("COMMIT")
                total += len(batch)
                batch.clear()
        if batch:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(_INSERT_ROW, batch)
            connection.execute("COMMIT")
            total += len(batch)
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return total
    finally:
        connection.close()


def pending_rows(count: int, users: int) -> Iterator[Row]:
    """Due pending jobs, as ``create_job`` would have stored them."""
    now = iso(datetime.now(UTC) - timedelta(seconds=1))
    for index in range(count):
        job_input = json.dumps({"episode_ids": [f"ep-{index % 7}", f"ep-{index % 11}"]})
        yield (
            new_job_id(), f"user-{index % users:05d}", None, "character_extraction", "pending",
            job_input, None, None, 0.0, 0, now, now, None, None, now, None, None,
        )  # fmt: skip


def history_rows(sizes: Sizes, seed: int = 7) -> Iterator[Row]:
    """A year of history: ``table_jobs`` jobs of ``table_users`` users, mostly finished.

    Ids come from ``new_job_id()`` (time-ordered, as in production); the rows are
    generated oldest first. ``user-00000`` owns ``heavy_user_jobs`` of them and
    has only its newest 10 jobs active; every other user's jobs are spread at
    random, and a job among the newest 3 % of the table is active (pending or
    processing) with probability 1/2, else it is finished.
    """
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / sizes.table_jobs
    heavy_every = sizes.table_jobs // sizes.heavy_user_jobs
    heavy_active_from = sizes.table_jobs - 10 * heavy_every
    recent_from = int(sizes.table_jobs * 0.97)
    lease_end = iso(datetime.now(UTC) + timedelta(minutes=5))
    for index in range(sizes.table_jobs):
        heavy = index % heavy_every == 0
        user = "user-00000" if heavy else f"user-{rng.randrange(1, sizes.table_users):05d}"
        if heavy:
            active = index >= heavy_active_from
        else:
            active = index >= recent_from and rng.random() < 0.5
        if active:
            status = "pending" if rng.random() < 0.6 else "processing"
        else:
            draw = rng.random()
            status = "completed" if draw < 0.88 else "failed" if draw < 0.95 else "cancelled"
        created = start + step * index
        created_text = iso(created)
        started = iso(created + timedelta(seconds=2)) if status != "pending" else None
        finished = (
            iso(created + timedelta(seconds=40))
            if status in {"completed", "failed", "cancelled"}
            else None
        )
        job_type = JOB_TYPES[rng.randrange(len(JOB_TYPES))]
        job_input = json.dumps(
            {"episode_ids": [f"ep-{rng.randrange(1000)}" for _ in range(rng.randrange(1, 6))]}
        )
        result = (
            json.dumps({"characters": [{"name": "Ada", "lines": rng.randrange(200)}]})
            if status == "completed"
            else None
        )
        error = (
            json.dumps({"message": "the model timed out", "code": "TimeoutError"})
            if status == "failed"
            else None
        )
        yield (
            new_job_id(),
            user,
            f"proj-{rng.randrange(5)}" if rng.random() < 0.8 else None,
            job_type,
            status,
            job_input,
            result,
            error,
            100.0 if status == "completed" else 0.0,
            0 if status == "pending" else 1,
            created_text,
            created_text,
            started,
            finished,
            finished or started or created_text,
            None if status == "pending" else "gpu-1",
            lease_end if status == "processing" else None,
        )


async def timed(calls: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    """Latency in seconds of each of ``calls`` sequential calls."""
    latencies = []
    for index in range(calls):
        started = time.perf_counter()
        await call(index)
        latencies.append(time.perf_counter() - started)
    return latencies


# -- A. create_job ---------------------------------------------------------------------------


def _creator(desk: JobDesk, users: int, offset: int) -> Callable[[int], Awaitable[object]]:
    """One producer's call: the ``index``-th create, round-robin over ``users``."""

    async def create(index: int) -> object:
        index += offset
        return await desk.create_job(
            f"user-{index % users:05d}",
            "character_extraction",
            {"episode_ids": [f"ep-{index % 7}", f"ep-{index % 11}"]},
            project_id="proj-1",
        )

    return create


async def bench_create(folder: Path, synchronous: str, sizes: Sizes) -> list[Figures]:
    """``create_job`` one at a time, with the limit checks, round-robin over users."""
    rows: list[Figures] = []
    cases = [
        (f"{sizes.create_users} users, sequential", sizes.create_users, 1),
        (f"{sizes.create_users} users, 10 concurrent tasks", sizes.create_users, 10),
        ("1 user, sequential (its active count grows to n)", 1, 1),
    ]
    for case, users, tasks in cases:
        path = folder / f"create-{synchronous}-{users}-{tasks}.db"
        async with JobDesk.open(sqlite_url(path, synchronous), limits=HIGH_LIMITS) as desk:
            # Warm-up (not measured): every user's row exists, statements are cached.
            for user in range(users):
                await desk.create_job(f"user-{user:05d}", "character_extraction", {"warm": True})

            per_task = sizes.creates // tasks
            started = time.perf_counter()
            chunks = await asyncio.gather(
                *(
                    timed(per_task, _creator(desk, users, offset=task * per_task))
                    for task in range(tasks)
                )
            )
            elapsed = time.perf_counter() - started
        latencies = [latency for chunk in chunks for latency in chunk]
        rows.append(
            {
                "synchronous": synchronous,
                "case": case,
                "n": len(latencies),
                "per_s": len(latencies) / elapsed,
                "seconds": elapsed,
                **percentiles(latencies),
            }
        )
    return rows


# -- B. claim + complete ---------------------------------------------------------------------


async def bench_drain(folder: Path, synchronous: str, sizes: Sizes) -> list[Figures]:
    """Drain ``drain_jobs`` queued jobs with one async loop: claim a batch, complete it."""
    rows: list[Figures] = []
    cases = [
        ("claim_jobs(limit=10), complete_job one by one", 10, "each"),
        ("claim_jobs(limit=1), complete_job", 1, "each"),
        ("claim_jobs(limit=10), complete_job x10 concurrently", 10, "gather"),
        ("claim_jobs(limit=10), complete_jobs(batch of 10)", 10, "batch"),
    ]
    for case, limit, mode in cases:
        path = folder / f"drain-{synchronous}-{limit}-{mode}.db"
        url = sqlite_url(path, synchronous)
        async with JobDesk.open(url) as desk:  # creates the schema
            pass
        bulk_insert(path, pending_rows(sizes.drain_jobs, users=1_000))
        async with JobDesk.open(url) as desk:
            worker = await new_worker(desk, "bench-worker")
            done = claims = 0
            started = time.perf_counter()
            while True:
                jobs = await desk.claim_jobs(worker, limit=limit)
                claims += 1
                if not jobs:
                    break
                if mode == "batch":
                    outcomes = await desk.complete_jobs(
                        worker, [Completion(job.id, job.attempt, {"ok": True}) for job in jobs]
                    )
                    assert all(isinstance(outcome, Job) for outcome in outcomes), outcomes
                elif mode == "gather":
                    await asyncio.gather(
                        *(
                            desk.complete_job(worker, job.id, {"ok": True}, attempt=job.attempt)
                            for job in jobs
                        )
                    )
                else:
                    for job in jobs:
                        await desk.complete_job(worker, job.id, {"ok": True}, attempt=job.attempt)
                done += len(jobs)
            elapsed = time.perf_counter() - started
            assert done == sizes.drain_jobs, (done, sizes.drain_jobs)
        rows.append(
            {
                "synchronous": synchronous,
                "case": case,
                "n": done,
                "claims": claims,
                "per_s": done / elapsed,
                "seconds": elapsed,
            }
        )
    return rows


# -- C. get_user_jobs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListCase:
    """One listing to time: whose jobs, which filter, first page or the one after."""

    name: str
    heavy_user: bool = False
    status: tuple[str, ...] | None = None
    by_cursor: bool = False


LIST_CASES = (
    ListCase("first page (limit 20)"),
    ListCase("page 2, by cursor", by_cursor=True),
    ListCase("status=completed, first page", status=("completed",)),
    ListCase("status=[pending, processing] (active)", status=("pending", "processing")),
    ListCase("heavy user (5 % of the table): first page", heavy_user=True),
    ListCase(
        "heavy user: status=[pending, processing]",
        heavy_user=True,
        status=("pending", "processing"),
    ),
)


def explain(connection: sqlite3.Connection, params: dict[str, Any]) -> list[str]:
    """EXPLAIN QUERY PLAN of ``list_user_jobs`` as an indented tree."""
    plan = connection.execute("EXPLAIN QUERY PLAN " + Q["list_user_jobs"], params).fetchall()
    depth: dict[int, int] = {0: 0}
    lines = []
    for node, parent, _, detail in plan:
        depth[node] = depth.get(parent, 0) + 1
        lines.append("  " * (depth[node] - 1) + str(detail))
    return lines


def list_params(user: str, status: tuple[str, ...] | None, before_id: str | None) -> Figures:
    """Bound parameters of ``list_user_jobs``, as SQLiteStore.list_jobs makes them."""
    return {
        "user_id": user,
        "before_id": before_id or "8",
        "project_id": None,
        "statuses": None if status is None else json.dumps(list(status)),
        "types": None,
        "limit": 21,
    }


async def bench_list(folder: Path, sizes: Sizes) -> tuple[list[Figures], dict[str, list[str]]]:
    """``get_user_jobs`` latency on a table of ``table_jobs`` jobs; and the query plans."""
    path = folder / "list.db"
    url = sqlite_url(path, "full")
    async with JobDesk.open(url) as desk:  # creates the schema
        pass
    started = time.perf_counter()
    inserted = bulk_insert(path, history_rows(sizes))
    elapsed = time.perf_counter() - started
    print(f"  set-up: {inserted:,} jobs inserted and analysed in {elapsed:.1f} s")
    rng = random.Random(11)
    raw = sqlite3.connect(path)
    rows: list[Figures] = []
    plans: dict[str, list[str]] = {}
    try:
        async with JobDesk.open(url) as desk:
            for case in LIST_CASES:
                # Few queries for the heavy user: its filtered listing reads its whole history.
                queries = (
                    max(20, sizes.list_queries // 40) if case.heavy_user else sizes.list_queries
                )
                users = [
                    "user-00000"
                    if case.heavy_user
                    else f"user-{rng.randrange(1, sizes.table_users):05d}"
                    for _ in range(queries)
                ]
                status = None if case.status is None else list(case.status)
                cursors: list[str | None] = [None] * len(users)
                before_ids: list[str | None] = [None] * len(users)
                if case.by_cursor:
                    for index, user in enumerate(users):
                        first = await desk.get_user_jobs(user, status=status, limit=20)
                        cursors[index] = first.next_cursor
                        before_ids[index] = first.items[-1].id if first.next_cursor else None
                # Warm-up: the pages of the measured users are in SQLite's cache.
                for user in users[:50]:
                    await desk.get_user_jobs(user, status=status, limit=20)

                async def listing(
                    index: int,
                    users: list[str] = users,
                    status: list[str] | None = status,
                    cursors: list[str | None] = cursors,
                ) -> object:
                    return await desk.get_user_jobs(
                        users[index], status=status, limit=20, cursor=cursors[index]
                    )

                latencies = await timed(len(users), listing)
                raw_latencies = []
                items = 0
                for user, before_id in zip(users, before_ids, strict=True):
                    params = list_params(user, case.status, before_id)
                    begun = time.perf_counter()
                    items += len(raw.execute(Q["list_user_jobs"], params).fetchall())
                    raw_latencies.append(time.perf_counter() - begun)
                raw_figures = percentiles(raw_latencies)
                rows.append(
                    {
                        "case": case.name,
                        "n": len(latencies),
                        "rows_per_query": items / len(users),
                        **percentiles(latencies),
                        "sql_only_p50_ms": raw_figures["p50_ms"],
                        "sql_only_p99_ms": raw_figures["p99_ms"],
                    }
                )
                plans[case.name] = explain(raw, list_params(users[0], case.status, before_ids[0]))
    finally:
        raw.close()
    return rows, plans


# -- the run ---------------------------------------------------------------------------------


def environment() -> Figures:
    """What the figures were measured on."""

    def command(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "n/a"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in command("lscpu").splitlines()
            if line.startswith("Model name")
        ),
        "n/a",
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "temp_dir": tempfile.gettempdir(),
        "load_average_at_start": os.getloadavg(),
    }


def print_tables(console: Console, figures: Figures) -> None:
    """The figures as three tables and the query plans."""
    create = Table(title="A. create_job, one call at a time (limit checks on)")
    for column in ("synchronous", "case", "n", "creates/s", "p50 ms", "p99 ms"):
        create.add_column(column, justify="left" if column == "case" else "right")
    for row in figures["create"]:
        create.add_row(
            row["synchronous"],
            escape(row["case"]),
            f"{row['n']:,}",
            f"{row['per_s']:,.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
        )
    console.print(create)

    drain = Table(title="B. claim + complete, one async loop")
    for column in ("synchronous", "case", "jobs", "jobs/s", "seconds"):
        drain.add_column(column, justify="left" if column == "case" else "right")
    for row in figures["drain"]:
        drain.add_row(
            row["synchronous"],
            escape(row["case"]),
            f"{row['n']:,}",
            f"{row['per_s']:,.0f}",
            f"{row['seconds']:.1f}",
        )
    console.print(drain)

    listing = Table(
        title=f"C. get_user_jobs(limit=20) on {figures['sizes']['table_jobs']:,} jobs, "
        f"{figures['sizes']['table_users']:,} users"
    )
    for column in ("case", "rows", "p50 ms", "p99 ms", "SQL only p50", "SQL only p99"):
        listing.add_column(column, justify="left" if column == "case" else "right")
    for row in figures["list"]:
        listing.add_row(
            escape(row["case"]),
            f"{row['rows_per_query']:.1f}",
            f"{row['p50_ms']:.3f}",
            f"{row['p99_ms']:.3f}",
            f"{row['sql_only_p50_ms']:.3f}",
            f"{row['sql_only_p99_ms']:.3f}",
        )
    console.print(listing)
    for case, lines in figures["explain"].items():
        console.print(f"EXPLAIN QUERY PLAN list_user_jobs: {case}", style="bold", markup=False)
        for line in lines:
            console.print(f"  {line}", markup=False)


async def run(sizes: Sizes, folder: Path, console: Console) -> Figures:
    """Every benchmark, in order, into one dictionary of figures."""
    figures: Figures = {"environment": environment(), "sizes": asdict(sizes), "timings_s": {}}
    figures["create"], figures["drain"] = [], []

    async def phase(name: str, work: Awaitable[Any]) -> Any:
        console.print(f"{name} ...")
        started = time.perf_counter()
        result = await work
        elapsed = figures["timings_s"][name] = time.perf_counter() - started
        console.print(f"  {name}: {elapsed:.1f} s")
        return result

    for synchronous in DURABILITIES:
        figures["create"] += await phase(
            f"A. create_job, synchronous={synchronous}", bench_create(folder, synchronous, sizes)
        )
        figures["drain"] += await phase(
            f"B. claim + complete, synchronous={synchronous}",
            bench_drain(folder, synchronous, sizes),
        )
    figures["list"], figures["explain"] = await phase("C. get_user_jobs", bench_list(folder, sizes))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to put the database files (a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON figures")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    console = Console()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jobdesk-bench-", dir=args.dir) as folder:
        figures = asyncio.run(run(sizes, Path(folder), console))
    figures["timings_s"]["total"] = time.perf_counter() - started
    figures["quick"] = bool(args.quick)
    print_tables(console, figures)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = args.out / f"bench_sqlite{'-quick' if args.quick else ''}-{stamp}.json"
    target.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    console.print(f"total {figures['timings_s']['total']:.1f} s; figures written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
