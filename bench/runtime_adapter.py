"""The harness adapter for ``jobdesk worker`` processes: the real CLI, 1 or 2 of them.

Used by ``lib_jobdesk_rt`` (SQLite) and ``lib_jobdesk_rt_pg`` (PostgreSQL). The
workers are what a user runs, ``jobdesk worker --app ... --concurrency 10``, with
the no-op handler of ``jobdesk_runtime_worker.py``. Variants:

- ``x1``, ``x2``: one or two worker processes on the database (``--db``);
- ``http_x1``, ``http_x2``: ``jobdesk serve`` on the database and one or two
  remote workers that reach it only over HTTP (``--server``, a worker token).

The producer is the library's ``create_job`` (limit checks on) on the database,
as in ``lib_jobdesk``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import lib_jobdesk
from jobdesk.sync import JobDesk as SyncJobDesk

HERE = Path(__file__).resolve().parent
APP = "jobdesk_runtime_worker:registry"
VARIANTS = ["x1", "x2", "http_x1", "http_x2"]
CONCURRENCY = 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def worker_cmds(url: str, variant: str, python: str) -> list[list[str]]:
    """The processes of ``variant``: workers, and for ``http_*`` the server first."""
    if variant not in VARIANTS:
        raise KeyError(variant)
    count = 2 if variant.endswith("x2") else 1
    with SyncJobDesk.open(url, limits=lib_jobdesk.LIMITS) as desk:
        tokens = [desk.create_worker_token(f"bench-{variant}-{n}") for n in range(count)]
    common = [
        "--app", APP, "--app-dir", str(HERE), "--concurrency", str(CONCURRENCY),
        "--log-level", "warning",
    ]  # fmt: skip
    if not variant.startswith("http"):
        return [
            [python, "-m", "jobdesk", "worker", *common, "--db", url, "--token", token]
            for token in tokens
        ]
    port = _free_port()
    server = f"http://127.0.0.1:{port}"
    serve = [
        python, "-m", "jobdesk", "serve", "--db", url, "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    wait = [python, str(HERE / "wait_for_server.py"), server, "--"]
    return [serve] + [
        [*wait, python, "-m", "jobdesk", "worker", *common, "--server", server, "--token", token]
        for token in tokens
    ]
