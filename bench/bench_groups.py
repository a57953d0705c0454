"""Groups and webhooks: a 10,000-job group made in one call; webhook throughput and outages.

    .venv/bin/python bench/bench_groups.py create   --store postgres --size 10000 --repeat 5
    .venv/bin/python bench/bench_groups.py create   --store sqlite
    .venv/bin/python bench/bench_groups.py webhooks --store postgres --rate 1000 --seconds 20
    .venv/bin/python bench/bench_groups.py outage   --store postgres --outage-seconds 600

``create``: ``JobDesk.create_group`` of ``--size`` jobs, ``--repeat`` times (a fresh user
each, limits raised to let it in), with and without a webhook that asks for group
events (its triggers on); prints each time and the median.

``webhooks``: ``--rate`` transitions per second (jobs created in batches of a tenth of
a second, a webhook on ``job.pending``) for ``--seconds``, sent by one ``jobdesk
webhooks deliver --forever`` processes (``--senders``, 2) to a local receiver process
(tests/acceptance/webhook_sink.py); prints deliveries per second and the p50/p99/max
of transition → arrival (the transition's time in the database, the arrival's on the
receiver: one machine, one clock).

``outage``: the same at ``--rate``, but the receiver is down for ``--outage-seconds``
(default 600) in the middle; then it comes back and the run waits until every
delivery is delivered: prints lost (must be 0), duplicates, and how long the backlog
took to drain after the receiver came back (failed sends wait for their backoff,
jobdesk.webhooks.BACKOFF_SECONDS).

PostgreSQL runs on a fresh database made on ``JOBDESK_BENCH_POSTGRES_URL`` (default
``postgresql://root@127.0.0.1:5432/postgres``) and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from jobdesk import JobDesk, JobSpec  # noqa: E402
from jobdesk.webhooks import GROUP_EVENTS, new_secret  # noqa: E402

SINK = REPOSITORY / "tests" / "acceptance" / "webhook_sink.py"
SECRET = new_secret()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def database(store: str) -> Iterator[str]:
    """A fresh database of ``store``, removed afterwards."""
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
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


def quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench_create(url: str, size: int, repeat: int) -> None:
    specs = [JobSpec("extract", {"episode": n}) for n in range(size)]
    async with JobDesk.open(url) as desk:
        for hooked in (False, True):
            if hooked:
                await desk.set_webhook(
                    "http://127.0.0.1:9/hook",
                    project_id="bench",
                    events=list(GROUP_EVENTS),
                    allow_http=True,
                    allow_private=True,
                )
            times = []
            for _ in range(repeat):
                user = f"user-{uuid.uuid4().hex[:8]}"
                await desk.set_user_limits(user, max_waiting=size, max_daily=size)
                started = time.perf_counter()
                group = await desk.create_group(user, specs, project_id="bench")
                times.append(time.perf_counter() - started)
                assert group.size == size
            label = "with a group webhook" if hooked else "no webhook"
            print(
                f"create_group of {size} ({label}): "
                + ", ".join(f"{t:.3f}" for t in times)
                + f" s; median {statistics.median(times):.3f} s"
            )


@contextlib.asynccontextmanager
async def sink(port: int, log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    command = [sys.executable, str(SINK), "--port", str(port), "--secret", SECRET,
               "--log", str(log)]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPOSITORY)  # noqa: ASYNC220 - start-up
    try:
        for _ in range(400):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.05)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()


@contextlib.asynccontextmanager
async def senders(url: str, count: int, concurrency: int) -> AsyncIterator[None]:
    """``count`` sender processes (``jobdesk webhooks deliver --forever``)."""
    command = [sys.executable, "-m", "jobdesk", "webhooks", "deliver", "--forever", "--db", url,
               "--interval", "0.05", "--concurrency", str(concurrency)]  # fmt: skip
    processes = [
        subprocess.Popen(command, cwd=REPOSITORY, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            if process.poll() is None:
                process.kill()


def arrivals(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


async def make_transitions(desk: JobDesk, rate: int, seconds: float) -> int:
    """``rate`` jobs created per second (a batch every 0.1 s) for ``seconds``; how many."""
    batch = max(1, rate // 10)
    made = 0
    started = time.monotonic()
    tick = 0
    while time.monotonic() - started < seconds:
        user = f"user-{tick % 50}"
        specs = [JobSpec("extract", {"n": n}, project_id="bench") for n in range(batch)]
        await desk.create_jobs(user, specs)
        made += batch
        tick += 1
        delay = started + tick * 0.1 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return made


async def wait_delivered(desk: JobDesk, expected: int, within: float) -> float:
    """Seconds until every one of ``expected`` deliveries is delivered (or ``within``)."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        pending = await desk.get_webhook_deliveries(state="pending", limit=1)
        if not pending:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def prepare(desk: JobDesk, port: int, size: int) -> None:
    await desk.set_webhook(
        f"http://127.0.0.1:{port}/hook",
        project_id="bench",
        secret=SECRET,
        events=["job.pending"],
        allow_http=True,
        allow_private=True,
    )
    for number in range(50):
        await desk.set_user_limits(f"user-{number}", max_waiting=size, max_daily=size)


