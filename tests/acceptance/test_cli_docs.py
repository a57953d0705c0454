"""docs/cli.md is generated from ``jobdesk --help``: the checked-in file must match.

Regenerate it with ``.venv/bin/python -m tests.acceptance.test_cli_docs``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
REFERENCE = REPOSITORY / "docs" / "cli.md"
HEADER = """\
<!-- Generated from `jobdesk --help` by tests/acceptance/test_cli_docs.py; do not edit.
     Regenerate: .venv/bin/python -m tests.acceptance.test_cli_docs -->

"""


def generate() -> str:
    """The reference as Typer renders the ``jobdesk`` command tree in Markdown."""
    rendered = subprocess.run(
        [sys.executable, "-m", "typer", "jobdesk.cli", "utils", "docs", "--name", "jobdesk",
         "--title", "jobdesk command line reference"],
        capture_output=True, text=True, check=True, cwd=REPOSITORY, timeout=60,
    )  # fmt: skip
    return HEADER + rendered.stdout.rstrip() + "\n"


def test_the_cli_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == generate(), (
        "docs/cli.md is stale: run .venv/bin/python -m tests.acceptance.test_cli_docs"
    )


if __name__ == "__main__":
    REFERENCE.write_text(generate(), encoding="utf-8")
    print(f"wrote {REFERENCE.relative_to(REPOSITORY)}")
