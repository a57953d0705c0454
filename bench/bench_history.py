"""A long history of finished jobs beside a live load, on PostgreSQL; retention; a soak.

    .venv/bin/python bench/bench_history.py                       # 10,000,000 jobs, 30 min soak
    .venv/bin/python bench/bench_history.py --jobs 1000000 --soak-minutes 3
    .venv/bin/python bench/bench_history.py --quick               # a smoke run, a minute

Two fresh databases (``jobdesk_bench_*`` on the server of ``BENCH_POSTGRES_URL``,
default ``postgresql://root@127.0.0.1:5432/postgres``), each measured the same way:

1. *history*: ``--jobs`` finished jobs (90% completed, 7% failed, 3% cancelled) over
   ``--users`` users, finished evenly over the last 60 days, with one history entry
   each, written by one ``INSERT ... SELECT generate_series`` per million (set-up, not
   the thing measured), then VACUUM ANALYZE, as an old table would be. The second
   database has no history at all.
2. *live load*, on 1,000 other users: claim latency (``claim_jobs(limit=1)`` then
   ``complete_job``, one at a time, ``--claims`` of them, beside 5,000 pending jobs);
   a drain of ``--drain`` jobs (10 loops, claims of 10, ``complete_jobs``); a fairness
   check (one user with a backlog of 2,000 jobs, 20 light users with 10 each:
   how many claims until every light user has started one); and ``get_user_jobs``
   latency for those users (first page, and filtered to active jobs), plus a history
   user's first page.
3. on the history database only: table and index sizes, a retention pass with the
   default policy (7 days completed, 30 days failed and cancelled) and its duration,
   the sizes again (before and after VACUUM: deleted rows' space is reused, not given
   back), and the live load again.
4. ``--soak-minutes`` of steady load (a producer, two claim-and-complete loops) with
   a retention pass every 10 s on a policy that expires the soak's own jobs after a
   minute, sampling ``n_live_tup``/``n_dead_tup`` of ``jobs`` and ``job_events`` from
   ``pg_stat_user_tables`` every 5 s: dead rows must stay bounded (autovacuum's
   thresholds of migration 0012), not grow with time. On a server with autovacuum
   off, the sampler stands in for it: it VACUUMs a table when its dead rows pass
   migration 0012's trigger, and counts how often (``emulated_vacuums``).

Figures come from one process on whatever machine runs it: compare the two databases
measured side by side, not numbers across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench_postgres import fresh_database, percentile, url_of  # the database set-up they share
from jobdesk import Completion, JobDesk, JobSpec, JobStatus, Limits, RetentionPolicy

LIMITS = Limits(max_running_per_user=10**6, max_waiting_per_user=10**6, max_created_per_day=10**9)
RESULTS = Path(__file__).resolve().parent / "results"
LIVE_USERS = 1000
#: migration 0012's autovacuum trigger for jobs and job_events (threshold + scale * live)
VACUUM_THRESHOLD = 10_000
VACUUM_SCALE = 0.01
CHUNK = 1_000_000

# One statement per chunk: ids below any real one ("00" + hex: Crockford base32 digits,
# older than every id jobdesk makes), finished evenly over the last 60 days, oldest first.
FILL_JOBS = """
INSERT INTO jobdesk.jobs (
    id, user_id, type, status, input, result, error, progress, attempt, max_attempts,
    created_at, run_at, started_at, finished_at, updated_at, worker_id
)
SELECT '00' || upper(lpad(to_hex(g), 24, '0')),
       'user-' || (g %% %(users)s),
       (ARRAY['render', 'email', 'extract'])[1 + g %% 3],
       s.status, '{"n": 1}'::jsonb,
       CASE WHEN s.status = 'completed' THEN '{"ok": true}'::jsonb END,
       CASE WHEN s.status = 'failed' THEN '{"message": "boom"}'::jsonb END,
       100, 1, 3, t.at - interval '2 minutes', t.at - interval '2 minutes',
       t.at - interval '1 minute', t.at, t.at, 'bench'
