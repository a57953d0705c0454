"""Side-by-side table of the peer harness results, with jobdesk / peer ratios (Markdown).

    .venv/bin/python bench/peers/peers_report.py RESULTS.jsonl > bench/results/peers.md

Reads the ``results.jsonl`` that the harness's ``bench.py`` appends to. Cells are
median (min-max) over the repetitions. A ratio is jobdesk / peer: above 1 means
jobdesk does more per second (enqueue, drain) or waits longer (latency). Each
ratio is the median of the per-repetition ratios, since a repetition runs every
library back to back, followed by their range.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from jobdesk_adapter import CONFIGURATIONS

Result = dict[str, Any]
Key = tuple[str, str]  # (lib, variant)
Measure = tuple[Key, str, str]  # (lib, variant), scenario, metric

#: every jobdesk configuration the harness can run (one ``lib_jobdesk*`` module each)
JOBDESKS = tuple(CONFIGURATIONS)
DESCRIPTION = {
    "jobdesk": "SQLite synchronous=full; bench loop: 1 process, claim_jobs(limit=10)",
    "jobdesk_normal": "as jobdesk, SQLite synchronous=normal",
    "jobdesk_pg": "PostgreSQL; bench loop, or runtime_c10: the worker runtime in process",
    "jobdesk_rt": "SQLite synchronous=full; `jobdesk worker` processes (x1, x2) or "
    "`jobdesk serve` + remote workers over HTTP (http_x1, http_x2)",
    "jobdesk_rt_pg": "PostgreSQL; `jobdesk worker` processes (x1, x2) or `jobdesk serve` + "
    "remote workers over HTTP (http_x1, http_x2)",
    "pgqueuer": "PostgreSQL; 1 process, batch 10, LISTEN/NOTIFY",
    "procrastinate": "PostgreSQL; 1 process, -c 10, LISTEN/NOTIFY",
    "celery": "Redis broker, no result backend",
    "rq": "Redis",
}
#: (column title, scenario, metric, decimals, higher is better)
COLUMNS = (
    ("enqueue/s (1 by 1)", "enqueue", "enqueue_per_s", 0, True),
    ("bulk enqueue/s", "enqueue", "bulk_enqueue_per_s", 0, True),
    ("drain jobs/s (from spawn)", "drain", "drain_per_s", 0, True),
    ("drain steady jobs/s", "drain", "steady_per_s", 0, True),
    ("latency p50 ms", "latency", "p50_ms", 1, False),
    ("latency p95 ms", "latency", "p95_ms", 1, False),
    ("latency p99 ms", "latency", "p99_ms", 1, False),
)


def load(path: Path) -> list[Result]:
    """Every successful, complete measurement of a numbered repetition."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row: Result = json.loads(line)
            if row.get("rep", 0) >= 1 and "error" not in row and row.get("completed", True):
                rows.append(row)
    return rows


def cell(values: Sequence[float], decimals: int) -> str:
    """``median (min-max)``, or the one value, or n/a."""
    if not values:
        return "n/a"
    text = f"{{:,.{decimals}f}}"
    median = text.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({text.format(min(values))}-{text.format(max(values))})"


class Results:
    """Measurements indexed by library, variant, scenario and repetition."""

    def __init__(self, rows: Iterable[Result]) -> None:
        self.by: dict[tuple[str, str, str], dict[int, Result]] = defaultdict(dict)
        self.keys: list[Key] = []
        for row in rows:
            self.by[(row["lib"], row["scenario"], row["variant"])][row["rep"]] = row
            per_library = row["scenario"] in ("enqueue", "http_post")
            if not per_library and (row["lib"], row["variant"]) not in self.keys:
                self.keys.append((row["lib"], row["variant"]))
        order = [*JOBDESKS, "pgqueuer", "procrastinate", "celery", "rq"]
        self.keys.sort(key=lambda key: (order.index(key[0]) if key[0] in order else 99, key[1]))

    def values(self, key: Key, scenario: str, metric: str) -> dict[int, float]:
        """The metric per repetition (enqueue is measured once per library, not per variant)."""
        variant = "-" if scenario == "enqueue" else key[1]
        found = self.by.get((key[0], scenario, variant), {})
        return {rep: row[metric] for rep, row in found.items() if row.get(metric) is not None}

    def ratios(self, ours: Measure, theirs: Measure) -> list[float]:
        """ours / theirs for each repetition that measured both."""
        mine, other = self.values(*ours), self.values(*theirs)
        return [mine[rep] / other[rep] for rep in mine if other.get(rep)]


def main_table(results: Results) -> list[str]:
    """Every library and variant, median (min-max) per column."""
    lines = [
        "| library | variant | " + " | ".join(title for title, *_ in COLUMNS) + " | reps |",
        "|---|---|" + "---|" * len(COLUMNS) + "---|",
    ]
    for key in results.keys:
        cells = [
            cell(list(results.values(key, scenario, metric).values()), decimals)
            for _, scenario, metric, decimals, _ in COLUMNS
        ]
        reps = max(
            (len(results.values(key, scenario, metric)) for _, scenario, metric, *_ in COLUMNS),
            default=0,
        )
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + f" | {reps} |")
    lines.append("")
    measured = {lib for lib, _ in results.keys}
    setups = [f"**{lib}**: {text}" for lib, text in DESCRIPTION.items() if lib in measured]
    lines.append("Setups: " + "; ".join(setups))
    return lines


