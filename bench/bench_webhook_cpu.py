"""CPU per webhook delivery: of one sender process, of the receiver, and of PostgreSQL.

    .venv/bin/python bench/bench_webhook_cpu.py --store postgres --deliveries 3000 --rounds 3
    .venv/bin/python bench/bench_webhook_cpu.py --src /tmp/main/src   # A/B: main's sender

One ``jobdesk webhooks deliver --forever`` process (started first, idle) and one
receiver process (tests/acceptance/webhook_sink.py) on a fresh database; each round
queues ``--deliveries`` ``job.pending`` deliveries at once (one ``create_jobs`` call per
1,000) and waits until the outbox is drained. CPU is read from ``/proc/<pid>/stat``
(user + system) before and after each round: the sender's, the receiver's and, on
PostgreSQL, that of the server backends whose ``application_name`` is the sender's
(``PGAPPNAME``). CPU time, not wall time: this machine is shared. The sender's idle polls
(every 0.05 s) count too (small: ~0.1 ms each). Prints microseconds per delivery.

``--src``: run the sender from another checkout's ``src`` (A/B against an older commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from jobdesk import JobDesk, JobSpec  # noqa: E402
from jobdesk.webhooks import new_secret  # noqa: E402

SINK = REPOSITORY / "tests" / "acceptance" / "webhook_sink.py"
SECRET = new_secret()
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def database(store: str) -> Iterator[str]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    server = os.environ.get(
        "JOBDESK_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
    )
    name = f"jobdesk_bench_cpu_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")  # our name, never input
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def backends_cpu(url: str, application: str) -> float:
    """CPU of the PostgreSQL backends serving ``application`` (the sender's pool)."""
    with psycopg.connect(url, autocommit=True) as connection:
        pids = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchall()
    return sum(cpu_seconds(pid) for (pid,) in pids)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    if process.poll() is None:
        process.kill()


@contextlib.asynccontextmanager
async def started(command: list[str], port: int | None, **env: str) -> AsyncIterator[int]:
    process = subprocess.Popen(command, cwd=REPOSITORY, env={**os.environ, **env})  # noqa: ASYNC220
    try:
        for _ in range(400):
            if port is None:
                break
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.05)
        yield process.pid
    finally:
        stop(process)


async def drained(desk: JobDesk) -> None:
    while True:
        if not await desk.get_webhook_deliveries(state="pending", limit=1):
            return
        await asyncio.sleep(0.1)


async def run(arguments: argparse.Namespace, url: str) -> None:
    port = free_port()
    application = f"bench-webhook-sender-{uuid.uuid4().hex[:6]}"
    sender_env = {"PGAPPNAME": application}
    if arguments.src:
        sender_env["PYTHONPATH"] = arguments.src
    sink_command = [sys.executable, str(SINK), "--port", str(port), "--secret", SECRET,
                    "--log", os.devnull]  # fmt: skip
    sender_command = [sys.executable, "-m", "jobdesk", "webhooks", "deliver", "--forever",
                      "--db", url, "--interval", "0.05",
                      "--concurrency", str(arguments.concurrency)]  # fmt: skip
    async with JobDesk.open(url) as desk:
        await desk.set_webhook(
            f"http://127.0.0.1:{port}/hook",
            project_id="bench",
            secret=SECRET,
            events=["job.pending"],
            allow_http=True,
            allow_private=True,
        )
        await desk.set_user_limits("bench-user", max_waiting=1_000_000, max_daily=1_000_000)
        async with (
            started(sink_command, port) as sink_pid,
            started(sender_command, None, **sender_env) as sender_pid,
        ):
            await asyncio.sleep(3.0)  # the sender's start-up, outside the rounds
            for round_number in range(arguments.rounds):
                before = (
                    cpu_seconds(sender_pid),
                    cpu_seconds(sink_pid),
                    backends_cpu(url, application) if url.startswith("postgresql") else 0.0,
                )
                wall = time.monotonic()
                for start in range(0, arguments.deliveries, 1000):
                    size = min(1000, arguments.deliveries - start)
                    specs = [JobSpec("bench", {"n": n}, project_id="bench") for n in range(size)]
                    await desk.create_jobs("bench-user", specs)
                await drained(desk)
                wall = time.monotonic() - wall
                after = (
                    cpu_seconds(sender_pid),
                    cpu_seconds(sink_pid),
                    backends_cpu(url, application) if url.startswith("postgresql") else 0.0,
                )
                per = [
                    (later - earlier) / arguments.deliveries * 1e6
                    for earlier, later in zip(before, after, strict=True)
                ]
                print(
                    f"round {round_number + 1}: {arguments.deliveries} deliveries in {wall:.1f} s"
                    f" ({arguments.deliveries / wall:.0f}/s); CPU per delivery: sender"
                    f" {per[0]:.0f} us, receiver {per[1]:.0f} us,"
                    f" database {per[2]:.0f} us",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--src", help="the sender's jobdesk from this src directory")
    arguments = parser.parse_args()
    with database(arguments.store) as url:
        asyncio.run(run(arguments, url))


if __name__ == "__main__":
    main()
