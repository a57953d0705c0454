"""The HTTP API under load: one uvicorn process, a load generator in another.

    .venv/bin/python bench/bench_http.py                  # both stores, wrk if installed
    .venv/bin/python bench/bench_http.py --quick          # a smoke run (seconds)
    .venv/bin/python bench/bench_http.py --store sqlite --client httpx
    .venv/bin/python bench/bench_http.py --store postgres --creates   # creates: HTTP vs library

For each store (SQLite file, PostgreSQL database) the server is started with
``python -m jobdesk.http`` (one process, uvloop + httptools, log level warning so
that access logs are not what is measured) on a fresh database. Then:

* **requests/s and p50/p99 latency** of ``POST /api/v1/jobs`` (round-robin over 100
  users),
  ``GET /api/v1/jobs/{id}`` (random ids among 1,000 jobs) and
  ``GET /api/v1/jobs?limit=20``, driven by ``wrk`` (Debian's package) or, with
  ``--client httpx`` or without wrk, an async httpx client in a child process;
* **the library's own rate** (``--creates``: only this and ``POST /api/v1/jobs``):
  ``create_job`` one at a time over the same users from one process, on the same
  database in the same run, before the HTTP creates; the report gives their ratio
  (issue 17's goal: the HTTP rate at least 0.8 of it, p99 under 50 ms at 16
  connections);
* **SSE fan-out**: N clients follow one job's event stream (raw sockets, in this
  process); a worker reports progress over HTTP; the time from sending that
  report to each client's receipt of the event is measured. N grows until the
  slowest client of the median round waits more than 100 ms.

Prints the figures and writes them as JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg

from jobdesk import JobDesk

RESULTS = Path(__file__).resolve().parent / "results"
POSTGRES_SERVER = os.environ.get(
    "JOBDESK_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
)
USER = "bench-user"
SEEDED_JOBS = 1000
CREATORS = 100
SSE_BUDGET_MS = 100.0
Figures = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how hard each measurement runs."""

    seconds: float = 10.0
    warmup: float = 2.0
    connections: int = 16
    sse_sizes: tuple[int, ...] = (100, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000)
    sse_rounds: int = 5


FULL = Plan()
QUICK = Plan(seconds=2.0, warmup=0.5, connections=8, sse_sizes=(50, 200), sse_rounds=2)


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Server:
    """A running API process and what the load needs to know."""

    url: str
    user_token: str
    worker_token: str
    job_ids: list[str]
    pid: int
    creator_tokens: list[str]


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the database holds before the server starts."""

    user_token: str
    worker_token: str
    job_ids: list[str]
    #: tokens of the users who create jobs: a create checks its user's active jobs, so
    #: the creates are spread over many users, as they would be, not piled on one
    creator_tokens: list[str]


async def prepare(database_url: str) -> Prepared:
    """Tokens, room in the limits, and jobs to read."""
    async with JobDesk.open(database_url) as desk:
        await desk.set_user_limits(USER, max_waiting=1_000_000, max_daily=100_000_000)
        user_token = await desk.create_user_token(USER)
        worker_token = await desk.create_worker_token("bench-worker", types=["sse"])
        ids = [
            (await desk.create_job(USER, "bench", {"n": n, "text": "x" * 200})).id
            for n in range(SEEDED_JOBS)
        ]
        creators = []
        for n in range(CREATORS):
            creator = f"creator-{n:03}"
            await desk.set_user_limits(creator, max_waiting=1_000_000, max_daily=100_000_000)
            creators.append(await desk.create_user_token(creator))
    return Prepared(user_token, worker_token, ids, creators)


@contextmanager
def database(store: str, directory: Path) -> Iterator[str]:
    """A fresh database URL of the store kind."""
    if store == "sqlite":
        yield f"sqlite:///{directory / 'jobdesk.db'}"
        return
    name = f"jobdesk_bench_http_{os.getpid()}"
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    base = POSTGRES_SERVER.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def serving(database_url: str, prepared: Prepared) -> Iterator[Server]:
    """``python -m jobdesk.http`` on a free port, until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "jobdesk.http", "--db", database_url, "--port", str(port)]
    environment = {**os.environ, "JOBDESK_JWT_SECRET": JWT_SECRET}
    process = subprocess.Popen([*command, "--log-level", "warning"], env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield Server(
            url,
            prepared.user_token,
            prepared.worker_token,
            prepared.job_ids,
            process.pid,
            prepared.creator_tokens,
        )
    finally:
        process.terminate()
        process.wait(30)


# -- requests/s and latency ------------------------------------------------------------------

SCENARIOS = (
    "POST /api/v1/jobs",
    "GET /api/v1/jobs/{id}",
    "GET /api/v1/jobs?limit=20",
    # The same read with a host-signed JWT: no token lookup in the database.
    "GET /api/v1/jobs/{id} (JWT)",
)
JWT_SECRET = "bench-secret-bench-secret-bench-secret-0123"


def bearer_for(scenario: str, server: Server) -> str:
    """The token a scenario authenticates with."""
    if scenario.endswith("(JWT)"):
        claims = {"sub": USER, "exp": int(time.time()) + 3600}
        return str(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))
    return server.user_token


