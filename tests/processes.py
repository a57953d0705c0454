"""Real subprocesses in tests: a free port, a bounded wait, processes logging to files.

Shared by the tests that run ``jobdesk serve``, ``jobdesk worker`` and the webhook sink
as processes of their own. Waits poll with a deadline; nothing sleeps a fixed time to
let something happen.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
REPOSITORY = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


#: how long a wait lasts before the test fails, unless a test says otherwise
DEADLINE = 30.0


def wait_for(read: Callable[[], T | None], within: float = DEADLINE) -> T:
    """Poll ``read()`` until it returns something other than None; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = read()
        if value is not None:
            return value
        time.sleep(0.05)
    pytest.fail(f"no such state within {within} s")


class Processes:
    """A test's subprocesses, each logging to ``<directory>/<name>.log``; see
    :func:`running` for the ones killed at the test's end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        """Start ``command`` in the repository, with ``env`` added to this environment."""
        log = self.directory / f"{name}.log"
        with log.open("wb") as output:
            child = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env={**os.environ, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started.append((child, log))
        return child

    def output(self, name: str) -> str:
        """What the process ``name`` wrote so far."""
        return (self.directory / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def logs(self) -> str:
        """Every process's output, for a failing assertion's message."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')}" for _, log in self.started
        )


def running(directory: Path, within: float = DEADLINE) -> Iterator[Processes]:
    """The body of a fixture: the test's :class:`Processes`, those still running killed
    at its end."""
    processes = Processes(directory)
    yield processes
    for child, _ in processes.started:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=within)
