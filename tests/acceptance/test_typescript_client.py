"""The TypeScript client (clients/typescript) against a real ``jobdesk serve``.

Its types are generated from the running server's ``/openapi.json`` with
openapi-typescript, type-checked with tsc, and its example runs end to end: create,
stream, cancel, retry, and the 429/409/404/422 problems read by their typed fields.
A schema change that breaks the client fails here. The npm packages come from
``npm ci`` in clients/typescript (``make test`` and ``.ci/run`` run it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobdesk import JobDesk
from tests.processes import free_port

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"
NODE_TIMEOUT = 120  # seconds: generating and type-checking on a busy 2-core machine


def node(*arguments: str, env: dict[str, str] | None = None) -> str:
    """Run a tool of the client's node_modules; its stdout, or the failure with its output."""
    done = subprocess.run(
        ["node", *arguments],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"{arguments[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A fresh database and the tokens the example acts with."""
    url = f"sqlite:///{tmp_path / 'jobdesk.db'}"

    async def issue() -> dict[str, str]:
        async with JobDesk.open(url) as desk:
            await desk.set_user_limits("bob", max_waiting=1)
            return {
                "JOBDESK_USER_TOKEN": await desk.create_user_token("alice"),
                "JOBDESK_LIMITED_USER_TOKEN": await desk.create_user_token("bob"),
                "JOBDESK_WORKER_TOKEN": await desk.create_worker_token("ts-worker"),
            }

    return url, asyncio.run(issue())


@pytest.fixture
def server(tokens: tuple[str, dict[str, str]]) -> Iterator[str]:
    """``jobdesk serve`` in a process of its own; yields its base URL."""
    url, _ = tokens
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jobdesk", "serve", "--db", url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/readyz").raise_for_status()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)  # polling a process from outside: no event to await
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_the_typescript_client_is_typed_by_the_live_schema_and_runs_end_to_end(
    server: str, tokens: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    assert (CLIENT / "node_modules" / ".bin").is_dir(), (
        "run `npm ci` in clients/typescript (make test and .ci/run do)"
    )
    schema = tmp_path / "openapi.json"
    schema.write_text(httpx.get(f"{server}/openapi.json").text, encoding="utf-8")
    generate = "node_modules/openapi-typescript/bin/cli.js"
    node(generate, str(schema), "-o", "src/schema.d.ts", "--default-non-nullable", "false")
    node("node_modules/typescript/bin/tsc", "-p", ".")

    _, environment = tokens
    output = node("dist/example.js", env={**os.environ, **environment, "JOBDESK_URL": server})
    seen = json.loads(output.strip().splitlines()[-1])
    assert seen["states"][-1] == "cancelled"
    assert seen["conflict"] == {"job_status": "pending", "action": "retried"}
    assert seen["missing"] == 404
    assert seen["invalid"] == "priority"
    assert seen["refused"] == {"limit": "waiting", "allowed": 1, "retry_after": None}
    assert seen["retryAfterHeader"] is not None
