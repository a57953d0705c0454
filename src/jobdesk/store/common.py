"""What both stores share: helpers that are no part of the ``Store`` protocol.

Loading the migrations and the named queries of a dialect, the system clock,
the conventions both dialects keep (the first page's keyset bound, which
history entries keep an error), folding throughput rows into minutes, and a
batch of completions as the changes ``update_jobs`` applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any

from jobdesk import lifecycle
from jobdesk.groups import FanIn, Group, NewGroup
from jobdesk.models import Completion, JobStatus, ThroughputMinute, Worker

if TYPE_CHECKING:
    from jobdesk.store import Change

__all__ = [
    "ABOVE_EVERY_ID",
    "FAILURE_STATUSES",
    "completion_changes",
    "fan_in_document",
    "group_from_row",
    "load_migrations",
    "load_queries",
    "system_clock",
    "tally_groups",
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


GroupTallies = dict[str, dict[JobStatus, tuple[int, float]]]
"""Per group id, per status: how many of its jobs, and the sum of their progress."""


def tally_groups(rows: Iterable[Mapping[str, Any]]) -> GroupTallies:
    """``(group_id, status, count, progress)`` rows (either store's ``group_counts``) folded."""
    tallies: GroupTallies = {}
    for row in rows:
        found = tallies.setdefault(row["group_id"], {})
        found[JobStatus(row["status"])] = (int(row["count"]), float(row["progress"] or 0.0))
    return tallies


def group_from_row(
    row: Any,
    tally: Mapping[JobStatus, tuple[int, float]],
    *,
    on_complete: Any,
    created_at: datetime,
    cancelled_at: datetime | None,
) -> Group:
    """The one place a group row (either store's: a mapping by column name, its JSON and
    times read by the store) and its
    jobs' tally become a :class:`~jobdesk.groups.Group`, through
    :func:`jobdesk.groups.summarize`."""
    fan_in = None
    if isinstance(on_complete, dict):
        fan_in = FanIn(str(on_complete["type"]), on_complete.get("input"))
    new = NewGroup(
        id=row["id"],
        user_id=row["user_id"],
        project_id=row["project_id"],
        name=row["name"],
        on_complete=fan_in,
    )
    return Group.of(
        new,
        created_at=created_at,
        counts={status: count for status, (count, _) in tally.items()},
        active_progress=sum(
            progress for status, (_, progress) in tally.items() if status.is_active
        ),
        on_complete_job_id=row["on_complete_job_id"],
        cancelled_at=cancelled_at,
    )


def fan_in_document(fan_in: FanIn | None) -> dict[str, Any] | None:
    """A fan-in as both stores keep it (JSON)."""
    return None if fan_in is None else {"type": fan_in.type, "input": fan_in.input}
