"""``jobdesk jobs``: a user's jobs, created, listed, shown, cancelled, retried, watched."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from jobdesk import Job, JobEvent, JobPage, wire
from jobdesk.changes import RESYNC, JobChange, Subscription
from jobdesk.cli.app import (
    WATCH_EXIT_CODES,
    AsJson,
    Db,
    Debug,
    JobId,
    User,
    act,
    aware,
    cell,
    err,
    jobs_app,
    names,
    open_desk,
    out,
    print_json,
    run,
    when,
)
from jobdesk.errors import InvalidInput
from jobdesk.models import JobStatus

__all__ = ["jobs_cancel", "jobs_create", "jobs_list", "jobs_retry", "jobs_show", "jobs_watch"]


def _read_input(text: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput("--input", f"cannot read {text[1:]!r}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput("--input", f"must be JSON ({exc})") from None


#: ``jobs list``'s columns, most wanted first: (name, width; None: it takes a share of
#: what is left, at least ``_FLEXIBLE_MIN``); a column goes when the terminal is too narrow
_COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("id", 26),
    ("status", max(len(status) for status in JobStatus)),
    ("progress", len("progress")),
    ("attempts", len("attempts")),
    ("type", None),
    ("created", len("12-31 23:59")),
    ("message", None),
)
_FLEXIBLE_MIN = 12
_GAP = 3  # characters between two columns: padding, the (blank) rule, padding


def _fitting_columns(width: int) -> list[tuple[str, int | None]]:
    """The most wanted columns that fit ``width`` (id, status and progress always)."""
    chosen: list[tuple[str, int | None]] = []
    used = 0
    for name, size in _COLUMNS:
        need = (size or _FLEXIBLE_MIN) + (_GAP if chosen else 0)
        if len(chosen) >= 3 and used + need > width:
            continue
        chosen.append((name, size))
        used += need
    return chosen


def _jobs_table(jobs: Sequence[Job], width: int) -> Table:
    """A table of ``jobs`` that fits ``width`` columns: the columns that fit, one job a
    line, long types and messages cut with an ellipsis (``--json`` has them whole)."""
    columns = _fitting_columns(width)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=True)
    for name, size in columns:
        right = name in ("progress", "attempts")
        table.add_column(
            name,
            width=size,
            min_width=size or _FLEXIBLE_MIN,
            ratio=None if size else 1,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if right else "left",
        )
    for job in jobs:
        message = job.progress_message
        if job.error is not None and job.status is not JobStatus.COMPLETED:
            message = f"error: {job.error.get('message')}"
        values = {
            "id": job.id,
            "type": job.type,
            "status": job.status.value,
            "progress": f"{job.progress:.0f}%",
            "attempts": wire.attempts_label(job),
            # The year goes (a listing shows recent jobs); `jobs show` has the whole time.
            "created": job.created_at.astimezone(UTC).strftime("%m-%d %H:%M"),
            "message": message,
        }
        table.add_row(
            *(Text(values[name] or "", no_wrap=True, overflow="ellipsis") for name, _ in columns)
        )
    return table


def _show_job(job: Job, history: Sequence[JobEvent]) -> None:
    fields = ["id", "user_id", "project_id", "type", "status", "progress", "progress_message"]
    fields += ["attempts", "attempt", "max_attempts", "attempts_left", "worker_id", "created_at"]
    fields += ["run_at", "started_at", "finished_at", "lease_expires_at", "input", "result"]
    fields += ["error"]
    if job.waiting is not None:
        fields.insert(fields.index("status") + 1, "waiting")
    for name in fields:
        if name == "attempts":
            value: object = wire.attempts_label(job)
        elif name == "waiting" and job.waiting is not None:
            value = wire.waiting_label(job.waiting)
        else:
            value = getattr(job, name)
        if isinstance(value, datetime):
            value = wire.timestamp(value)
        elif isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, Enum):
            value = value.value
        if value is not None:
            out.print(Text(f"{name:>17}: {value}"))
    table = Table(title="history")
    for column in ("at", "status", "attempt", "worker", "error"):
        table.add_column(column)
    for event in history:
        error = None if event.error is None else event.error.get("message")
        table.add_row(
            cell(when(event.at)),
            cell(event.status.value),
            cell(event.attempt),
            cell(event.worker_id),
            cell(error),
        )
    out.print(table)


@jobs_app.command("create")
def jobs_create(
    job_type: Annotated[str, typer.Argument(help="The job type, such as character_extraction.")],
    *,
    user: User,
    input_text: Annotated[
        str,
        typer.Option("--input", "-i", help="The input: JSON, @file.json, or - for stdin."),
    ] = "{}",
    project: Annotated[str | None, typer.Option(help="A project id to group jobs.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first (-1000 to 1000).")] = 0,
    run_at: Annotated[
        str | None, typer.Option(help="Not before this time (ISO 8601 with a zone).")
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Starts before giving up.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Repeating a create with this key returns the first job.")
    ] = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Create a job for a user, within their limits. Prints its id (JSON: the job)."""

    async def work() -> Job:
        document = _read_input(input_text)
        when = aware("--run-at", run_at)
        async with open_desk(db, create=True) as desk:
            return await desk.create_job(
                user,
                job_type,
                document,
                project,
                priority=priority,
                run_at=when,
                max_attempts=max_attempts,
                idempotency_key=idempotency_key,
            )

    job = run(work(), as_json=as_json)
    if as_json:
        print_json(job)
    else:
        out.print(job.id)
        err.print(Text(f"created {job.type} job {job.id} for {job.user_id} ({job.status})"))


