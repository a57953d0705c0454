"""jobdesk on PostgreSQL: create rate, drain rate, wake-up latency, listing on 1,000,000 jobs.

    .venv/bin/python bench/bench_postgres.py            # the full run, a few minutes
    .venv/bin/python bench/bench_postgres.py --quick    # a smoke run, seconds

Each measurement runs on a fresh database (``jobdesk_bench_*``) on the server of
``BENCH_POSTGRES_URL`` (default ``postgresql://root@127.0.0.1:5432/postgres``), at
the server's default durability (fsync and synchronous_commit on). This is one
process measuring itself; the side-by-side comparison with the peers is
``make bench-peers`` (``bench/peers/``, the harness of ``../shared/bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from jobdesk import Completion, JobDesk, Limits
from jobdesk.changes import JobChange
from jobdesk.ids import new_job_id
from jobdesk.store.postgres import Q

SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")
UNLIMITED = Limits(max_active_per_user=10**9, max_created_per_day=10**9)
RESULTS = Path(__file__).resolve().parent / "results"


def url_of(database: str, **query: str) -> str:
    """The server URL pointed at ``database``."""
    options = "&".join(f"{key}={value}" for key, value in query.items())
    return urlunsplit(urlsplit(SERVER)._replace(path=f"/{database}", query=options))


@asynccontextmanager
async def fresh_database(limits: Limits = UNLIMITED) -> AsyncIterator[str]:
    """A new, migrated database for one measurement, dropped afterwards."""
    name = f"jobdesk_bench_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(SERVER, autocommit=True) as admin:
        await admin.execute(f"CREATE DATABASE {name}")
    try:
        async with JobDesk.open(url_of(name), limits=limits):
            pass
        yield name
    finally:
        async with await psycopg.AsyncConnection.connect(SERVER, autocommit=True) as admin:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure_create(count: int, producers: int) -> dict[str, float]:
    """create_job one at a time (limit checks on), from ``producers`` concurrent tasks."""
    async with fresh_database() as name:
        url = url_of(name, pool_max=str(max(2, producers)))
        async with JobDesk.open(url, limits=UNLIMITED) as desk:

            async def produce(index: int) -> None:
                for n in range(index, count, producers):
                    await desk.create_job(f"user-{n % 1000}", "noop", {"n": n})

            started = time.perf_counter()
            await asyncio.gather(*(produce(i) for i in range(producers)))
            elapsed = time.perf_counter() - started
    return {"jobs": count, "producers": producers, "jobs_per_s": count / elapsed}


async def measure_drain(count: int, concurrency: int, batch: int) -> dict[str, float]:
    """``count`` queued jobs, claimed ``batch`` at a time by ``concurrency`` loops, completed
    together (``complete_jobs``: one commit per batch)."""
    async with fresh_database() as name:
        url = url_of(name, pool_max=str(concurrency + 1))
        async with JobDesk.open(url, limits=UNLIMITED) as desk:
            await fill(name, count)
            worker = await desk.verify_worker_token(await desk.create_worker_token("drainer"))

            async def drain() -> int:
                done = 0
                while jobs := await desk.claim_jobs(worker, limit=batch):
                    outcomes = await desk.complete_jobs(
                        worker, [Completion(job.id, job.attempt) for job in jobs]
                    )
                    done += len(outcomes)
                return done

            started = time.perf_counter()
            done = sum(await asyncio.gather(*(drain() for _ in range(concurrency))))
            elapsed = time.perf_counter() - started
    assert done == count, (done, count)
    return {
        "jobs": count,
        "concurrency": concurrency,
        "batch": batch,
        "jobs_per_s": count / elapsed,
    }


async def fill(database: str, count: int, users: int = 1000) -> None:
    """Queue ``count`` pending jobs fast, with COPY (set-up, not the thing measured)."""
    now = datetime.now(UTC)
    buffer = io.StringIO()
    for n in range(count):
        job_id = new_job_id()
        buffer.write(f"{job_id}\tuser-{n % users}\tnoop\tpending\t{{}}\t3\t{now}\t{now}\t{now}\n")
    async with await psycopg.AsyncConnection.connect(url_of(database)) as connection:
        async with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY jobdesk.jobs (id, user_id, type, status, input, max_attempts, "
                "created_at, run_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            await copy.write(buffer.getvalue())
        await connection.execute("ANALYZE jobdesk.jobs")
        await connection.commit()


async def measure_latency(count: int, rate: float) -> dict[str, float]:
    """Create -> claim with an idle worker woken by NOTIFY: ``count`` jobs at ``rate``/s."""
    async with fresh_database() as name:
        url = url_of(name)
        async with (
            JobDesk.open(url, limits=UNLIMITED) as producer,
            JobDesk.open(url, limits=UNLIMITED) as consumer,
        ):
            worker = await consumer.verify_worker_token(await consumer.create_worker_token("w"))
            created: dict[str, float] = {}
            delays: list[float] = []

            async def consume() -> None:
                async with consumer.subscribe() as changes:
                    while len(delays) < count:
                        change = await changes.next_change(within=0.5)
                        if isinstance(change, JobChange) and change.status.value != "pending":
                            continue
                        for job in await consumer.claim_jobs(worker, limit=10):
                            delays.append(time.perf_counter() - created[job.id])
                            await consumer.complete_job(worker, job.id, None, attempt=job.attempt)

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.5)  # the worker is idle and listening before the first job
            for n in range(count):
                before = time.perf_counter()
                job = await producer.create_job("user-1", "noop", {"n": n})
                created[job.id] = before
                await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - before)))
            await asyncio.wait_for(task, 30)
    milliseconds = [delay * 1000 for delay in delays]
    return {
        "jobs": count,
        "p50_ms": statistics.median(milliseconds),
        "p95_ms": percentile(milliseconds, 0.95),
        "p99_ms": percentile(milliseconds, 0.99),
        "max_ms": max(milliseconds),
    }


async def measure_listing(jobs: int, users: int, samples: int) -> dict[str, object]:
    """get_user_jobs latency on a table of ``jobs`` jobs across ``users`` users, and its plan."""
    async with fresh_database() as name:
        await fill(name, jobs, users)
        async with JobDesk.open(url_of(name), limits=UNLIMITED) as desk:
            timings: dict[str, list[float]] = {"first page": [], "by cursor": [], "by status": []}
            for n in range(samples):
                user = f"user-{(n * 7919) % users}"
                started = time.perf_counter()
                page = await desk.get_user_jobs(user, limit=20)
                timings["first page"].append(time.perf_counter() - started)
                if page.next_cursor:
                    started = time.perf_counter()
                    await desk.get_user_jobs(user, limit=20, cursor=page.next_cursor)
                    timings["by cursor"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await desk.get_user_jobs(user, status=["pending", "processing"], limit=20)
                timings["by status"].append(time.perf_counter() - started)
        async with await psycopg.AsyncConnection.connect(url_of(name)) as connection:
            params = {
                "user_id": "user-42",
                "before_id": "8",
                "project_id": None,
                "statuses": None,
                "types": None,
                "limit": 21,
            }
            cursor = await connection.execute(
                ("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + Q["list_user_jobs"]).encode(), params
            )
            plan = "\n".join(row[0] for row in await cursor.fetchall())
    summary: dict[str, object] = {"jobs": jobs, "users": users, "plan": plan}
    for label, values in timings.items():
        if values:
            ms = [value * 1000 for value in values]
            summary[label] = {"p50_ms": statistics.median(ms), "p99_ms": percentile(ms, 0.99)}
    return summary


async def main(quick: bool) -> None:
    """Run every measurement and print and save the figures."""
    scale = 10 if quick else 1
    results: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "create_1_producer": await measure_create(3000 // scale, 1),
        "create_10_producers": await measure_create(5000 // scale, 10),
        "drain_c10_b10": await measure_drain(10_000 // scale, 10, 10),
        "drain_c1_b10": await measure_drain(10_000 // scale, 1, 10),
        "latency": await measure_latency(200 // scale, 20.0),
        "listing": await measure_listing(1_000_000 // scale, 10_000 // scale, 500 // scale),
    }
    for key, value in results.items():
        if isinstance(value, dict):
            shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in value.items()}
            plan = shown.pop("plan", None)
            print(f"{key}: {shown}")
            if plan:
                print(plan)
        else:
            print(f"{key}: {value}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"bench_postgres-{stamp}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    asyncio.run(main(parser.parse_args().quick))