async def bench_webhooks(
    url: str, *, rate: int, seconds: float, outage: float | None, count: int, concurrency: int
) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "sink.jsonl"
        async with JobDesk.open(url) as desk:
            await prepare(desk, port, 1_000_000)
            async with senders(url, count, concurrency):
                if outage is None:
                    async with sink(port, log):
                        started = time.monotonic()
                        made = await make_transitions(desk, rate, seconds)
                        made_in = time.monotonic() - started
                        drained = await wait_delivered(desk, made, 120)
                        await asyncio.sleep(0.5)  # the last lines to the log
                else:
                    async with sink(port, log):
                        made = await make_transitions(desk, rate, seconds / 2)
                    down = time.monotonic()
                    # The receiver is down: transitions go on.
                    outage_made = 0
                    while time.monotonic() - down < outage:
                        outage_made += await make_transitions(
                            desk, rate, min(5.0, outage - (time.monotonic() - down))
                        )
                    made += outage_made
                    async with sink(port, log):
                        back = time.monotonic()
                        made += await make_transitions(desk, rate, seconds / 2)
                        await wait_delivered(desk, made, 4 * 3600)
                        drained = time.monotonic() - back
                        await asyncio.sleep(0.5)
                    made_in = seconds + outage
            outbox = await desk.get_webhook_deliveries(limit=1000)
            dead = await desk.get_webhook_deliveries(state="dead", limit=1000)
        received = [arrival for arrival in arrivals(log) if arrival["answer"] == 200]
        ids = {arrival["id"] for arrival in received}
        firsts: dict[str, dict[str, Any]] = {}
        for arrival in received:
            firsts.setdefault(arrival["id"], arrival)
        latencies = [
            arrival["received"] - datetime.fromisoformat(arrival["at"]).timestamp()
            for arrival in firsts.values()
        ]
        spread = max(a["received"] for a in received) - min(a["received"] for a in received)
        print(f"transitions: {made} in {made_in:.1f} s ({made / made_in:.0f}/s)")
        print(
            f"delivered: {len(ids)} distinct ({len(received) - len(ids)} duplicates), "
            f"lost {made - len(ids)}, dead {len(dead)}; "
            f"{len(received) / spread:.0f} deliveries/s over the receiver's {spread:.1f} s"
        )
        print(
            f"transition -> arrival: p50 {quantile(latencies, 0.5) * 1000:.0f} ms, "
            f"p99 {quantile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
        )
        if outage is not None:
            print(f"after the receiver came back: every delivery in within {drained:.1f} s")
        assert len(outbox) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["create", "webhooks", "outage"])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rate", type=int, default=1000, help="transitions per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--outage-seconds", type=float, default=600.0)
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--concurrency", type=int, default=16, help="sends at once, each")
    arguments = parser.parse_args()
    with database(arguments.store) as url:
        if arguments.what == "create":
            asyncio.run(bench_create(url, arguments.size, arguments.repeat))
        else:
            outage = arguments.outage_seconds if arguments.what == "outage" else None
            asyncio.run(
                bench_webhooks(
                    url,
                    rate=arguments.rate,
                    seconds=arguments.seconds,
                    outage=outage,
                    count=arguments.senders,
                    concurrency=arguments.concurrency,
                )
            )


if __name__ == "__main__":
    main()
