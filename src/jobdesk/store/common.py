"""What both stores share: helpers that are no part of the ``Store`` protocol.

Loading the migrations and the named queries of a dialect, the system clock,
the conventions both dialects keep (the first page's keyset bound, which
history entries keep an error), folding throughput rows into minutes, and a
batch of completions as the changes ``update_jobs`` applies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING

from jobdesk import lifecycle
from jobdesk.models import Completion, JobStatus, ThroughputMinute, Worker

if TYPE_CHECKING:
    from jobdesk.store import Change

__all__ = [
    "ABOVE_EVERY_ID",
    "FAILURE_STATUSES",
    "completion_changes",
    "load_migrations",
    "load_queries",
    "system_clock",
    "throughput_minutes",
]


def system_clock() -> datetime:
    """The machine's clock, in UTC."""
    return datetime.now(UTC)


def completion_changes(
    worker: Worker, completions: Sequence[Completion]
) -> list[tuple[str, Change]]:
    """Each completion as the :data:`Change` that ``update_jobs`` applies to its job."""
    return [
        (
            completion.job_id,
            partial(
                lifecycle.complete,
                worker=worker,
                attempt=completion.attempt,
                result=completion.result,
            ),
        )
        for completion in completions
    ]


def load_migrations(dialect: str) -> list[tuple[int, str]]:
    """``(version, script)`` of every migration of ``dialect`` ("sqlite", "postgres"), in order."""
    folder = resources.files(f"jobdesk.store.migrations.{dialect}")
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


ABOVE_EVERY_ID = "8"
"""Greater than every job id (they start with 0-7): the first page's keyset bound."""

FAILURE_STATUSES = (JobStatus.FAILED, JobStatus.PENDING)
"""History entries in these statuses keep the job's error: failed, or back to pending."""


def throughput_minutes(rows: Sequence[tuple[datetime, str, int]]) -> list[ThroughputMinute]:
    """``(minute, kind, count)`` rows (kind: created or a finished status) as minutes, in order."""
    found: dict[datetime, dict[str, int]] = {}
    for minute, kind, count in rows:
        counts = found.setdefault(minute, {})
        counts[kind] = counts.get(kind, 0) + count
    return [
        ThroughputMinute(
            minute, counts.get("created", 0), counts.get("completed", 0), counts.get("failed", 0)
        )
        for minute, counts in sorted(found.items())
    ]


_INCLUDE = re.compile(r"^-- include: (\w+)$", re.MULTILINE)
_QUERY_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str) -> dict[str, str]:
    """The named queries of a ``.sql`` file: blocks headed ``-- name: query_name``.

    A line ``-- include: other_name`` stands for the block ``other_name`` (a shared
    fragment, defined earlier in the file).
    """
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _QUERY_HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = _INCLUDE.sub(lambda line: queries[line.group(1)], body.strip())
    return queries