CREATE_BODY = json.dumps({"type": "bench", "input": {"episode_ids": ["ep-1", "ep-2"]}})


def wrk_script(scenario: str, server: Server) -> str:
    auth = f'wrk.headers["Authorization"] = "Bearer {bearer_for(scenario, server)}"\n'
    if scenario.startswith("POST"):
        tokens = ", ".join(f'"Bearer {token}"' for token in server.creator_tokens)
        return (
            f"tokens = {{{tokens}}}\n"
            + "counter = 0\n"
            + "request = function()\n"
            + "  counter = counter + 1\n"
            + '  local headers = {["Authorization"] = tokens[counter % #tokens + 1],\n'
            + '                   ["Content-Type"] = "application/json"}\n'
            + f'  return wrk.format("POST", "/api/v1/jobs", headers, [[{CREATE_BODY}]])\n'
            + "end\n"
        )
    if "{id}" in scenario:
        ids = ", ".join(f'"{job_id}"' for job_id in server.job_ids)
        return (
            auth
            + f"ids = {{{ids}}}\n"
            + "request = function()\n"
            + '  return wrk.format("GET", "/api/v1/jobs/" .. ids[math.random(#ids)])\n'
            + "end\n"
        )
    return auth + 'wrk.path = "/api/v1/jobs?limit=20"\n'


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match is not None, text
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(scenario: str, server: Server, plan: Plan, workdir: Path) -> Figures:
    script = workdir / "scenario.lua"
    script.write_text(wrk_script(scenario, server))
    base = ["wrk", "-t1", f"-c{plan.connections}", "--latency", "-s", str(script)]
    # wrk takes whole seconds.
    warmup, seconds = max(1, round(plan.warmup)), max(1, round(plan.seconds))
    subprocess.run([*base, f"-d{warmup}s", server.url], check=True, capture_output=True)
    output = subprocess.run(
        [*base, f"-d{seconds}s", server.url], check=True, capture_output=True, text=True
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),  # type: ignore[index]
        "p50_ms": _milliseconds(percentiles["50"]),
        "p99_ms": _milliseconds(percentiles["99"]),
        "errors": int(errors[1]) if errors else 0,
        "client": "wrk",
    }


def _httpx_load(
    scenario: str, server: Server, seconds: float, connections: int, queue: Any
) -> None:
    async def main() -> None:
        headers = {"Authorization": f"Bearer {bearer_for(scenario, server)}"}
        limits = httpx.Limits(max_connections=connections)
        latencies: list[float] = []
        errors = 0
        async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits) as client:

            async def one() -> httpx.Response:
                if scenario.startswith("POST"):
                    token = random.choice(server.creator_tokens)
                    return await client.post(
                        "/api/v1/jobs",
                        content=CREATE_BODY,
                        headers={
                            "Content-Type": "application/json",
                            "Authorization": f"Bearer {token}",
                        },
                    )
                if "{id}" in scenario:
                    return await client.get(f"/api/v1/jobs/{random.choice(server.job_ids)}")
                return await client.get("/api/v1/jobs?limit=20")

            async def loop(until: float) -> None:
                nonlocal errors
                while (start := time.perf_counter()) < until:
                    response = await one()
                    latencies.append((time.perf_counter() - start) * 1000)
                    errors += response.status_code >= 300

            started = time.perf_counter()
            await asyncio.gather(*(loop(started + seconds) for _ in range(connections)))
            elapsed = time.perf_counter() - started
        queue.put((len(latencies) / elapsed, latencies, errors))

    asyncio.run(main())


