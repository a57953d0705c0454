"""The long fault-injection run (``make faults``): 10,000+ jobs, tens of faults, per store.

    .venv/bin/python bench/faults.py --store postgres --jobs 12500 --duration 330

The experiment and the checker are the CI test's (``tests/faults``), with a
bigger plan: more users, clients and workers, a fault every ``--interval``
seconds. It prints the checker's report and the recovery time of each fault,
writes them to ``bench/results/faults-<store>-<time>.json``, and exits 1 if the
checker failed. Record the figures in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from tests.faults.experiment import FAULTS, Plan, run_experiment  # noqa: E402


def main() -> None:
    """Parse the options, run, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--jobs", type=int, default=12_500, help="creates the clients attempt")
    parser.add_argument("--duration", type=float, default=330, help="seconds under faults")
    parser.add_argument("--interval", type=float, default=6, help="seconds between faults")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    faults = tuple(f for f in arguments.faults.split(",") if arguments.store in FAULTS[f])
    plan = Plan(
        duration=arguments.duration,
        target_jobs=arguments.jobs,
        users=40,
        max_active=4,
        daily_limit=200,
        clients=12,
        db_workers=4,
        http_workers=2,
        concurrency=8,
        lease_seconds=2.0,
        fault_interval=arguments.interval,
        faults=faults,
        drain_timeout=300,
        seed=arguments.seed,
    )
    server = os.environ.get(
        "JOBDESK_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
    )
    with tempfile.TemporaryDirectory(prefix="jobdesk-faults-") as directory:
        run = asyncio.run(run_experiment(arguments.store, plan, Path(directory), server_url=server))
    report = run.report
    print(
        f"{arguments.store}: {run.seconds:.0f} s, {run.jobs_per_second:.1f} jobs ended per second"
    )
    print(report.summary())
    by_kind: dict[str, list[float]] = {}
    for kind, _, seconds in report.recovery:
        if seconds is not None:
            by_kind.setdefault(kind, []).append(seconds)
    for kind, values in sorted(by_kind.items()):
        print(
            f"  {kind}: {len(values)} times, recovery median {statistics.median(values):.2f} s, "
            f"max {max(values):.2f} s"
        )
    print(f"integrity_check: {run.integrity}")
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
        "acknowledged": report.acknowledged,
        "refused": report.refused,
        "not_sent": report.failed_requests,
        "unknown": report.unknown,
        "recovered": report.recovered,
        "terminal": dict(report.terminal),
        "lost": report.lost,
        "unexpected": report.unexpected,
        "double_terminal": report.double_terminal,
        "stale_results": report.stale_results,
        "limit_violations": report.limit_violations,
        "executions": report.executions,
        "duplicate_executions": report.duplicate_executions,
        "recovery": report.recovery,
        "integrity": run.integrity,
    }
    path = results / f"faults-{arguments.store}-{stamp}.json"
    path.write_text(json.dumps(record, indent=2, default=str))
    print(f"written to {path}")
    sys.exit(0 if report.ok and run.integrity in ("ok", "n/a") else 1)


if __name__ == "__main__":
    main()
