"""300 dashboard streams of one user: what they cost every other user.

    .venv/bin/python bench/bench_streams.py                      # this checkout's code
    .venv/bin/python bench/bench_streams.py --src /tmp/base/src  # another checkout's code

Serves the API with ``python -m jobdesk.http`` (one process, SQLite) from ``--src``
(default: the installed package), with the stream cap raised to let 300 streams
in. One user ("heavy") opens ``--streams`` dashboard streams of one job of theirs,
and a worker reports that job's progress over HTTP every ``--every`` seconds; each
report is a change every stream shows. Meanwhile 10 other users read their own
jobs (``GET /api/v1/jobs/{id}``) one request at a time. It measures the other
users' p50/p99 and the server's CPU, first without the streams, then with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from jobdesk import JobDesk

OTHERS = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def server(url: str, src: str | None) -> AsyncIterator[tuple[str, int]]:
    port = _free_port()
    environment = {
        **os.environ,
        "JOBDESK_MAX_STREAMS": "1000",
        "JOBDESK_REAP_INTERVAL_SECONDS": "0",
    }
    if src is not None:
        environment["PYTHONPATH"] = src
    command = [sys.executable, "-m", "jobdesk.http", "--db", url, "--port", str(port)]
    # A benchmark's start-up, not a served request: blocking here is fine.
    process = subprocess.Popen(  # noqa: ASYNC220
        [*command, "--log-level", "warning"], env=environment, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def others_read(
    base: str, jobs: list[tuple[dict[str, str], str]], seconds: float
) -> list[float]:
    """Latencies (ms) of the other users reading their jobs, one request at a time each."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def one(headers: dict[str, str], job_id: str) -> None:
        async with httpx.AsyncClient(base_url=base) as client:
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = await client.get(f"/api/v1/jobs/{job_id}", headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text

    await asyncio.gather(*(one(headers, job_id) for headers, job_id in jobs))
    return latencies


async def report_progress(base: str, worker: dict[str, str], job_id: str, every: float) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        claimed = await client.post("/api/v1/worker/jobs/claim", json={}, headers=worker)
        assert claimed.status_code == 200, claimed.text
        progress = 0
        while True:
            progress = (progress + 1) % 100
            await client.post(
                f"/api/v1/worker/jobs/{job_id}/progress",
                json={"progress": progress, "attempt": 1},
                headers=worker,
            )
            await asyncio.sleep(every)


async def drain(response: httpx.Response) -> None:
    with contextlib.suppress(httpx.HTTPError):
        async for _ in response.aiter_raw():
            pass


def summary(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[98]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", help="PYTHONPATH of the server (another checkout's src)")
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=0.1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/streams.db"
        async with JobDesk.open(url) as desk:
            heavy = await desk.create_user_token("heavy")
            heavy_job = await desk.create_job("heavy", "bench", None)
            worker_token = await desk.create_worker_token("bench", types=["bench"])
            worker = {"Authorization": f"Bearer {worker_token}"}
            jobs = []
            for number in range(OTHERS):
                user = f"other-{number}"
                headers = {"Authorization": f"Bearer {await desk.create_user_token(user)}"}
                jobs.append((headers, (await desk.create_job(user, "other", None)).id))
        async with server(url, options.src) as (base, pid):
            reporter = asyncio.create_task(
                report_progress(base, worker, heavy_job.id, options.every)
            )
            cpu = _cpu_seconds(pid)
            alone = await others_read(base, jobs, options.seconds)
            cpu_alone = _cpu_seconds(pid) - cpu
            limits = httpx.Limits(max_connections=options.streams + 10)
            async with (
                httpx.AsyncClient(
                    base_url=base, cookies={"jobdesk_session": heavy}, limits=limits, timeout=None
                ) as browser,
                contextlib.AsyncExitStack() as stack,
            ):
                responses = [
                    await stack.enter_async_context(
                        browser.stream("GET", f"/jobs/{heavy_job.id}/events")
                    )
                    for _ in range(options.streams)
                ]
                opened = sum(response.status_code == 200 for response in responses)
                drains = [asyncio.create_task(drain(response)) for response in responses]
                cpu = _cpu_seconds(pid)
                loaded = await others_read(base, jobs, options.seconds)
                cpu_loaded = _cpu_seconds(pid) - cpu
                for task in drains:
                    task.cancel()
            reporter.cancel()
    p50, p99 = summary(alone)
    loaded_p50, loaded_p99 = summary(loaded)
    print(f"server: {options.src or 'installed jobdesk'}; {opened} streams open")
    print("| | other users' p50 | p99 | server CPU (s per s) |")
    print("|---|---|---|---|")
    print(f"| no streams | {p50:.1f} ms | {p99:.1f} ms | {cpu_alone / options.seconds:.2f} |")
    print(
        f"| {options.streams} streams of one user | {loaded_p50:.1f} ms | {loaded_p99:.1f} ms "
        f"| {cpu_loaded / options.seconds:.2f} |"
    )


if __name__ == "__main__":
    asyncio.run(main())