def run_httpx(scenario: str, server: Server, plan: Plan) -> Figures:
    context = multiprocessing.get_context("spawn")
    results = []
    for seconds in (plan.warmup, plan.seconds):
        queue = context.Queue()
        worker = context.Process(
            target=_httpx_load, args=(scenario, server, seconds, plan.connections, queue)
        )
        worker.start()
        results.append(queue.get())
        worker.join()
    rate, latencies, errors = results[-1]
    latencies.sort()
    return {
        "requests_per_second": rate,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "errors": errors,
        "client": "httpx",
    }


# -- the library's own creates ---------------------------------------------------------------


async def library_creates(database_url: str, creators: int, seconds: float) -> Figures:
    """``create_job`` one at a time for ``seconds``, round-robin over the creators of
    :func:`prepare`, with the body of ``POST /api/v1/jobs``: the rate the HTTP creates
    are measured against."""
    body = json.loads(CREATE_BODY)
    latencies: list[float] = []
    async with JobDesk.open(database_url) as desk:
        await desk.create_job("creator-000", body["type"], body["input"])  # warm the pool
        started = time.perf_counter()
        until = started + seconds
        while (start := time.perf_counter()) < until:
            user = f"creator-{len(latencies) % creators:03}"
            await desk.create_job(user, body["type"], body["input"])
            latencies.append((time.perf_counter() - start) * 1000)
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "errors": 0,
        "client": "library",
    }


# -- SSE fan-out -----------------------------------------------------------------------------


class Follower:
    """One raw-socket client of a job's event stream, noting when each mark arrives."""

    def __init__(self) -> None:
        self.received: dict[int, float] = {}
        self._buffer = b""
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self, host: str, port: int, path: str, token: str) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        self._writer = writer
        self._task = asyncio.create_task(self._read(reader))
        await self._ready.wait()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(65536):
            now = time.perf_counter()
            self._buffer += chunk
            if b'"status":"processing"' in self._buffer:
                self._ready.set()
            for mark in re.findall(rb'"progress_message":"mark-(\d+)"', self._buffer):
                self.received.setdefault(int(mark), now)
            self._buffer = self._buffer[-200:]

    async def close(self) -> None:
        self._writer.close()
        if self._task is not None:
            self._task.cancel()


