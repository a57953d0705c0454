"""A test build of jobdesk with one guarantee switched off: ``python -m tests.faults.mutant``.

The mutation test runs the real experiment with its ``jobdesk serve`` and
``jobdesk worker`` processes started through this entry point instead of
``python -m jobdesk``, with ``FAULTS_MUTANT`` naming the mutant. It patches the
installed package in memory, in that process only, then runs the same command
line; nothing under ``src/`` changes, and no other run sees the mutant.

- ``no-fencing``: :func:`jobdesk.lifecycle.hold`, the check that a worker's write
  comes from the attempt that holds the job under a live lease, does nothing. A
  worker paused past its lease then overwrites the result of the attempt that
  replaced it: the checker must report a stale result.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["MUTANTS", "VARIABLE"]

VARIABLE = "FAULTS_MUTANT"


def _no_fencing() -> None:
    import jobdesk.lifecycle  # noqa: PLC0415 - patched only when this mutant is chosen

    def hold(*_: object) -> None:
        """Fencing switched off: every worker write is taken."""

    jobdesk.lifecycle.hold = hold  # type: ignore[assignment] # the point of the mutant


MUTANTS: dict[str, Callable[[], None]] = {"no-fencing": _no_fencing}


def main() -> None:
    """Apply the mutant ``$FAULTS_MUTANT`` names, then run the ``jobdesk`` command line."""
    name = os.environ.get(VARIABLE, "")
    if name not in MUTANTS:
        sys.exit(f"{VARIABLE} must name a mutant ({', '.join(sorted(MUTANTS))}), not {name!r}")
    MUTANTS[name]()
    print(f"jobdesk mutant {name!r}: {MUTANTS[name].__name__} applied", file=sys.stderr)
    from jobdesk.cli import app  # noqa: PLC0415 - after the patch, as python -m jobdesk would

    app(prog_name="jobdesk")


if __name__ == "__main__":
    main()
