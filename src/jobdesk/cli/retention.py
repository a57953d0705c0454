"""``jobdesk retention ...``: how long finished jobs are kept (``show``) and a pass that
deletes the expired ones now (``run``, ``--dry-run`` to count them); and the loop that
``jobdesk worker --db`` runs beside its jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from jobdesk import retention
from jobdesk.cli.app import AsJson, Db, Debug, app, cell, open_desk, out, print_json, run, when
from jobdesk.desk import JobDesk
from jobdesk.errors import JobdeskError
from jobdesk.retention import FINISHED, RetentionPolicy, RetentionReport, RetentionState

__all__ = ["retaining", "retention_app", "retention_run", "retention_show"]

retention_app = typer.Typer(
    help="Retention: how long finished jobs are kept, and passes that delete expired ones."
)
app.add_typer(retention_app, name="retention", no_args_is_help=True)

Policy = Annotated[
    str | None,
    typer.Option(
        "--policy",
        envvar="JOBDESK_RETENTION",
        help="How long finished jobs are kept: `completed=7d,failed=30d,render.failed=forever` "
        "(units s, min, h, d, w; statuses not named keep 7d, 30d, 30d) "
        "[default: JOBDESK_RETENTION, else the defaults]",
        show_default=False,
    ),
]
#: how long a worker's retention pass rests between batches (as the server's does)
PAUSE_SECONDS = 0.05
_log = logging.getLogger("jobdesk.retention")


def policy_from(text: str | None) -> RetentionPolicy:
    """``--policy`` (or ``JOBDESK_RETENTION``) as a policy; the defaults when absent."""
    return RetentionPolicy() if not text else retention.parse(text)


def _policy_table(policy: RetentionPolicy) -> Table:
    table = Table(title="kept for")
    for column in ("status", "type", "period"):
        table.add_column(column)
    for status, type_name, period in policy.describe():
        table.add_row(
            cell(status), cell("every other" if type_name == "*" else type_name), cell(period)
        )
    return table


def _report_json(report: RetentionReport | None) -> dict[str, object] | None:
    if report is None:
        return None
    return {
        "ran": report.ran,
        "dry_run": report.dry_run,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "deleted": {status.value: report.deleted.get(status, 0) for status in FINISHED},
        "total": report.total,
        "batches": report.batches,
        "more": report.more,
    }


def _report_line(report: RetentionReport) -> str:
    counts = ", ".join(f"{status} {report.deleted.get(status, 0)}" for status in FINISHED)
    verb = "expired (nothing deleted: --dry-run)" if report.dry_run else "deleted"
    line = f"{report.total} {verb}: {counts}"
    if not report.dry_run:
        line += f"; {report.batches} batch(es)"
    if report.more:
        line += "; more are left (--max-batches)"
    return line


@retention_app.command("show")
def retention_show(
    policy: Policy = None, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Show the policy (--policy or JOBDESK_RETENTION), who runs a pass now, and the last pass."""
    checked = policy_from(policy)

    async def work() -> RetentionState:
        async with open_desk(db) as desk:
            return await desk.get_retention_state()

    state = run(work(), as_json=as_json)
    if as_json:
        print_json(
            {
                "policy": checked.to_text(),
                "holder": state.holder,
                "held_until": state.held_until,
                "last_run": _report_json(state.last_run),
            }
        )
        return
    out.print(_policy_table(checked))
    if state.holder is not None:
        out.print(Text(f"running now: {state.holder} (lease until {when(state.held_until)})"))
    last = state.last_run
    if last is None:
        out.print(Text("last pass: none yet"))
    else:
        out.print(Text(f"last pass: {when(last.finished_at)}, {_report_line(last)}"))


@retention_app.command("run")
def retention_run(
    *,
    policy: Policy = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the expired jobs; delete nothing.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Jobs deleted per transaction (1-10000).")] = 500,
    max_batches: Annotated[
        int | None,
        typer.Option(help="Stop after this many batches (default: until none is left).", min=1),
    ] = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Delete the finished jobs the policy says are expired, now, in small batches.

    Only one process runs a pass at a time: if another (a server, a worker) is running
    one, this says so and deletes nothing.
    """
    checked = policy_from(policy)

    async def work() -> RetentionReport:
        async with open_desk(db) as desk:
            return await desk.apply_retention(
                checked, batch_size=batch_size, max_batches=max_batches, dry_run=dry_run
            )

    report = run(work(), as_json=as_json)
    if as_json:
        print_json(_report_json(report))
    elif not report.ran:
        out.print(Text("another process is running a retention pass: nothing deleted"))
    else:
        out.print(Text(_report_line(report)))


async def _retain(desk: JobDesk, policy: RetentionPolicy, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            report = await desk.apply_retention(policy, pause=PAUSE_SECONDS)
        except JobdeskError as exc:
            _log.warning("the retention pass failed: %s", exc)
            continue
        if report.total:
            _log.info("retention: %s", _report_line(report))


@contextlib.asynccontextmanager
async def retaining(desk: JobDesk, policy: RetentionPolicy, interval: float) -> AsyncIterator[None]:
    """A retention pass every ``interval`` seconds while the block runs (0: none)."""
    if not interval:
        yield
        return
    task = asyncio.create_task(_retain(desk, policy, interval), name="jobdesk-retention")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
