"""``jobdesk schedules ...``: jobs made on a cron schedule (create, list, show, pause,
resume, delete, and ``run`` to fire due ones by hand)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from jobdesk.cli.app import (
    AsJson,
    Db,
    Debug,
    User,
    app,
    cell,
    open_desk,
    out,
    print_json,
    run,
    when,
)
from jobdesk.cli.jobs import _read_input as read_input
from jobdesk.schedules import Schedule

__all__ = [
    "schedules_app",
    "schedules_create",
    "schedules_delete",
    "schedules_list",
    "schedules_pause",
    "schedules_resume",
    "schedules_run",
    "schedules_show",
]

schedules_app = typer.Typer(
    help="Schedules: a job for a user at every tick of a cron expression, once per tick."
)
app.add_typer(schedules_app, name="schedules", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The schedule's name.", show_default=False)]


def _table(found: list[Schedule]) -> Table:
    table = Table()
    for column in ("name", "cron", "zone", "type", "user", "next run (UTC)", "state", "last"):
        table.add_column(column)
    for each in found:
        state = "paused" if each.paused else f"missed={each.missed.value}"
        last = each.last_error or (
            f"{when(each.last_tick_at)} -> {each.last_job_id}" if each.last_job_id else ""
        )
        table.add_row(
            cell(each.name),
            cell(each.cron),
            cell(each.timezone),
            cell(each.type),
            cell(each.user_id),
            cell("" if each.paused else when(each.next_run_at)),
            cell(state),
            cell(last),
        )
    return table


def _show(found: Schedule | list[Schedule], *, as_json: bool) -> None:
    if as_json:
        print_json(found)
    else:
        out.print(_table(found if isinstance(found, list) else [found]))


@schedules_app.command("create")
def schedules_create(
    name: Name,
    cron: Annotated[str, typer.Argument(help="Five fields (`*/15 * * * *`) or @hourly, @daily...")],
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="The type of every job.")],
    *,
    user: User,
    input_text: Annotated[
        str,
        typer.Option("--input", "-i", help="Every job's input: JSON, @file.json, or -."),
    ] = "{}",
    project: Annotated[str | None, typer.Option(help="A project id for the jobs.")] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", "--tz", help="The IANA zone the cron is read in.")
    ] = "UTC",
    missed: Annotated[
        str,
        typer.Option(help="Ticks missed while nothing ran: once (one job for them all) or skip."),
    ] = "once",
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Make a job of TYPE for a user at every tick of CRON. Every process that runs
    `jobdesk serve` or `jobdesk worker --db` fires it; each tick makes one job."""

    async def work() -> Schedule:
        document = read_input(input_text)
        async with open_desk(db, create=True) as desk:
            return await desk.schedule(
                name,
                cron,
                job_type,
                document,
                user_id=user,
                project_id=project,
                timezone=timezone,
                missed=missed,
            )

    _show(run(work(), as_json=as_json), as_json=as_json)


@schedules_app.command("list")
def schedules_list(db: Db = None, as_json: AsJson = False, debug: Debug = False) -> None:
    """Every schedule, by name, with its next run time."""

    async def work() -> list[Schedule]:
        async with open_desk(db) as desk:
            return await desk.list_schedules()

    found = run(work(), as_json=as_json)
    if not found and not as_json:
        out.print("no schedules")
        return
    _show(found, as_json=as_json)


@schedules_app.command("show")
def schedules_show(
    name: Name, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """One schedule."""

    async def work() -> Schedule:
        async with open_desk(db) as desk:
            return await desk.get_schedule(name)

    _show(run(work(), as_json=as_json), as_json=as_json)


@schedules_app.command("pause")
def schedules_pause(
    name: Name, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Make no jobs until resumed."""

    async def work() -> Schedule:
        async with open_desk(db) as desk:
            return await desk.pause_schedule(name)

    _show(run(work(), as_json=as_json), as_json=as_json)


@schedules_app.command("resume")
def schedules_resume(
    name: Name, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Make jobs again, from the next tick (none for the paused time)."""

    async def work() -> Schedule:
        async with open_desk(db) as desk:
            return await desk.resume_schedule(name)

    _show(run(work(), as_json=as_json), as_json=as_json)


@schedules_app.command("delete")
def schedules_delete(
    name: Name, db: Db = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Stop and forget a schedule; the jobs it made stay."""

    async def work() -> None:
        async with open_desk(db) as desk:
            await desk.delete_schedule(name)

    run(work(), as_json=as_json)
    if as_json:
        print_json({"name": name, "deleted": True})
    else:
        out.print(f"deleted schedule {name}")


@schedules_app.command("run")
def schedules_run(db: Db = None, as_json: AsJson = False, debug: Debug = False) -> None:
    """Fire the due schedules now, once (serve and workers do it every second; this is
    for deployments that run neither, from cron or a timer). Prints the jobs made."""

    async def work() -> int:
        async with open_desk(db) as desk:
            return await desk.run_due_schedules()

    made = run(work(), as_json=as_json)
    if as_json:
        print_json({"jobs_made": made})
    else:
        out.print(f"{made} job(s) made")