FROM generate_series(%(first)s, %(last)s) AS g
CROSS JOIN LATERAL (
    SELECT now() - interval '60 days' * (1 - g::double precision / %(count)s) AS at
) AS t
CROSS JOIN LATERAL (
    SELECT CASE WHEN g %% 100 < 90 THEN 'completed'
                WHEN g %% 100 < 97 THEN 'failed' ELSE 'cancelled' END AS status
) AS s
"""
FILL_EVENTS = """
INSERT INTO jobdesk.job_events (job_id, at, status, attempt, worker_id)
SELECT id, finished_at, status, 1, 'bench' FROM jobdesk.jobs
WHERE id >= %(low)s AND id <= %(high)s
"""
FILL_USERS = """
INSERT INTO jobdesk.users (user_id) SELECT 'user-' || g FROM generate_series(0, %(users)s - 1) AS g
ON CONFLICT DO NOTHING
"""
SIZES = """
SELECT c.relname AS name, pg_relation_size(c.oid) AS heap,
       pg_indexes_size(c.oid) AS indexes, pg_total_relation_size(c.oid) AS total
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'jobdesk' AND c.relname IN ('jobs', 'job_events')
ORDER BY c.relname
"""
DEAD = """
SELECT relname AS name, n_live_tup AS live, n_dead_tup AS dead,
       autovacuum_count AS autovacuums