@jobs_app.command("list")
def jobs_list(
    *,
    user: User,
    status: Annotated[
        list[str] | None, typer.Option(help="Only these statuses (repeat, or a,b).")
    ] = None,
    job_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only these types (repeat, or a,b).")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    limit: Annotated[int, typer.Option(help="Page size, 1 to 100.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="The next_cursor of the page before.")] = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """List a user's jobs, newest first, one page at a time."""

    async def work() -> JobPage:
        async with open_desk(db) as desk:
            return await desk.get_user_jobs(
                user,
                status=names(status),
                type=names(job_type),
                project_id=project,
                limit=limit,
                cursor=cursor,
            )

    page = run(work(), as_json=as_json)
    if as_json:
        print_json(page)
        return
    out.print(_jobs_table(page.items, out.width))
    if page.next_cursor is not None:
        err.print(Text(f"more: --cursor {page.next_cursor}"))


@jobs_app.command("show")
def jobs_show(
    job_id: JobId, user: User, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Show one of a user's jobs and its history (attempts, errors)."""

    async def work() -> tuple[Job, list[JobEvent]]:
        async with open_desk(db) as desk:
            job = await desk.get_job_status(job_id, user)
            return job, await desk.get_job_history(job.id, user)

    job, history = run(work(), as_json=as_json)
    if as_json:
        print_json({"job": job, "history": history})
    else:
        _show_job(job, history)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: JobId, user: User, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Cancel a pending or processing job; its worker is told on its next report."""
    act(
        lambda desk: desk.cancel_job(job_id, user),
        db,
        as_json=as_json,
        said=lambda job: f"job {job.id} is {job.status}",
    )


@jobs_app.command("retry")
def jobs_retry(
    job_id: JobId, user: User, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Put a failed or cancelled job back in the queue with a fresh budget of attempts."""
    act(
        lambda desk: desk.retry_job(job_id, user),
        db,
        as_json=as_json,
        said=lambda job: f"job {job.id} is {job.status} again",
    )


async def _next_change_of(changes: Subscription, job_id: str, within: float) -> None:
    """Return when ``job_id`` may have changed, or after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (left := deadline - loop.time()) > 0:
        change = await changes.next_change(within=left)
        if change is None or change is RESYNC:
            return
        if isinstance(change, JobChange) and change.job_id == job_id:
            return


def _describe(job: Job) -> str:
    text = f"job {job.id} attempt {wire.attempts_label(job)}: {job.status}"
    if job.progress_message:
        text += f", {job.progress_message}"
    return text


@jobs_app.command("watch")
def jobs_watch(
    job_id: JobId,
    user: User,
    *,
    interval: Annotated[
        float, typer.Option(help="Seconds between reads when no notification comes.", min=0.05)
    ] = 0.5,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Draw a live progress bar until the job ends; the exit code says how it ended.

    Change notifications wake it as soon as the job changes; it also reads the
    job every `--interval` seconds. `--json` prints the job as one line each
    time it changes.
    """

    async def work() -> Job:
        async with open_desk(db) as desk, desk.subscribe() as changes:
            job = await desk.get_job_status(job_id, user)
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                console=out,
                disable=as_json,
            )
            with bar:
                task = bar.add_task(_describe(job), total=100)
                seen: tuple[object, ...] = ()
                while True:
                    state = (job.status, job.attempt, job.progress, job.progress_message)
                    if as_json and state != seen:
                        print_json(job)
                    seen = state
                    bar.update(task, completed=job.progress, description=_describe(job))
                    if job.status.is_finished:
                        return job
                    await _next_change_of(changes, job.id, interval)
                    job = await desk.get_job_status(job_id, user)

    job = run(work(), as_json=as_json)
    if not as_json:
        detail = "" if job.error is None else f": {job.error.get('message')}"
        err.print(Text(f"job {job.id} {job.status}{detail}"))
    raise typer.Exit(WATCH_EXIT_CODES[job.status])
