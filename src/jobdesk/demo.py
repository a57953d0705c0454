"""``python -m jobdesk.demo``: jobdesk running for real on a fresh SQLite file.

It starts ``jobdesk serve`` (the HTTP API) and, in a separate process,
``jobdesk worker`` with the example character-extraction handlers, which
reaches the queue through the server's HTTP API with only its worker token,
as a worker on another machine would. Then two
users ask for jobs over HTTP: Alice asks for more than her limit of 10 active
jobs and two are refused; one of her jobs fails once and is retried; Bob
cancels one half-way. Progress shows live until every job has finished; then
the server stays up for you to try (Ctrl-C stops everything).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from jobdesk.sync import JobDesk

console = Console()
APP = "examples.character_extraction.jobs:registry"


@contextlib.contextmanager
def process(
    arguments: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``python -m jobdesk ...`` child, logging to ``log``, stopped with SIGTERM at the end."""
    with log.open("ab") as output:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "jobdesk", *arguments], env=env, stdout=output, stderr=output
        )
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def wait_until_up(client: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    """Poll ``/healthz`` until the server answers (or fail if it died)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("jobdesk serve stopped; see the .log file beside the database")
        with contextlib.suppress(httpx.TransportError):
            if client.get("/healthz").status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(
        "jobdesk serve did not start within 30 s; see the .log file beside the database"
    )


def create_jobs(client: httpx.Client, tokens: dict[str, str]) -> list[str]:
    """Alice asks for 12 jobs (room for 10), Bob for 3; returns the accepted ids."""
    accepted = []
    for user, count, steps in (("alice", 12, 4), ("bob", 3, 8)):
        for number in range(count):
            body: dict[str, Any] = {
                "type": "character_extraction",
                "project_id": "pilot",
                "input": {
                    "episode_ids": [f"{user}-{number}-ep{step}" for step in range(steps)],
                    "seconds_per_episode": 0.25,
                    "fail_first_attempts": 1 if (user, number) == ("alice", 0) else 0,
                },
            }
            reply = client.post(
                "/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {tokens[user]}"}
            )
            if reply.status_code == 201:
                accepted.append(reply.json()["id"])
            else:
                problem = reply.json()
                console.print(
                    f"[yellow]{user}'s job {number + 1}: {reply.status_code}[/] {problem['detail']}"
                )
    return accepted


def jobs_of(client: httpx.Client, token: str) -> list[dict[str, Any]]:
    """The user's jobs, newest first, over HTTP."""
    reply = client.get(
        "/api/v1/jobs", params={"limit": 20}, headers={"Authorization": f"Bearer {token}"}
    )
    reply.raise_for_status()
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


def board(client: httpx.Client, tokens: dict[str, str]) -> tuple[Table, bool]:
    """A table of both users' jobs, and whether every job has finished."""
    table = Table(title="jobs (live, over HTTP)")
    for column in ("user", "job", "status", "attempt", "progress", "message"):
        table.add_column(column)
    finished = True
    for user, token in tokens.items():
        for job in reversed(jobs_of(client, token)):
            finished &= job["status"] in {"completed", "failed", "cancelled"}
            bar = "█" * int(job["progress"] // 10)
            table.add_row(
                user,
                f"…{job['id'][-6:]}",
                job["status"],
                f"{job['attempt']}/{job['max_attempts']}",
                f"{bar:<10} {job['progress']:3.0f}%",
                job["progress_message"] or "",
            )
    return table, finished


def main(path: Path, host: str, port: int, exit_when_done: bool) -> None:
    """Run the demo on a fresh database at ``path``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    with JobDesk.open(url) as desk:
        worker_token = desk.create_worker_token("demo-worker", types=["character_extraction"])
        tokens = {user: desk.create_user_token(user) for user in ("alice", "bob")}
    env = dict(os.environ, JOBDESK_DB=url, JOBDESK_WORKER_TOKEN=worker_token)
    log = path.with_suffix(".log")
    base = f"http://{host}:{port}"
    serve = ["serve", "--host", host, "--port", str(port), "--log-level", "warning"]
    work = ["worker", "--app", APP, "--concurrency", "3", "--server", base]
    with contextlib.ExitStack() as running:
        server = running.enter_context(process(serve, env, log))
        client = running.enter_context(httpx.Client(base_url=base, timeout=10))
        wait_until_up(client, server)
        running.enter_context(process(work, env, log))  # it connects to the server first
        console.rule("[bold]jobdesk demo")
        console.print(f"HTTP API: [bold]{base}[/] (docs at {base}/docs); database {path}")
        console.print(f"a worker process runs the example handlers over HTTP; logs in {log}\n")
        accepted = create_jobs(client, tokens)
        console.print(f"{len(accepted)} jobs accepted\n")
        bob_job, cancelled = accepted[-3], False
        with Live(console=console, refresh_per_second=4) as live:
            while True:
                table, finished = board(client, tokens)
                live.update(table)
                progress = next(
                    (
                        job["progress"]
                        for job in jobs_of(client, tokens["bob"])
                        if job["id"] == bob_job
                    ),
                    0,
                )
                if not cancelled and progress >= 25:
                    client.post(
                        f"/api/v1/jobs/{bob_job}/cancel",
                        headers={"Authorization": f"Bearer {tokens['bob']}"},
                    )
                    cancelled = True
                if finished:
                    break
                time.sleep(0.25)
        console.print("\nevery job has finished. Try it yourself:")
        console.print(f"  export TOKEN={tokens['alice']}   # alice's user token")
        console.print(
            f'  curl -s -H "Authorization: Bearer $TOKEN" {base}/api/v1/jobs | python -m json.tool'
        )
        console.print(
            f"  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
            f'-d \'{{"type": "character_extraction", "input": {{"episode_ids": ["e1"]}}}}\' '
            f"{base}/api/v1/jobs",
            soft_wrap=True,
        )
        if exit_when_done:
            return
        console.print("\n[bold]Ctrl-C[/] stops the server and the worker.")
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()


def cli() -> None:
    """Entry point of ``python -m jobdesk.demo``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("jobdesk-demo.db"), help="SQLite file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--exit-when-done", action="store_true", help="stop once all jobs end")
    arguments = parser.parse_args()
    main(arguments.db, arguments.host, arguments.port, arguments.exit_when_done)


if __name__ == "__main__":
    cli()
