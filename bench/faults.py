"""The long fault-injection run (``make faults``): 10,000+ jobs, tens of faults, per store.

    .venv/bin/python bench/faults.py --store postgres --jobs 12500 --duration 330

The experiment and the checker are the CI test's (``tests/faults``), with a
bigger plan: more users, clients and workers, a fault every ``--interval``
seconds. It prints the checker's report, an account of where every job in the
database came from, the create outcomes by path, and the count and recovery
times of each fault kind; writes them to
``bench/results/faults-<store>-<time>.json``; and exits 1 if the checker failed.
Record the figures in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from tests.faults.experiment import FAULTS, Plan, Run, run_experiment  # noqa: E402


def parse() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument(
        "--jobs", type=int, default=12_500, help="about how many creates over --duration"
    )
    parser.add_argument("--duration", type=float, default=330, help="seconds under faults")
    parser.add_argument("--interval", type=float, default=6, help="seconds between faults")
    parser.add_argument("--min-each", type=int, default=5, help="faults of each kind, at least")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def plan_for(arguments: argparse.Namespace) -> Plan:
    """The long run's plan."""
    faults = tuple(f for f in arguments.faults.split(",") if arguments.store in FAULTS[f])
    return Plan(
        duration=arguments.duration,
        target_jobs=arguments.jobs,
        users=40,
        max_running=4,
        max_waiting=4,
        daily_limit=200,
        clients=12,
        slow_share=0.05,
        db_workers=4,
        http_workers=2,
        concurrency=8,
        lease_seconds=2.0,
        fault_interval=arguments.interval,
        faults=faults,
        min_each=arguments.min_each,
        tail=5.0,
        drain_timeout=300,
        seed=arguments.seed,
    )


def accounting(run: Run) -> dict[str, Any]:
    """Where the jobs in the database came from, and how the creates ended, by path."""
    report = run.report
    by_via: dict[str, Counter[str]] = {}
    for op in run.creates:
        by_via.setdefault(op.via, Counter())[op.outcome] += 1
    unknown_details = Counter(op.detail for op in run.creates if op.outcome == "unknown")
    return {
        "jobs_in_database": sum(report.terminal.values()),
        "acknowledged": report.acknowledged,
        "unknown": report.unknown,
        "unknown_present": report.recovered,
        "unexpected": len(report.unexpected),
        "outcomes_by_path": {via: dict(counts) for via, counts in sorted(by_via.items())},
        "unknown_details": dict(unknown_details.most_common(10)),
    }


def fault_table(run: Run) -> dict[str, dict[str, Any]]:
    """Per fault kind (a worker's side told apart): count, jobs held, recovery times."""
    table: dict[str, dict[str, Any]] = {}
    for fault, recovery in zip(run.faults, run.report.recovery, strict=True):
        row = table.setdefault(
            fault.label,
            {"count": 0, "held_jobs": 0, "superseded": 0, "never": 0, "seconds": []},
        )
        row["count"] += 1
        row["held_jobs"] += len(fault.held)
        row["superseded"] += len(fault.superseded)
        row["measure"] = recovery.measure
        if recovery.seconds is None:
            row["never"] += 1
        else:
            row["seconds"].append(round(recovery.seconds, 3))
    for row in table.values():
        seconds = row["seconds"]
        row["median"] = round(statistics.median(seconds), 2) if seconds else None
        row["max"] = round(max(seconds), 2) if seconds else None
    return dict(sorted(table.items()))


def show(
    store: str, plan: Plan, run: Run, account: dict[str, Any], table: dict[str, dict[str, Any]]
) -> None:
    """The report, as lines for the terminal."""
    print(f"{store}: {run.seconds:.0f} s, {run.jobs_per_second:.1f} jobs ended per second")
    print(run.report.summary())
    print(
        f"accounting: {account['jobs_in_database']} jobs in the database = "
        f"{account['acknowledged']} acknowledged + {account['unknown_present']} of the "
        f"{account['unknown']} creates of unknown outcome (applied after all) + "
        f"{account['unexpected']} unexpected"
    )
    for via, counts in account["outcomes_by_path"].items():
        print(f"  creates {via}: {counts}")
    if account["unknown_details"]:
        print(f"  unknown outcomes: {account['unknown_details']}")
    for label, row in table.items():
        shown = (
            f"recovery median {row['median']:.2f} s, max {row['max']:.2f} s"
            if row["seconds"]
            else "no recovery measured"
        )
        held = f", {row['held_jobs']} jobs held" if label.startswith(("kill_w", "pause")) else ""
        taken = (
            f", {row['superseded']} taken over while paused" if label.startswith("pause") else ""
        )
        never = f", NEVER {row['never']}x" if row["never"] else ""
        print(f"  {label}: {row['count']}x{held}{taken}; {shown}{never} ({row['measure']})")
    fired = Counter(fault.kind for fault in run.faults)
    short = {kind: fired[kind] for kind in plan.faults if fired[kind] < plan.min_each}
    if short:
        print(f"WARNING: fewer than {plan.min_each} of {short} (the run stopped at 3x --duration)")
    print(f"integrity_check: {run.integrity}")
    if run.died:
        print(f"died on their own: {run.died}")
    if run.torn_records:
        print(f"execution records cut by kill -9: {run.torn_records}")


def main() -> None:
    """Parse the options, run, report."""
    arguments = parse()
    plan = plan_for(arguments)
    server = os.environ.get(
        "JOBDESK_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
    )
    with tempfile.TemporaryDirectory(prefix="jobdesk-faults-") as directory:
        run = asyncio.run(run_experiment(arguments.store, plan, Path(directory), server_url=server))
    report = run.report
    account = accounting(run)
    table = fault_table(run)
    show(arguments.store, plan, run, account, table)
    results = REPOSITORY / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {
        "store": arguments.store,
        "at": stamp,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}",
        "plan": dict(plan.__dict__),
        "seconds": run.seconds,
        "ok": report.ok,
        **account,
        "refused": report.refused,
        "certainly_not_applied": report.failed_requests,
        "terminal": dict(report.terminal),
        **{name.replace(" ", "_"): found for name, found in report.failures.items()},
        "executions": report.executions,
        "duplicate_executions": report.duplicate_executions,
        "late_starts": report.late_starts,
        "faults_by_kind": table,
        "faults": [
            {
                **dataclasses.asdict(fault),
                "label": fault.label,
                "recovery": dataclasses.asdict(recovery),
            }
            for fault, recovery in zip(run.faults, report.recovery, strict=True)
        ],
        "integrity": run.integrity,
        "died": run.died,
        "torn_records": run.torn_records,
    }
    path = results / f"faults-{arguments.store}-{stamp}.json"
    path.write_text(json.dumps(record, indent=2, default=str))
    print(f"written to {path}")
    passed = report.ok and run.integrity in ("ok", "n/a") and not run.died
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
