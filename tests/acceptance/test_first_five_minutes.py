"""What a new user does first, from a fresh clone: the README's two commands' first,
``make run`` (here on a free port, stopping once the demo's jobs end), then the
README's library example, twice, in the clone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
README = REPOSITORY / "README.md"
TIMEOUT = 180  # seconds: the demo's jobs take about 15 s on a quiet machine


def readme_example() -> str:
    """The README's first Python block: the library in five minutes."""
    match = re.search(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first = re.search(r"^```sh\n(.*?)^```", text, re.M | re.S)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands == ["make run", "make test"]
    assert text.index(first.group(0)) < text.index("```python")


def test_make_run_then_the_readme_example_twice_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "jobdesk"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPOSITORY), str(clone)],
        check=True,
        timeout=TIMEOUT,
    )
    # The clone borrows this checkout's environment rather than installing one (a minute
    # and the package index): `-o` keeps make from setting it up again.
    (clone / ".venv").symlink_to(REPOSITORY / ".venv")
    ran = subprocess.run(
        [
            *("make", "-o", ".venv/.installed-stamp", "run"),
            *("PORT=0", "DEMO_ARGS=--exit-when-done"),
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "every job has finished" in ran.stdout
    dashboard = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", ran.stdout)
    assert dashboard is not None, ran.stdout
    assert "sign in with alice's user token jdu_" in " ".join(ran.stdout.split())
    assert "/admin with the admin token jda_" in " ".join(ran.stdout.split())

    for run in (1, 2):
        example = subprocess.run(
            [sys.executable, "-c", readme_example()],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert example.returncode == 0, f"run {run}: {example.stdout}{example.stderr}"
        assert example.stdout.split()[1:2] == ["completed"], example.stdout