def resident_kib(pid: int) -> int:
    """The resident memory of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def fan_out(server: Server, followers: int, rounds: int) -> Figures:
    """Latency (ms) from a progress report to each follower's receipt, per round."""
    host, port = server.url.removeprefix("http://").split(":")
    worker_headers = {"Authorization": f"Bearer {server.worker_token}"}
    user_headers = {"Authorization": f"Bearer {server.user_token}"}
    async with httpx.AsyncClient(base_url=server.url) as client:
        created = await client.post(
            "/api/v1/jobs", json={"type": "sse", "input": {}}, headers=user_headers
        )
        job_id = created.json()["id"]
        claimed = await client.post(f"/api/v1/worker/jobs/{job_id}/start", headers=worker_headers)
        attempt = claimed.json()["attempt"]
        clients = [Follower() for _ in range(followers)]
        path = f"/api/v1/jobs/{job_id}/events"
        memory_before = resident_kib(server.pid)
        for start in range(0, followers, 100):
            await asyncio.gather(
                *(
                    c.open(host, int(port), path, server.user_token)
                    for c in clients[start : start + 100]
                )
            )
        memory_per_stream = (resident_kib(server.pid) - memory_before) / followers
        per_round = []
        for mark in range(1, rounds + 1):
            sent = time.perf_counter()
            await client.post(
                f"/api/v1/worker/jobs/{job_id}/progress",
                json={"progress": mark, "message": f"mark-{mark}", "attempt": attempt},
                headers=worker_headers,
            )
            async with asyncio.timeout(30):
                while not all(mark in c.received for c in clients):  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            latencies = sorted((c.received[mark] - sent) * 1000 for c in clients)
            per_round.append(
                {
                    "p50_ms": latencies[len(latencies) // 2],
                    "p99_ms": latencies[int(len(latencies) * 0.99)],
                    "max_ms": latencies[-1],
                }
            )
            await asyncio.sleep(0.2)
        for c in clients:
            await c.close()
        await client.post(
            f"/api/v1/worker/jobs/{job_id}/complete",
            json={"attempt": attempt},
            headers=worker_headers,
        )
    median_max = statistics.median(r["max_ms"] for r in per_round)
    return {
        "followers": followers,
        "rounds": per_round,
        "median_round_max_ms": median_max,
        "server_kib_per_stream": round(memory_per_stream, 1),
        "within_budget": median_max <= SSE_BUDGET_MS,
    }


# -- the run ---------------------------------------------------------------------------------


def bench_creates(store: str, plan: Plan, client: str) -> Figures:
    """``POST /api/v1/jobs`` against the library's own ``create_job`` in the same run."""
    figures: Figures = {"requests": {}}
    with tempfile.TemporaryDirectory() as tmp, database(store, Path(tmp)) as url:
        prepared = asyncio.run(prepare(url))
        library = asyncio.run(library_creates(url, CREATORS, plan.seconds))
        figures["requests"]["create_job (library, 1 at a time)"] = library
        with serving(url, prepared) as server:
            scenario = SCENARIOS[0]
            if client == "wrk":
                result = run_wrk(scenario, server, plan, Path(tmp))
            else:
                result = run_httpx(scenario, server, plan)
        figures["requests"][scenario] = result
        ratio = result["requests_per_second"] / library["requests_per_second"]
        figures["http_to_library"] = ratio
        for name, figure in figures["requests"].items():
            print(
                f"{store:8} {name:34} {figure['requests_per_second']:8.0f} req/s  "
                f"p50 {figure['p50_ms']:6.2f} ms  p99 {figure['p99_ms']:7.2f} ms  "
                f"errors {figure['errors']}",
                flush=True,
            )
        print(f"{store:8} HTTP creates / library creates: {ratio:.2f}x", flush=True)
    return figures


def bench_store(store: str, plan: Plan, client: str) -> Figures:
    figures: Figures = {"requests": {}, "sse": []}
    with tempfile.TemporaryDirectory() as tmp, database(store, Path(tmp)) as url:
        prepared = asyncio.run(prepare(url))
        with serving(url, prepared) as server:
            for scenario in SCENARIOS:
                if client == "wrk":
                    result = run_wrk(scenario, server, plan, Path(tmp))
                else:
                    result = run_httpx(scenario, server, plan)
                figures["requests"][scenario] = result
                print(
                    f"{store:8} {scenario:30} {result['requests_per_second']:8.0f} req/s  "
                    f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
                    f"errors {result['errors']}",
                    flush=True,
                )
        # A fresh process for the streams: the request load above leaves nothing behind.
        with serving(url, prepared) as server:
            for size in plan.sse_sizes:
                result = asyncio.run(fan_out(server, size, plan.sse_rounds))
                figures["sse"].append(result)
                rounds = result["rounds"]
                print(
                    f"{store:8} SSE {size:6} followers: p50 "
                    f"{statistics.median(r['p50_ms'] for r in rounds):6.1f} ms  p99 "
                    f"{statistics.median(r['p99_ms'] for r in rounds):6.1f} ms  max "
                    f"{result['median_round_max_ms']:6.1f} ms (median round), "
                    f"{result['server_kib_per_stream']:.0f} KiB per stream",
                    flush=True,
                )
                if not result["within_budget"]:
                    break
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--client", choices=["wrk", "httpx"], default=None)
    parser.add_argument(
        "--creates",
        action="store_true",
        help="only POST /api/v1/jobs, against the library's own create_job in the same run",
    )
    options = parser.parse_args()
    run = bench_creates if options.creates else bench_store
    plan = QUICK if options.quick else FULL
    client = options.client or ("wrk" if shutil.which("wrk") else "httpx")
    stores = ["sqlite", "postgres"] if options.store == "both" else [options.store]
    figures: Figures = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": os.getloadavg(),
        },
        "plan": asdict(plan),
        "client": client,
        "stores": {store: run(store, plan, client) for store in stores},
    }
    figures["machine"]["load_average_after"] = os.getloadavg()
    print(
        f"load average before {figures['machine']['load_average_before']}, after "
        f"{figures['machine']['load_average_after']} (the machine is shared)"
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bench_http-{stamp}.json"
    path.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {path}")


if __name__ == "__main__":
    main()
