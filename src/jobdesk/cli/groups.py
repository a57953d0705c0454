"""``jobdesk groups``: a user's groups of jobs, created, listed, shown, cancelled, retried,
watched."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from jobdesk import FanIn, Group, GroupPage, JobSpec
from jobdesk.changes import RESYNC, JobChange
from jobdesk.cli.app import (
    AsJson,
    Db,
    Debug,
    User,
    act,
    app,
    aware,
    cell,
    err,
    open_desk,
    out,
    print_json,
    run,
    when,
)
from jobdesk.cli.jobs import _jobs_table, _read_input
from jobdesk.errors import InvalidInput
from jobdesk.groups import GroupStatus

__all__ = [
    "groups_app",
    "groups_cancel",
    "groups_create",
    "groups_list",
    "groups_retry",
    "groups_show",
    "groups_watch",
]

groups_app = typer.Typer(help="A user's groups of jobs: create, list, show, cancel, retry, watch.")
app.add_typer(groups_app, name="groups", no_args_is_help=True)

GroupId = Annotated[str, typer.Argument(help="The group's id.", show_default=False)]

#: ``groups watch``: how the watched group ended
GROUP_EXIT_CODES = {
    GroupStatus.COMPLETED: 0,
    GroupStatus.FAILED: 8,
    GroupStatus.PARTIALLY_FAILED: 10,
    GroupStatus.CANCELLED: 9,
}


def _specs(document: Any) -> list[JobSpec]:
    """Job specs from JSON: a list of ``{"type", "input"?, "project_id"?, "priority"?,
    "run_at"?, "max_attempts"?}``."""
    if not isinstance(document, list):
        raise InvalidInput("--jobs", 'must be a JSON list of jobs ({"type": ..., "input": ...})')
    specs = []
    for index, item in enumerate(document):
        if not isinstance(item, dict) or "type" not in item:
            raise InvalidInput(f"jobs[{index}]", "must be an object with a type")
        unknown = set(item) - {"type", "input", "project_id", "priority", "run_at", "max_attempts"}
        if unknown:
            raise InvalidInput(f"jobs[{index}]", f"has unknown fields {sorted(unknown)}")
        run_at = item.get("run_at")
        specs.append(
            JobSpec(
                item["type"],
                item.get("input"),
                item.get("project_id"),
                priority=item.get("priority", 0),
                run_at=None if run_at is None else aware(f"jobs[{index}].run_at", run_at),
                max_attempts=item.get("max_attempts"),
            )
        )
    return specs


def _groups_table(groups: Sequence[Group]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True, min_width=max(len(s) for s in GroupStatus))
    table.add_column("progress", no_wrap=True, justify="right")
    table.add_column("jobs", no_wrap=True, justify="right")
    table.add_column("done/failed", no_wrap=True, justify="right")
    table.add_column("created")
    for group in groups:
        counts = {status.value: count for status, count in group.counts.items()}
        table.add_row(
            cell(group.id),
            cell(group.name),
            cell(group.status.value),
            cell(f"{group.progress:.0f}%"),
            cell(group.size),
            cell(f"{counts['completed']}/{counts['failed']}"),
            cell(when(group.created_at)),
        )
    return table


@groups_app.command("create")
def groups_create(
    *,
    user: User,
    jobs_text: Annotated[
        str,
        typer.Option(
            "--jobs",
            "-j",
            help='The jobs: a JSON list of {"type", "input", ...}, @file.json, or - for stdin.',
        ),
    ],
    project: Annotated[str | None, typer.Option(help="The group's project id.")] = None,
    name: Annotated[str | None, typer.Option(help="A label for people.")] = None,
    on_complete: Annotated[
        str | None, typer.Option(help="A job type to run once every job has finished.")
    ] = None,
    on_complete_input: Annotated[
        str, typer.Option(help="That job's input: JSON, @file.json or -.")
    ] = "null",
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Create a group of jobs for a user, all or none, within their limits. Prints its id."""

    async def work() -> Group:
        specs = _specs(_read_input(jobs_text))
        fan_in = None if on_complete is None else FanIn(on_complete, _read_input(on_complete_input))
        async with open_desk(db, create=True) as desk:
            return await desk.create_group(
                user, specs, project_id=project, name=name, on_complete=fan_in
            )

    group = run(work(), as_json=as_json)
    if as_json:
        print_json(group)
    else:
        out.print(group.id)
        err.print(Text(f"created group {group.id} of {group.size} jobs for {group.user_id}"))