FROM pg_stat_user_tables WHERE schemaname = 'jobdesk' AND relname IN ('jobs', 'job_events')
ORDER BY relname
"""


def hex_id(number: int) -> str:
    return "00" + f"{number:024X}"


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [value * 1000 for value in values]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
    }


async def fill_history(database: str, count: int, users: int) -> float:
    """``count`` finished jobs over ``users`` users, each with one history entry; seconds."""
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url_of(database), autocommit=True) as db:
        await db.execute(FILL_USERS, {"users": users})
        for first in range(1, count + 1, CHUNK):
            last = min(count, first + CHUNK - 1)
            params = {"first": first, "last": last, "count": count, "users": users}
            await db.execute(FILL_JOBS, params)
            await db.execute(FILL_EVENTS, {"low": hex_id(first), "high": hex_id(last)})
            print(f"  history: {last:,} of {count:,} jobs", flush=True)
        await db.execute("VACUUM ANALYZE jobdesk.jobs")
        await db.execute("VACUUM ANALYZE jobdesk.job_events")
    return time.perf_counter() - started


async def sizes(database: str) -> dict[str, dict[str, int]]:
    """Heap, index and total bytes of jobs and job_events, and the heap's reusable bytes
    (``pg_freespacemap``, where the server has it: deletes free space for new rows, they
    do not shrink the file)."""
    async with await psycopg.AsyncConnection.connect(url_of(database), autocommit=True) as db:
        cursor = await db.execute(SIZES)
        found = {
            row[0]: {"heap": row[1], "indexes": row[2], "total": row[3]}
            for row in await cursor.fetchall()
        }
        try:
            await db.execute("CREATE EXTENSION IF NOT EXISTS pg_freespacemap")
        except psycopg.Error:
            return found
        for table, figures in found.items():
            cursor = await db.execute(
                "SELECT coalesce(sum(avail), 0) FROM pg_freespace(%s::regclass)",
                (f"jobdesk.{table}",),
            )
            row = await cursor.fetchone()
            figures["heap_free"] = int(row[0]) if row else 0
        return found


async def make_live(desk: JobDesk, per_user: int, users: int, prefix: str) -> None:
    """``per_user`` pending jobs for each of ``users`` live users."""
    for n in range(users):
        specs = [JobSpec("live", {"n": k}) for k in range(per_user)]
        await desk.create_jobs(f"{prefix}-{n}", specs)


async def measure_live(desk: JobDesk, claims: int, drain: int, users: int) -> dict[str, Any]:
    """Claim latency, a drain, fairness and listing, on live users only."""
    worker = await desk.verify_worker_token(await desk.create_worker_token(f"w-{uuid.uuid4()}"))
    tag = uuid.uuid4().hex[:6]
    # claim latency beside 5,000 pending jobs
    await make_live(desk, 5, LIVE_USERS, f"claim{tag}")
    timings: list[float] = []
    for _ in range(claims):
        started = time.perf_counter()
        [job] = await desk.claim_jobs(worker, types="live", limit=1)
        timings.append(time.perf_counter() - started)
        await desk.complete_job(worker, job.id, None, attempt=job.attempt)
    while jobs := await desk.claim_jobs(worker, types="live", limit=100):  # the rest
        await desk.complete_jobs(worker, [Completion(job.id, job.attempt) for job in jobs])
    results: dict[str, Any] = {"claim": summary_ms(timings)}

    # the drain
    await make_live(desk, max(1, drain // LIVE_USERS), LIVE_USERS, f"drain{tag}")

    async def drain_loop() -> int:
        done = 0
        while jobs := await desk.claim_jobs(worker, types="live", limit=10):
            outcomes = await desk.complete_jobs(
                worker, [Completion(job.id, job.attempt) for job in jobs]
            )
            done += len(outcomes)
        return done

    started = time.perf_counter()
    done = sum(await asyncio.gather(*(drain_loop() for _ in range(10))))
    elapsed = time.perf_counter() - started
    results["drain"] = {
        "jobs": done,
        "seconds": round(elapsed, 3),
        "jobs_per_s": round(done / elapsed, 1),
    }

    # fairness: a heavy user's backlog, light users behind it
    heavy = f"heavy{tag}"
    await desk.create_jobs(heavy, [JobSpec("live", {"n": k}) for k in range(1000)])
    await desk.create_jobs(heavy, [JobSpec("live", {"n": k}) for k in range(1000)])
    light = {f"light{tag}-{n}" for n in range(20)}
    for user in sorted(light):
        await desk.create_jobs(user, [JobSpec("live", {"n": k}) for k in range(10)])
    claimed_until_all_light = 0
    seen: set[str] = set()
    while seen != light:
        jobs = await desk.claim_jobs(worker, types="live", limit=1)
        claimed_until_all_light += 1
        seen.update(job.user_id for job in jobs if job.user_id in light)
        await desk.complete_jobs(worker, [Completion(job.id, job.attempt) for job in jobs])
    while jobs := await desk.claim_jobs(worker, types="live", limit=100):
        await desk.complete_jobs(worker, [Completion(job.id, job.attempt) for job in jobs])
    results["fairness"] = {"claims_until_every_light_user_started": claimed_until_all_light}

    # listing: the live users' pages (their jobs have all finished by now)
    first: list[float] = []
    active: list[float] = []
    for n in range(500):
        user = f"drain{tag}-{(n * 7919) % LIVE_USERS}"
        started = time.perf_counter()
        await desk.get_user_jobs(user, limit=20)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        await desk.get_user_jobs(user, status=["pending", "processing"], limit=20)
        active.append(time.perf_counter() - started)
    history: list[float] = []
    for n in range(500):
        started = time.perf_counter()
        await desk.get_user_jobs(f"user-{(n * 7919) % users}", limit=20)
        history.append(time.perf_counter() - started)
    results["get_user_jobs"] = summary_ms(first)
    results["get_user_jobs_active"] = summary_ms(active)
    results["get_user_jobs_history_user"] = summary_ms(history)
    return results


async def soak(database: str, desk: JobDesk, minutes: float) -> dict[str, Any]:
    """Steady load and retention every 10 s; dead rows sampled every 5 s."""
    policy = RetentionPolicy(
        types={
            "soak": {
                JobStatus.COMPLETED: timedelta(minutes=1),
                JobStatus.FAILED: timedelta(minutes=1),
                JobStatus.CANCELLED: timedelta(minutes=1),
            }
        }
    )
    worker = await desk.verify_worker_token(await desk.create_worker_token("soaker"))
    stop = asyncio.Event()
    created = 0
    completed = 0
    deleted = 0
    samples: list[dict[str, Any]] = []

    async def produce() -> None:
        nonlocal created
        n = 0
        while not stop.is_set():
            await desk.create_jobs(
                f"soak-{n % 200}", [JobSpec("soak", {"n": n}) for _ in range(10)]
            )
            created += 10
            n += 1
            await asyncio.sleep(0.05)

    async def consume() -> None:
        nonlocal completed
        while not stop.is_set():
            jobs = await desk.claim_jobs(worker, types="soak", limit=10)
            if not jobs:
                await asyncio.sleep(0.05)
                continue
            for job in jobs:
                await desk.update_job_progress(worker, job.id, 50, attempt=job.attempt)
            await desk.complete_jobs(worker, [Completion(job.id, job.attempt) for job in jobs])
            completed += len(jobs)

    async def retain() -> None:
        nonlocal deleted
        while not stop.is_set():
            await asyncio.sleep(10)
            deleted += (await desk.apply_retention(policy, pause=0.05)).total

    vacuums = {"jobs": 0, "job_events": 0}

    async def sample() -> None:
        began = time.perf_counter()
        async with await psycopg.AsyncConnection.connect(url_of(database), autocommit=True) as db:
            autovacuum = await (await db.execute("SHOW autovacuum")).fetchone()
            emulate = autovacuum is not None and autovacuum[0] == "off"
            while not stop.is_set():
                cursor = await db.execute(DEAD)
                row: dict[str, Any] = {"t": round(time.perf_counter() - began)}
                for name, live, dead, autovacuums in await cursor.fetchall():
                    row[name] = {"live": live, "dead": dead, "autovacuums": autovacuums}
                    # This server has autovacuum off (a shared machine's setting, not
                    # ours to change): stand in for it with migration 0012's trigger.
                    if emulate and dead > VACUUM_THRESHOLD + VACUUM_SCALE * live:
                        await db.execute(f"VACUUM jobdesk.{name}")  # a known table name
                        vacuums[name] += 1
                samples.append(row)
                await asyncio.sleep(5)

    tasks = [
        asyncio.create_task(produce()),
        asyncio.create_task(consume()),
        asyncio.create_task(consume()),
        asyncio.create_task(retain()),
        asyncio.create_task(sample()),
    ]
    await asyncio.sleep(minutes * 60)
    stop.set()
    await asyncio.gather(*tasks)
    half = samples[len(samples) // 2 :]
    return {
        "minutes": minutes,
        "created": created,
        "completed": completed,
        "deleted_by_retention": deleted,
        "dead_max": {t: max(s[t]["dead"] for s in samples) for t in ("jobs", "job_events")},
        "dead_max_second_half": {
            t: max(s[t]["dead"] for s in half) for t in ("jobs", "job_events")
        },
        "live_end": {t: samples[-1][t]["live"] for t in ("jobs", "job_events")},
        "autovacuums": {t: samples[-1][t]["autovacuums"] for t in ("jobs", "job_events")},
        "emulated_vacuums": vacuums,
        "samples": samples,
    }


async def run_history(
    jobs: int, users: int, claims: int, drain: int, soak_minutes: float
) -> dict[str, Any]:
    async with fresh_database(LIMITS) as name:
        print(f"history database {name}: filling {jobs:,} finished jobs", flush=True)
        fill_seconds = await fill_history(name, jobs, users)
        results: dict[str, Any] = {"fill_seconds": round(fill_seconds, 1)}
        async with JobDesk.open(url_of(name, pool_max="12"), limits=LIMITS) as desk:
            print("  live load on the full history", flush=True)
            results["live_before_retention"] = await measure_live(desk, claims, drain, users)
            results["sizes_before"] = await sizes(name)
            print("  retention pass (default policy)", flush=True)
            started = time.perf_counter()
            report = await desk.apply_retention(batch_size=5000)
            results["retention"] = {
                "seconds": round(time.perf_counter() - started, 1),
                "deleted": {str(k): v for k, v in report.deleted.items()},
                "batches": report.batches,
                "jobs_per_s": round(report.total / max(1e-9, time.perf_counter() - started)),
            }
            results["sizes_after"] = await sizes(name)
            async with await psycopg.AsyncConnection.connect(url_of(name), autocommit=True) as db:
                await db.execute("VACUUM ANALYZE jobdesk.jobs")
                await db.execute("VACUUM ANALYZE jobdesk.job_events")
            results["sizes_after_vacuum"] = await sizes(name)
            print(json.dumps(results, default=str), flush=True)  # so far, if the rest fails
            print("  live load after retention", flush=True)
            results["live_after_retention"] = await measure_live(desk, claims, drain, users)
            if soak_minutes > 0:
                print(f"  soak: {soak_minutes} min", flush=True)
                results["soak"] = await soak(name, desk, soak_minutes)
    return results


async def run_empty(claims: int, drain: int, users: int) -> dict[str, Any]:
    async with fresh_database(LIMITS) as name:
        print(f"empty database {name}: live load", flush=True)
        async with JobDesk.open(url_of(name, pool_max="12"), limits=LIMITS) as desk:
            return {
                "live": await measure_live(desk, claims, drain, users),
                "sizes": await sizes(name),
            }


def ratios(history: dict[str, Any], empty: dict[str, Any]) -> dict[str, float]:
    """History over empty: p99s (lower is better) and the drain rate (higher is better)."""
    out: dict[str, float] = {}
    for key in ("claim", "get_user_jobs", "get_user_jobs_active"):
        out[f"{key}_p99"] = round(history[key]["p99_ms"] / empty[key]["p99_ms"], 3)
    out["drain_rate"] = round(history["drain"]["jobs_per_s"] / empty["drain"]["jobs_per_s"], 3)
    return out


async def main(arguments: argparse.Namespace) -> None:
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "arguments": vars(arguments),
    }
    # Empty first, then history: each measured on a quiet database of its own.
    results["empty"] = await run_empty(arguments.claims, arguments.drain, arguments.users)
    results["history"] = await run_history(
        arguments.jobs, arguments.users, arguments.claims, arguments.drain, arguments.soak_minutes
    )
    empty = results["empty"]["live"]
    results["history_over_empty"] = {
        "before_retention": ratios(results["history"]["live_before_retention"], empty),
        "after_retention": ratios(results["history"]["live_after_retention"], empty),
    }
    shown = {key: value for key, value in results.items() if key != "history"}
    shown["history"] = {key: value for key, value in results["history"].items() if key != "soak"}
    if "soak" in results["history"]:
        shown["soak"] = {k: v for k, v in results["history"]["soak"].items() if k != "samples"}
    print(json.dumps(shown, indent=2, default=str))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bench_history-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000_000, help="finished jobs in the history")
    parser.add_argument("--users", type=int, default=100_000, help="users they belong to")
    parser.add_argument("--claims", type=int, default=2000, help="claims timed one at a time")
    parser.add_argument("--drain", type=int, default=10_000, help="jobs in the drain")
    parser.add_argument("--soak-minutes", type=float, default=30.0, help="0 skips the soak")
    parser.add_argument("--quick", action="store_true", help="100,000 jobs, a 1-minute soak")
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.jobs, parsed.users, parsed.claims, parsed.drain = 100_000, 10_000, 300, 2000
        parsed.soak_minutes = min(parsed.soak_minutes, 1.0)
    asyncio.run(main(parsed))
