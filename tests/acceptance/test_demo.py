"""``make run``'s demo, end to end: a real server and a real worker process over HTTP."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jobdesk.demo import Child


def demo(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jobdesk.demo ARGS --exit-when-done`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "jobdesk.demo", *args, "--exit-when-done"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_demo_runs_every_job_to_its_end_from_any_directory(tmp_path: Path) -> None:
    # Not from the repository: the worker still finds the example app there.
    finished = demo("--port", "0", cwd=tmp_path, timeout=120)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "every job has finished" in finished.stdout
    # Where the dashboard is, and the tokens to sign in with.
    words = " ".join(finished.stdout.split())
    assert re.search(
        r"dashboard: http://127\.0\.0\.1:\d+/: sign in with alice's user token jdu_", words
    )
    assert finished.stdout.count("429") == 2  # alice asked for 12 with 10 a day allowed
    assert "cancelled" in finished.stdout
    assert (tmp_path / "jobdesk-demo.db").exists()


def test_a_port_in_use_stops_the_demo_at_once_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = demo("--port", str(port), cwd=tmp_path, timeout=30)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (another server, or a demo still "
        "running?): stop it or pass another --port (0 picks a free one)"
    ]
    assert list(tmp_path.iterdir()) == []  # it stopped before starting anything


def test_a_child_process_that_stopped_ends_the_demo_with_its_last_words(tmp_path: Path) -> None:
    log = tmp_path / "demo.worker.log"
    with log.open("wb") as output:
        dying = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('starting'); sys.exit('error: --app: boom')"],
            stdout=output, stderr=output,
        )  # fmt: skip
        dying.wait(timeout=30)
    with pytest.raises(SystemExit) as stopped:
        Child("jobdesk worker", dying, log).check()
    assert str(stopped.value) == (
        f"error: jobdesk worker stopped (exit code 1): error: --app: boom [log: {log}]"
    )
