"""``python -m jobdesk.demo``: jobdesk running for real on a fresh SQLite file.

It starts ``jobdesk serve`` (the HTTP API) and, in a separate process,
``jobdesk worker`` with the example character-extraction handlers, which
reaches the queue through the server's HTTP API with only its worker token,
as a worker on another machine would. Then two
users ask for jobs over HTTP: Alice asks for more than the demo's limit of 10
jobs a day and two are refused (jobs beyond a user's running cap wait, they
are not refused); one of her jobs fails once and is retried; Bob cancels one
half-way. Progress shows live until every job has finished; then
the server stays up for you to try (Ctrl-C stops everything).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from jobdesk.sync import JobDesk

console = Console()
APP = "examples.character_extraction.jobs:registry"
#: the checkout this file sits in (``src/jobdesk/demo.py``): the example app is at its root
CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 8000
#: how long every job may take to end (they need about 15 s)
DEADLINE = 120.0


def example_root() -> Path:
    """Where ``examples/`` is (the worker's ``--app-dir``): the checkout, else the cwd."""
    for root in (CHECKOUT, Path.cwd()):
        if (root / "examples" / "character_extraction" / "jobs.py").is_file():
            return root
    raise SystemExit(
        "error: the demo runs examples/character_extraction/ from a jobdesk checkout, "
        "and none was found: run it from the repository (make run)"
    )


def _port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on now (as uvicorn binds: SO_REUSEADDR)."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise SystemExit(f"error: cannot listen on {host}:{port}: {exc}") from None
    return True


def _any_free_port(host: str) -> int:
    family, kind, protocol, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.bind(address)
        port: int = probe.getsockname()[1]
        return port


def choose_port(host: str, port: int | None) -> int:
    """The port to serve on: ``port`` if free (0: any), else by default 8000 or any free one.

    Checked before anything starts: on a taken port, the server would stop at once
    and the demo would be talking to whatever holds the port.
    """
    if port == 0:
        return _any_free_port(host)
    if port is None:
        if _port_is_free(host, DEFAULT_PORT):
            return DEFAULT_PORT
        chosen = _any_free_port(host)
        console.print(f"[yellow]port {DEFAULT_PORT} is in use[/]: the demo serves on {chosen}")
        return chosen
    if not _port_is_free(host, port):
        raise SystemExit(
            f"error: port {port} on {host} is already in use (another server, or a demo "
            "still running?): stop it or pass another --port (0 picks a free one)"
        )
    return port


@dataclass(frozen=True)
class Child:
    """A ``python -m jobdesk ...`` process of the demo, and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        """Exit with one line, the last line of its log, if the process has stopped."""
        code = self.process.poll()
        if code is None:
            return
        lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        said = f": {lines[-1].strip()}" if lines else ""
        raise SystemExit(f"error: {self.name} stopped (exit code {code}){said} [log: {self.log}]")


@contextlib.contextmanager
def process(name: str, arguments: list[str], env: dict[str, str], log: Path) -> Iterator[Child]:
    """A ``python -m jobdesk ...`` child, logging to ``log``, stopped with SIGTERM at the end."""
    with log.open("wb") as output:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "jobdesk", *arguments], env=env, stdout=output, stderr=output
        )
        try:
            yield Child(name, child, log)
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_until_up(client: httpx.Client, server: Child) -> None:
    """Poll ``/healthz`` until the server answers (or fail if it stopped)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        server.check()
        with contextlib.suppress(httpx.TransportError):
            if client.get("/healthz").status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"error: jobdesk serve did not start within 30 s [log: {server.log}]")


def create_jobs(client: httpx.Client, tokens: dict[str, str]) -> list[tuple[str, str]]:
    """Alice asks for 12 jobs (10 a day allowed), Bob for 3; returns ``(user, id)`` of each
    accepted."""
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
                accepted.append((user, reply.json()["id"]))
            elif reply.status_code == 401:
                raise SystemExit(
                    f"error: the server at {client.base_url} refused the demo's user tokens: "
                    "is another server answering on that port? Pass another --port"
                )
            else:
                console.print(
                    f"[yellow]{user}'s job {number + 1}: {reply.status_code}[/] {detail(reply)}"
                )
    if not accepted:
        raise SystemExit("error: the server accepted none of the demo's jobs (see above)")
    return accepted