@groups_app.command("list")
def groups_list(
    *,
    user: User,
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    limit: Annotated[int, typer.Option(help="Page size, 1 to 100.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="The next_cursor of the page before.")] = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """List a user's groups, newest first, one page at a time."""

    async def work() -> GroupPage:
        async with open_desk(db) as desk:
            return await desk.get_user_groups(user, project_id=project, limit=limit, cursor=cursor)

    page = run(work(), as_json=as_json)
    if as_json:
        print_json(page)
        return
    out.print(_groups_table(page.items))
    if page.next_cursor is not None:
        err.print(Text(f"more: --cursor {page.next_cursor}"))


@groups_app.command("show")
def groups_show(
    group_id: GroupId,
    user: User,
    *,
    limit: Annotated[int, typer.Option(help="Show at most this many of its jobs.")] = 100,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Show one of a user's groups and its jobs."""

    async def work() -> tuple[Group, list[Any]]:
        async with open_desk(db) as desk:
            group = await desk.get_group(group_id, user)
            return group, await desk.get_group_jobs(group.id, user, limit=limit)

    group, jobs = run(work(), as_json=as_json)
    if as_json:
        print_json({"group": group, "jobs": jobs})
        return
    out.print(_groups_table([group]))
    out.print(_jobs_table(jobs, out.width))
    if len(jobs) < group.size:
        err.print(Text(f"{group.size - len(jobs)} more jobs: --limit"))


@groups_app.command("cancel")
def groups_cancel(
    group_id: GroupId, user: User, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Cancel every pending and processing job of a group; finished ones keep their end."""
    act(
        lambda desk: desk.cancel_group(group_id, user),
        db,
        as_json=as_json,
        said=lambda group: f"group {group.id} is {group.status}",
    )


@groups_app.command("retry")
def groups_retry(
    group_id: GroupId, user: User, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Put a group's failed jobs back in the queue, all within the user's limits or none."""
    act(
        lambda desk: desk.retry_group(group_id, user),
        db,
        as_json=as_json,
        said=lambda group: f"group {group.id} is {group.status}",
    )


@groups_app.command("watch")
def groups_watch(
    group_id: GroupId,
    user: User,
    *,
    interval: Annotated[
        float, typer.Option(help="Seconds between reads when no notification comes.", min=0.05)
    ] = 0.5,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Draw the group's progress bar until it finishes; the exit code says how it ended
    (0 completed, 8 failed, 9 cancelled, 10 partially failed)."""

    async def work() -> Group:
        async with open_desk(db) as desk, desk.subscribe() as changes:
            group = await desk.get_group(group_id, user)
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                console=out,
                disable=as_json,
            )
            with bar:
                task = bar.add_task(f"group {group.id}", total=100)
                seen: tuple[object, ...] = ()
                while True:
                    state = (group.status, group.progress)
                    if as_json and state != seen:
                        print_json(group)
                    seen = state
                    bar.update(
                        task,
                        completed=group.progress,
                        description=f"group {group.id}: {group.status}",
                    )
                    if group.status.is_finished:
                        return group
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + interval
                    while (left := deadline - loop.time()) > 0:
                        change = await changes.next_change(within=left)
                        if change is None or change is RESYNC or isinstance(change, JobChange):
                            break
                    group = await desk.get_group(group_id, user)

    group = run(work(), as_json=as_json)
    if not as_json:
        err.print(Text(f"group {group.id} {group.status}"))
    raise typer.Exit(GROUP_EXIT_CODES[group.status])
