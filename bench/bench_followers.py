"""Group followers: how many browsers (view-token streams) one ``jobdesk serve`` feeds.

    .venv/bin/python bench/bench_followers.py --followers 1000,2000,5000 --servers 1
    .venv/bin/python bench/bench_followers.py --followers 4000 --servers 2

On a fresh PostgreSQL database (made on ``JOBDESK_BENCH_POSTGRES_URL``, default
``postgresql://root@127.0.0.1:5432/postgres``, dropped at the end), ``--servers``
``python -m jobdesk.http`` processes serve one group of one job. ``--followers``
streams (``GET /api/v1/groups/{id}/events?view_token=...``, as jobdesk.js opens them),
spread evenly over the servers, are held by ``--clients`` client processes (plain
asyncio sockets, to keep the clients' own cost low). Once every stream has its first
event, a worker reports the job's progress ``--updates`` times, one a second; each
report is a ``group`` event on every stream. For each report, the time from just
before the report's call to each stream's arrival (one machine, one clock) is taken;
the run prints p50, p99 and max over every (report, stream), and how many arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from jobdesk import JobDesk, JobSpec  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def database() -> Iterator[str]:
    server = os.environ.get(
        "JOBDESK_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
    )
    name = f"jobdesk_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")  # our name, never input
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- a client process: many streams, each arrival's time per progress value ---------------


async def follow(port: int, path: str, count: int, out: Path) -> None:
    """Hold ``count`` streams of ``path`` on ``port``; on SIGTERM write the arrivals."""
    arrivals: dict[str, list[float]] = {}
    ready = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def one() -> None:
        nonlocal ready
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        first = True
        event = ""
        while line := await reader.readline():
            if line.startswith(b"event: "):
                event = line[7:].strip().decode()
            elif line.startswith(b"data: ") and event == "group":
                progress = str(json.loads(line[6:])["progress"])
                if first:
                    first = False
                    ready += 1
                    if ready == count:
                        print("ready", flush=True)
                else:
                    arrivals.setdefault(progress, []).append(time.time())

    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(0.001)  # no thundering herd on the accept queue
    await stop.wait()
    for task in tasks:
        task.cancel()
    out.write_text(json.dumps(arrivals))  # noqa: ASYNC240 - once, at the end


# -- the driver ----------------------------------------------------------------------------


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "JOBDESK_MAX_STREAMS": "1000000",
        "JOBDESK_REAP_INTERVAL_SECONDS": "0",
        "JOBDESK_WEBHOOK_INTERVAL_SECONDS": "0",
    }
    command = [sys.executable, "-m", "jobdesk.http", "--db", url, "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
    if os.environ.get("BENCH_PROFILE"):  # a profile of the server, to this file
        command[1:1] = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
    return subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL)


def wait_listening(port: int) -> None:
    for _ in range(600):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def run(url: str, followers: int, servers: int, clients: int, updates: int) -> None:
    async with JobDesk.open(url) as desk:
        group = await desk.create_group("alice", [JobSpec("episode", {})])
        token = await desk.create_view_token("alice", group_id=group.id, ttl=3600)
        worker = await desk.verify_worker_token(await desk.create_worker_token("w"))
        [job] = await desk.claim_jobs(worker)
        ports = [free_port() for _ in range(servers)]
        server_processes = [start_server(url, port) for port in ports]
        for port in ports:
            wait_listening(port)
        path = f"/api/v1/groups/{group.id}/events?view_token={token}"
        directory = Path(tempfile.mkdtemp())
        client_processes = []
        per_client = [followers // clients + (n < followers % clients) for n in range(clients)]
        for number, count in enumerate(per_client):
            out = directory / f"client-{number}.json"
            command = [sys.executable, __file__, "--follow", str(ports[number % servers]), path,
                       str(count), str(out)]  # fmt: skip
            process = subprocess.Popen(command, stdout=subprocess.PIPE)  # noqa: ASYNC220
            client_processes.append((process, out))
        started = time.monotonic()
        for process, _ in client_processes:
            assert process.stdout is not None
            line = await asyncio.to_thread(process.stdout.readline)
            assert line.strip() == b"ready", line
        opened = time.monotonic() - started
        sent: dict[str, float] = {}
        for update in range(1, updates + 1):
            progress = float(update)
            sent[str(progress)] = time.time()
            await desk.update_job_progress(worker, job.id, progress, attempt=job.attempt)
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)
        for process, _ in client_processes:
            process.send_signal(signal.SIGTERM)
        latencies: list[float] = []
        for process, out in client_processes:
            process.wait(30)
            for progress, times in json.loads(out.read_text()).items():
                latencies.extend(moment - sent[progress] for moment in times)
        for process in server_processes:
            process.send_signal(signal.SIGTERM)
        for process in server_processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(60 if os.environ.get("BENCH_PROFILE") else 15)
            if process.poll() is None:
                process.kill()
    latencies.sort()

    def cut(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    expected = followers * updates
    print(
        f"| {followers} | {servers} | {len(latencies)}/{expected} | {cut(0.5):.0f} ms "
        f"| {cut(0.99):.0f} ms | {latencies[-1] * 1000:.0f} ms | {opened:.1f} s |"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--follow":
        port, path, count, out = sys.argv[2:6]
        asyncio.run(follow(int(port), path, int(count), Path(out)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", default="1000", help="comma-separated: one run each")
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--updates", type=int, default=10)
    arguments = parser.parse_args()
    print("| followers | servers | arrivals | p50 | p99 | max | all open in |")
    print("|---|---|---|---|---|---|---|")
    for followers in [int(n) for n in arguments.followers.split(",")]:
        with database() as url:
            asyncio.run(
                run(
                    url,
                    followers,
                    arguments.servers,
                    max(arguments.clients, arguments.servers),
                    arguments.updates,
                )
            )


if __name__ == "__main__":
    main()
