"""CPU per job, process by process, for jobdesk and its peers: where the walls are.

    make bench-cpu                     # PgQueuer, jobdesk_rt_pg x1 and http_x1; REPS=3 N=10000
    CPU_LIBS="pgqueuer:default jobdesk_rt_pg:x1" REPS=1 make bench-cpu

Run with the peers' venv from a copy of the shared harness (``run_peers.sh cpu`` makes both),
so that ``lib_<name>`` is importable exactly as ``bench.py`` imports it. For each library
and variant, on a fresh database, it measures the CPU time (user + system, from
``/proc/<pid>/stat``) that each process spends per job on three paths:

- **enqueue**: ``--one-by-one`` jobs enqueued one at a time by the library's ``Producer``
  (the harness's enqueue scenario), no worker running: the producer's CPU and its
  PostgreSQL backends';
- **bulk**: ``--n`` jobs by ``enqueue_bulk`` in chunks of 1,000: the same two;
- **drain**: the variant's worker processes started on an empty queue and left to settle,
  then ``--n`` jobs enqueued in bulk and drained: each worker process's CPU (for
  ``http_*`` the server too) and the PostgreSQL backends' of those processes (the
  producer's connections are not counted: they come and go between the two readings).

Each figure is CPU time, not wall time: a busy machine stretches a run, not the CPU a
job costs, so the figures hold where the rates of the peer table do not. The sum over a
path's processes says how many jobs per second the machine's cores could carry at
most: ``cores / total``; a library whose drain is below that is waiting (round trips),
one at it is at the CPU wall. Prints a table and writes ``results/cpu-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

#: each library's database, made fresh for every measurement
DATABASES = {
    "pgqueuer": ("BENCH_PG_DSN", "cpu_pgqueuer"),
    "jobdesk_rt_pg": ("BENCH_JOBDESK_RT_PG_URL", "cpu_jobdesk"),
    "jobdesk_pg": ("BENCH_JOBDESK_PG_URL", "cpu_jobdesk_pg"),
}
SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://root@127.0.0.1:5432")
CHUNK = 1_000
TICK = os.sysconf("SC_CLK_TCK")
SETTLE_SECONDS = 4.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process; 0 for one that has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


class Backends:
    """The CPU of one database's PostgreSQL backends, read through a monitor connection."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.monitor = psycopg.connect(f"{SERVER}/{database}", autocommit=True)
        row = self.monitor.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        self.own_pid = int(row[0])

    def pids(self) -> set[int]:
        rows = self.monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
            (self.database, self.own_pid),
        )
        return {int(pid) for (pid,) in rows}

    def reading(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in self.pids()}

    def close(self) -> None:
        self.monitor.close()


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two readings by the backends alive at either."""
    return sum(after.get(pid, cpu_seconds(pid)) - before.get(pid, 0.0) for pid in before | after)


def fresh_database(lib: str) -> str:
    variable, name = DATABASES[lib]
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # our own constant
        admin.execute(f"CREATE DATABASE {name}")
    os.environ[variable] = f"{SERVER}/{name}"
    return name


async def finish(outcome: object) -> None:
    """The harness's setup() and reset() may be plain functions or coroutines."""
    if inspect.isawaitable(outcome):
        await outcome


def load(lib: str) -> ModuleType:
    """``lib_<lib>`` as bench.py imports it, after its database variable is set."""
    for name in ("common", f"lib_{lib}", "jobdesk_adapter"):
        sys.modules.pop(name, None)
    return importlib.import_module(f"lib_{lib}")


async def enqueue_cpu(
    module: ModuleType, backends: Backends, count: int, bulk: bool
) -> dict[str, float]:
    """CPU per job of the producer and its backends, one at a time or in bulk."""
    async with module.Producer() as producer:
        await producer.enqueue(time.time())  # connections open, statements prepared
        before, mine = backends.reading(), time.process_time()
        if bulk:
            for start in range(0, count, CHUNK):
                await producer.enqueue_bulk([time.time()] * min(CHUNK, count - start))
        else:
            for _ in range(count):
                await producer.enqueue(time.time())
        producer_cpu, after = time.process_time() - mine, backends.reading()
    return {"producer": producer_cpu / count * 1e6, "postgres": spent(before, after) / count * 1e6}


def started(out: Path) -> int:
    try:
        return out.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@contextmanager