def ratio_table(results: Results, mine: Key) -> list[str]:
    """jobdesk / peer for every column, per repetition, then median (min-max)."""
    lines = [
        f"Ratios **{mine[0]} {mine[1]} / peer** (per-repetition ratios: median (min-max)). "
        "Throughput: above 1 = jobdesk faster. Latency: below 1 = jobdesk faster.",
        "",
        "| peer | variant | " + " | ".join(title for title, *_ in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for key in results.keys:
        if key[0] in JOBDESKS:
            continue
        cells = []
        for _, scenario, metric, _, _ in COLUMNS:
            ratios = results.ratios((mine, scenario, metric), (key, scenario, metric))
            cells.append(cell(ratios, 2))
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return lines


#: issue 17's goals: (path, ours (lib, variant, scenario, metric), reference (the same),
#: goal on ours / reference, higher is better). Enqueue rows have variant "-".
GOALS = (
    (
        "drain, one `jobdesk worker`, PostgreSQL / PgQueuer",
        ("jobdesk_rt_pg", "x1", "drain", "drain_per_s"),
        ("pgqueuer", "default", "drain", "drain_per_s"),
        2.0,
        True,
    ),
    (
        "drain, one `jobdesk worker` / PgQueuer, steady state (first start to last)",
        ("jobdesk_rt_pg", "x1", "drain", "steady_per_s"),
        ("pgqueuer", "default", "drain", "steady_per_s"),
        2.0,
        True,
    ),
    (
        "drain, one `jobdesk worker --commits-in-flight 2` / PgQueuer",
        ("jobdesk_rt_pg", "x1_cif2", "drain", "drain_per_s"),
        ("pgqueuer", "default", "drain", "drain_per_s"),
        2.0,
        True,
    ),
    (
        "drain, `serve` + one remote worker / the same worker on the database",
        ("jobdesk_rt_pg", "http_x1", "drain", "drain_per_s"),
        ("jobdesk_rt_pg", "x1", "drain", "drain_per_s"),
        0.9,
        True,
    ),
    (
        # From spawn, the remote variant's figure includes starting `jobdesk serve` (1-2 s
        # on this machine), which a deployment's API process has done long before.
        "the same, steady state (the server already up, as in a deployment)",
        ("jobdesk_rt_pg", "http_x1", "drain", "steady_per_s"),
        ("jobdesk_rt_pg", "x1", "drain", "steady_per_s"),
        0.9,
        True,
    ),
    (
        "`create_job` one at a time (limits on) / PgQueuer",
        ("jobdesk_rt_pg", "-", "enqueue", "enqueue_per_s"),
        ("pgqueuer", "-", "enqueue", "enqueue_per_s"),
        1.0,
        True,
    ),
    (
        "`create_jobs` bulk / PgQueuer",
        ("jobdesk_rt_pg", "-", "enqueue", "bulk_enqueue_per_s"),
        ("pgqueuer", "-", "enqueue", "bulk_enqueue_per_s"),
        1.0,
        True,
    ),
    (
        "create→start latency p50, 1 worker / PgQueuer",
        ("jobdesk_rt_pg", "x1", "latency", "p50_ms"),
        ("pgqueuer", "default", "latency", "p50_ms"),
        1.0,
        False,
    ),
    (
        "create→start latency p99, 1 worker / PgQueuer",
        ("jobdesk_rt_pg", "x1", "latency", "p99_ms"),
        ("pgqueuer", "default", "latency", "p99_ms"),
        1.0,
        False,
    ),
    (
        "HTTP `POST /api/v1/jobs` req/s, 1 uvicorn process, 16 connections / library `create_job`",
        ("jobdesk_rt_pg", "-", "http_post", "requests_per_second"),
        ("jobdesk_rt_pg", "-", "enqueue", "enqueue_per_s"),
        0.8,
        True,
    ),
)


def goals_table(results: Results) -> list[str]:
    """Issue 17's table: each path's ratio (median (min-max) of the per-repetition ratios)."""
    lines = [
        "Goals (issue 17): ratio per repetition, then median (min-max).",
        "",
        "| path | ratio | goal | met |",
        "|---|---|---|---|",
    ]
    for title, ours, reference, goal, higher in GOALS:
        ratios = results.ratios(
            ((ours[0], ours[1]), ours[2], ours[3]),
            ((reference[0], reference[1]), reference[2], reference[3]),
        )
        if not ratios:
            lines.append(f"| {title} | not measured | {'≥' if higher else '≤'} {goal} | |")
            continue
        median = statistics.median(ratios)
        met = median >= goal if higher else median <= goal
        sign = "≥" if higher else "≤"
        lines.append(f"| {title} | {cell(ratios, 2)} | {sign} {goal} | {'yes' if met else 'no'} |")
    p99 = results.values(("jobdesk_rt_pg", "-"), "http_post", "p99_ms")
    if p99:
        met = statistics.median(p99.values()) < 50
        lines.append(
            f"| HTTP `POST /api/v1/jobs` p99 ms at 16 connections | {cell(list(p99.values()), 1)}"
            f" | < 50 ms | {'yes' if met else 'no'} |"
        )
    return lines


def report(path: Path) -> str:
    """The whole Markdown report of one results file."""
    results = Results(load(path))
    lines = [f"Source: `{path}`", "", *main_table(results), ""]
    lines += [*goals_table(results), ""]
    for mine in results.keys:
        if mine[0] in JOBDESKS:
            lines += [*ratio_table(results, mine), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2)
    print(report(Path(sys.argv[1])))
