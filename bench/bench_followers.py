"""Group followers: how many browsers (view-token streams) one ``jobdesk serve`` feeds.

    .venv/bin/python bench/bench_followers.py --followers 1000,2000,5000 --servers 1
    .venv/bin/python bench/bench_followers.py --followers 4000 --servers 2

On a fresh PostgreSQL database (made on ``JOBDESK_BENCH_POSTGRES_URL``, default
``postgresql://root@127.0.0.1:5432/postgres``, dropped at the end), ``--servers``
``python -m jobdesk.http`` processes serve one group of one job. ``--followers``
streams (``GET /api/v1/groups/{id}/events?view_token=...``, as jobdesk.js opens them),
spread evenly over the servers, are held by ``--clients`` client processes (asyncio
protocols on uvloop, to keep the clients' own cost low). Once every stream has its first
event, a worker reports the job's progress ``--updates`` times, one a second; each
report is a ``group`` event on every stream. For each report, the time from just
before the report's call to each stream's arrival (one machine, one clock) is taken;
the run prints p50, p99 and max over every (report, stream), and how many arrived,
and the CPU time (user + system, from ``/proc``) the servers and the clients spent
during the reports, per stream per report. ``BENCH_PYSPY=<directory>`` records each
server with py-spy during the reports (raw flame-graph data, one file per server);
``BENCH_PER_REPORT=1`` prints each report's last arrival (a stall, such as a full garbage
collection, shows as one late report among prompt ones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- a client process: many streams, each arrival's time per progress value ---------------


class Stream(asyncio.Protocol):
    """One follower: a callback per read (no task, no line splitting), so that a client
    process costs little beside the server it measures."""

    def __init__(self, request: bytes, arrivals: dict[str, list[float]], ready: Callable[[], None]):
        self.request = request
        self.arrivals = arrivals
        self.ready = ready
        self.first = True
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        *events, self.pending = (self.pending + data).split(b"\n\n")
        for event in events:
            start = event.find(b"event: group\ndata: ")
            if start < 0:
                continue
            progress = str(json.loads(event[start + 19 :])["progress"])
            if self.first:
                self.first = False
                self.ready()
            else:
                self.arrivals.setdefault(progress, []).append(now)


async def follow(port: int, path: str, count: int, out: Path) -> None:
    """Hold ``count`` streams of ``path`` on ``port``; on SIGTERM write the arrivals."""
    arrivals: dict[str, list[float]] = {}
    ready = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
    )

    def one_ready() -> None:
        nonlocal ready
        ready += 1
        if ready == count:
            print("ready", flush=True)

    transports = []
    for _ in range(count):
        transport, _ = await loop.create_connection(
            lambda: Stream(request, arrivals, one_ready), "127.0.0.1", port
        )
        transports.append(transport)
        await asyncio.sleep(0.001)  # no thundering herd on the accept queue
    await stop.wait()
    for transport in transports:
        transport.close()
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


async def run(url: str, followers: int, servers: int, clients: int, updates: int) -> None:  # noqa: PLR0912 - one straight run
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
        servers_cpu = sum(cpu_seconds(process.pid) for process in server_processes)
        clients_cpu = sum(cpu_seconds(process.pid) for process, _ in client_processes)
        profilers = []
        if os.environ.get("BENCH_PYSPY"):
            for process in server_processes:
                out = Path(os.environ["BENCH_PYSPY"]) / f"server-{followers}-{process.pid}.raw"
                command = [str(Path(sys.executable).with_name("py-spy")), "record",
                           "-p", str(process.pid), "-r", "200", "-f", "raw", "--nonblocking",
                           "-d", str(updates + 1), "-o", str(out)]  # fmt: skip
                profilers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))  # noqa: ASYNC220
        sent: dict[str, float] = {}
        for update in range(1, updates + 1):
            progress = float(update)
            sent[str(progress)] = time.time()
            await desk.update_job_progress(worker, job.id, progress, attempt=job.attempt)
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)
        servers_cpu = sum(cpu_seconds(process.pid) for process in server_processes) - servers_cpu
        clients_cpu = sum(cpu_seconds(process.pid) for process, _ in client_processes) - clients_cpu
        for profiler in profilers:
            profiler.wait(60)
        for process, _ in client_processes:
            process.send_signal(signal.SIGTERM)
        latencies: list[float] = []
        report_max: dict[str, float] = {}  # the last arrival of each report
        for process, out in client_processes:
            process.wait(30)
            for progress, times in json.loads(out.read_text()).items():
                latencies.extend(moment - sent[progress] for moment in times)
                report_max[progress] = max(
                    [report_max.get(progress, 0.0), *(moment - sent[progress] for moment in times)]
                )
        for process in server_processes:
            process.send_signal(signal.SIGTERM)
        for process in server_processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(60 if os.environ.get("BENCH_PROFILE") else 15)
            if process.poll() is None:
                process.kill()
    latencies.sort()
    if os.environ.get("BENCH_PER_REPORT"):
        print(
            "last arrival per report:",
            [f"{report_max.get(key, float('nan')) * 1000:.0f}" for key in sent],
        )

    def cut(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    expected = followers * updates
    per_delivery = 1e6 / expected
    print(
        f"| {followers} | {servers} | {len(latencies)}/{expected} | {cut(0.5):.0f} ms "
        f"| {cut(0.99):.0f} ms | {latencies[-1] * 1000:.0f} ms | {opened:.1f} s "
        f"| {servers_cpu * per_delivery:.1f} µs | {clients_cpu * per_delivery:.1f} µs |"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--follow":
        port, path, count, out = sys.argv[2:6]
        with contextlib.suppress(ImportError):
            import uvloop  # noqa: PLC0415 - the cheapest loop there is, when installed

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(follow(int(port), path, int(count), Path(out)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", default="1000", help="comma-separated: one run each")
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--updates", type=int, default=10)
    arguments = parser.parse_args()
    if os.environ.get("BENCH_PYSPY") and not Path(sys.executable).with_name("py-spy").exists():
        parser.error("BENCH_PYSPY needs py-spy beside this Python: pip install py-spy")
    # Each stream is a socket in a server and in a client (both inherit this limit).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        "| followers | servers | arrivals | p50 | p99 | max | all open in "
        "| server CPU per stream per report | clients' CPU per stream per report |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
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