def workers(module: ModuleType, variant: str, out: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = dict(os.environ, BENCH_OUT=str(out))
    commands = module.worker_cmds(variant, sys.executable)
    processes = [subprocess.Popen(command, env=env) for command in commands]
    try:
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def drain_cpu(
    module: ModuleType, backends: Backends, variant: str, count: int, out: Path
) -> dict[str, float]:
    """CPU per job of each worker process (and server) and of their backends; the
    handlers record each start in ``out`` (the harness's ``BENCH_OUT``)."""
    within = 600.0
    with workers(module, variant, out) as processes:
        await asyncio.sleep(SETTLE_SECONDS)
        if any(process.poll() is not None for process in processes):
            raise SystemExit(f"a worker of {variant} exited at start")
        before = backends.reading()
        mine = {process.pid: cpu_seconds(process.pid) for process in processes}
        async with module.Producer() as producer:
            for start in range(0, count, CHUNK):
                await producer.enqueue_bulk([time.time()] * min(CHUNK, count - start))
        deadline = time.monotonic() + within
        while started(out) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"{variant}: {started(out)}/{count} started in {within} s")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the last completions
        after = backends.reading()
        figures = {
            f"process {n}": (cpu_seconds(process.pid) - mine[process.pid]) / count * 1e6
            for n, process in enumerate(processes)
        }
    figures["postgres"] = spent(before, after) / count * 1e6
    return figures


async def measure(lib: str, variant: str, n: int, one_by_one: int, out: Path) -> dict[str, Any]:
    database = fresh_database(lib)
    module = load(lib)
    await finish(module.setup())
    backends = Backends(database)
    try:
        result: dict[str, Any] = {"lib": lib, "variant": variant}
        result["enqueue"] = await enqueue_cpu(module, backends, one_by_one, bulk=False)
        await finish(module.reset())
        result["bulk"] = await enqueue_cpu(module, backends, n, bulk=True)
        await finish(module.reset())
        result["drain"] = await drain_cpu(module, backends, variant, n, out)
        return result
    finally:
        backends.close()


def table(results: list[dict[str, Any]], cores: int) -> str:
    """Medians over repetitions, per library and path: µs of CPU per job per process."""
    lines = [
        "| library | variant | path | µs CPU per job, by process (median of reps) | total | "
        f"ceiling on {cores} cores |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(r["lib"], r["variant"]) for r in results}, key=lambda k: (k[0] != "pgqueuer", k)
    )
    for lib, variant in keys:
        runs = [r for r in results if (r["lib"], r["variant"]) == (lib, variant)]
        for path in ("enqueue", "bulk", "drain"):
            parts = {name: statistics.median(r[path][name] for r in runs) for name in runs[0][path]}
            total = statistics.median(sum(r[path].values()) for r in runs)
            shown = ", ".join(f"{name} {value:.0f}" for name, value in parts.items())
            ceiling = cores / total * 1e6 if total else 0
            lines.append(
                f"| {lib} | {variant} | {path} | {shown} | {total:.0f} | {ceiling:,.0f} jobs/s |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libs", default="pgqueuer:default jobdesk_rt_pg:x1 jobdesk_rt_pg:http_x1")
    parser.add_argument("--n", type=int, default=20_000, help="jobs per bulk enqueue and drain")
    parser.add_argument("--one-by-one", type=int, default=3_000, help="jobs enqueued one at a time")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--results", default="results")
    parser.add_argument("--stamp", default=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    args = parser.parse_args()
    if args.n < CHUNK or args.one_by_one < 1 or args.reps < 1:
        parser.error(f"--n must be at least {CHUNK}, --one-by-one and --reps at least 1")
    pairs = [tuple(item.split(":", 1)) for item in args.libs.split()]
    for pair in pairs:
        if len(pair) != 2 or pair[0] not in DATABASES:
            parser.error(f"--libs: each item is lib:variant with lib one of {sorted(DATABASES)}")
    results = []
    for rep in range(1, args.reps + 1):
        for lib, variant in pairs:  # interleaved: noise spreads over every library
            out = Path(f"cpu-drain-{os.getpid()}.out").resolve()
            out.unlink(missing_ok=True)
            result = asyncio.run(measure(lib, variant, args.n, args.one_by_one, out))
            out.unlink(missing_ok=True)
            result["rep"] = rep
            print(json.dumps(result), flush=True)
            results.append(result)
    cores = os.cpu_count() or 1
    report = table(results, cores)
    print(report)
    folder = Path(args.results)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"cpu-{args.stamp}.json").write_text(json.dumps(results, indent=1))
    (folder / f"cpu-{args.stamp}.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
