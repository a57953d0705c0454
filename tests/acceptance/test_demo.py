"""``make run``'s demo, end to end: a real server and a real worker process over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_demo_runs_every_job_to_its_end(tmp_path: Path) -> None:
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobdesk.demo",
            "--db",
            str(tmp_path / "demo.db"),
            "--port",
            str(free_port()),
            "--exit-when-done",
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "every job has finished" in finished.stdout
    assert finished.stdout.count("429") == 2  # alice asked for 12 with room for 10
    assert "cancelled" in finished.stdout