def detail(reply: httpx.Response) -> str:
    """What a refusal says: its problem's ``detail``, else its body."""
    with contextlib.suppress(ValueError):
        problem = reply.json()
        if isinstance(problem, dict) and "detail" in problem:
            return str(problem["detail"])
    return reply.text[:200]


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
    for column in ("user", "job", "status", "attempts", "progress", "message"):
        table.add_column(column, no_wrap=column == "status")
    finished = True
    for user, token in tokens.items():
        for job in reversed(jobs_of(client, token)):
            finished &= job["status"] in {"completed", "failed", "cancelled"}
            bar = "█" * int(job["progress"] // 10)
            table.add_row(
                user,
                f"…{job['id'][-6:]}",
                job["status"],
                # the attempts used of the job's budget (a hand-back uses none)
                f"{job['max_attempts'] - job['attempts_left']}/{job['max_attempts']}",
                f"{bar:<10} {job['progress']:3.0f}%",
                job["progress_message"] or "",
            )
    return table, finished


def main(path: Path, host: str, port: int | None, exit_when_done: bool) -> None:
    """Run the demo on a fresh database at ``path``."""
    app_dir = example_root()
    port = choose_port(host, port)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    with JobDesk.open(url) as desk:
        worker_token = desk.create_worker_token("demo-worker", types=["character_extraction"])
        tokens = {user: desk.create_user_token(user) for user in ("alice", "bob")}
        admin_token = desk.create_admin_token("demo-admin")
    env = dict(os.environ, JOBDESK_DB=url, JOBDESK_WORKER_TOKEN=worker_token)
    base = f"http://{host}:{port}"
    serve = ["serve", "--host", host, "--port", str(port), "--log-level", "warning"]
    serve += ["--max-daily", "10"]  # so that Alice's 11th and 12th jobs show a refusal
    work = ["worker", "--app", APP, "--app-dir", str(app_dir), "--concurrency", "3"]
    work += ["--server", base]
    with contextlib.ExitStack() as running:
        server = running.enter_context(
            process("jobdesk serve", serve, env, path.with_suffix(".server.log"))
        )
        client = running.enter_context(httpx.Client(base_url=base, timeout=10))
        wait_until_up(client, server)
        worker = running.enter_context(  # it connects to the server first
            process("jobdesk worker", work, env, path.with_suffix(".worker.log"))
        )
        console.rule("[bold]jobdesk demo")
        console.print(f"HTTP API: [bold]{base}[/]; database {path}")
        console.print(
            f"dashboard: [bold]{base}/[/]: sign in with alice's user token "
            f"[bold]{tokens['alice']}[/], or at {base}/admin with the admin token "
            f"[bold]{admin_token}[/]",
            soft_wrap=True,
        )
        console.print(
            f"a worker process runs the example handlers over HTTP; logs in {server.log} "
            f"and {worker.log}\n"
        )
        accepted = create_jobs(client, tokens)
        console.print(f"{len(accepted)} jobs accepted\n")
        follow(client, tokens, accepted, (server, worker))
        console.print("\nevery job has finished. Try it yourself:")
        console.print(
            f"  open {base}/ and sign in with alice's token (below), "
            f"or {base}/admin with {admin_token}",
            soft_wrap=True,
        )
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
        with contextlib.suppress(KeyboardInterrupt):  # the way to stop it, not an error
            while server.process.poll() is None:
                worker.check()
                time.sleep(0.5)
            server.check()


def follow(
    client: httpx.Client,
    tokens: dict[str, str],
    accepted: list[tuple[str, str]],
    children: tuple[Child, ...],
) -> None:
    """Show the jobs live until every one has finished; Bob cancels his first one half-way."""
    bob_job = next((job_id for user, job_id in accepted if user == "bob"), None)
    cancelled = False
    deadline = time.monotonic() + DEADLINE
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            for child in children:
                child.check()
            try:
                table, finished = board(client, tokens)
                live.update(table)
                if bob_job is not None and not cancelled:
                    progress = next(
                        (
                            job["progress"]
                            for job in jobs_of(client, tokens["bob"])
                            if job["id"] == bob_job
                        ),
                        0,
                    )
                    if progress >= 25:
                        client.post(
                            f"/api/v1/jobs/{bob_job}/cancel",
                            headers={"Authorization": f"Bearer {tokens['bob']}"},
                        )
                        cancelled = True
            except httpx.HTTPError as exc:
                for child in children:
                    child.check()  # a stopped process explains it best
                raise SystemExit(f"error: the server did not answer as expected: {exc}") from None
            if finished:
                return
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"error: the jobs did not all finish within {DEADLINE:g} s "
                    f"[logs: {children[0].log}, {children[-1].log}]"
                )
            time.sleep(0.25)


def cli() -> None:
    """Entry point of ``python -m jobdesk.demo``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("jobdesk-demo.db"), help="SQLite file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        help=f"default: {DEFAULT_PORT}, or a free port if it is taken; 0 picks a free one",
    )
    parser.add_argument("--exit-when-done", action="store_true", help="stop once all jobs end")
    arguments = parser.parse_args()
    try:
        main(arguments.db, arguments.host, arguments.port, arguments.exit_when_done)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    cli()
