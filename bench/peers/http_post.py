"""``POST /api/v1/jobs`` against one ``jobdesk serve`` process, for the peer run's goals table.

    python http_post.py DATABASE_URL REP RESULTS.jsonl [--seconds 10] [--connections 16]

Starts ``jobdesk serve`` (one uvicorn process, log level warning) on the database,
gives 100 users a token each, then drives ``wrk`` (one thread, 16 connections, a 2 s
warm-up, then the measured seconds) creating jobs round-robin over those users with
their own tokens, as the library's ``create_job`` does in the harness's enqueue scenario
of the same repetition. Appends one line to RESULTS.jsonl: ``lib`` jobdesk_rt_pg,
``scenario`` http_post, requests per second, p50 and p99 in ms, and how many answers were
not 201 (a refusal would be measured as speed: none is allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from jobdesk_adapter import LIMITS, _free_port, reset_database, setup_database

from jobdesk import JobDesk

USERS = 100
BODY = json.dumps({"type": "bench", "input": {"enq_ts": 0.0}})
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


async def tokens(url: str) -> list[str]:
    """One user token per creating user, their limits as high as the harness's."""
    async with JobDesk.open(url, limits=LIMITS) as desk:
        return [await desk.create_user_token(f"post-user-{n:03}") for n in range(USERS)]


def wrk_script(user_tokens: list[str]) -> str:
    """Each request: the next user's token, a small job."""
    quoted = ", ".join(f'"Bearer {token}"' for token in user_tokens)
    return (
        f"tokens = {{{quoted}}}\ncounter = 0\nrequest = function()\n"
        "  counter = counter + 1\n"
        '  local headers = {["Authorization"] = tokens[counter % #tokens + 1],\n'
        '                   ["Content-Type"] = "application/json"}\n'
        f'  return wrk.format("POST", "/api/v1/jobs", headers, [[{BODY}]])\nend\n'
    )


def milliseconds(text: str) -> float:
    """wrk's ``1.23ms`` / ``456.00us`` / ``1.01s`` in ms."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def measure(url: str, seconds: int, connections: int) -> dict[str, object]:
    """Serve, load, and read wrk's figures."""
    user_tokens = asyncio.run(tokens(url))
    port = _free_port()
    limits = [
        "--max-running", str(LIMITS.max_running_per_user),
        "--max-waiting", str(LIMITS.max_waiting_per_user),
        "--max-daily", str(LIMITS.max_created_per_day),
    ]  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "jobdesk", "serve", "--db", url, "--port", str(port),
         "--log-level", "warning", *limits],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("jobdesk serve did not start")
            time.sleep(0.1)
        with tempfile.TemporaryDirectory() as directory:
            script = Path(directory) / "post.lua"
            script.write_text(wrk_script(user_tokens), encoding="utf-8")
            load = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", str(script)]
            subprocess.run([*load, "-d2s", base], check=True, capture_output=True)
            output = subprocess.run(
                [*load, f"-d{seconds}s", base], check=True, capture_output=True, text=True
            ).stdout
    finally:
        server.terminate()
        server.wait(30)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if rate is None or not percentiles:
        raise RuntimeError(f"wrk said nothing measurable:\n{output}")
    return {
        "requests_per_second": float(rate[1]),
        "p50_ms": milliseconds(percentiles["50"]),
        "p99_ms": milliseconds(percentiles["99"]),
        "non_2xx": int(refused[1]) if refused else 0,
        "connections": connections,
        "seconds": seconds,
    }


def main() -> None:
    """Measure once and append the result line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("rep", type=int)
    parser.add_argument("results", type=Path)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    arguments = parser.parse_args()
    asyncio.run(setup_database(arguments.url))
    reset_database(arguments.url)
    row: dict[str, object] = {
        "lib": "jobdesk_rt_pg",
        "scenario": "http_post",
        "variant": "-",
        "rep": arguments.rep,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "pid": os.getpid(),
    }
    try:
        row |= measure(arguments.url, arguments.seconds, arguments.connections)
        row["completed"] = row["non_2xx"] == 0
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        row["error"] = str(exc)
    finally:
        reset_database(arguments.url)
    with arguments.results.open("a", encoding="utf-8") as results:
        results.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
