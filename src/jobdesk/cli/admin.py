"""``jobdesk migrate``, ``jobdesk tokens ...`` and ``jobdesk limits ...``: set-up and access."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from jobdesk import wire
from jobdesk.cli.app import (
    AsJson,
    Db,
    Debug,
    app,
    aware,
    cell,
    database_url,
    err,
    fail,
    limits_app,
    names,
    open_desk,
    out,
    print_json,
    run,
    safe_url,
    tokens_app,
    when,
)
from jobdesk.models import JobStatus, QueueStats, UserLimits, UserUsage, WorkerTokenInfo
from jobdesk.scheduling import TypeLimits

__all__ = [
    "limits_set",
    "limits_show",
    "limits_type",
    "limits_types",
    "limits_user",
    "migrate",
    "stats",
    "tokens_create_admin",
    "tokens_create_user",
    "tokens_create_worker",
    "tokens_list",
    "tokens_revoke",
    "tokens_revoke_admin",
]


@app.command()
def migrate(db: Db = None, as_json: AsJson = False, debug: Debug = False) -> None:
    """Apply the database's pending migrations (every command does it when it opens)."""

    async def work() -> None:
        async with open_desk(db, create=True):
            pass

    run(work(), as_json=as_json)
    if as_json:
        print_json({"db": safe_url(database_url(db)), "migrated": True})
    else:
        out.print(Text(f"{safe_url(database_url(db))}: the schema is up to date"))


# -- tokens ---------------------------------------------------------------------------------


ExpiresAt = Annotated[
    str | None, typer.Option(help="Refused after this time (ISO 8601 with a zone).")
]


def _show_once(token: str, record: Mapping[str, object], what: str, *, as_json: bool) -> None:
    """Print a new token (JSON for scripts): its plaintext is never shown again."""
    if as_json:
        print_json(record)
    else:
        out.print(token)
        err.print(Text(f"{what}: shown once, keep it secret"))


def _show_revoked(count: int, kind: str, name: str, *, as_json: bool) -> None:
    """Say how many tokens were revoked; exit 3 (NotFound) when none was live."""
    if not count:
        fail(f"no live {kind} token named {name!r}", 3, type="NotFound")
    if as_json:
        print_json({"name": name, "revoked": count})
    else:
        out.print(Text(f"revoked {count} {kind} token(s) named {name!r}"))


@tokens_app.command("create-worker")
def tokens_create_worker(
    name: Annotated[str, typer.Argument(help="A name for the worker (or group of workers).")],
    *,
    types: Annotated[
        str | None, typer.Option(help="Only these job types, comma-separated.")
    ] = None,
    expires_at: ExpiresAt = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Create a worker token. It is printed once: only its hash is stored."""

    async def work() -> str:
        until = aware("--expires-at", expires_at)
        async with open_desk(db, create=True) as desk:
            return await desk.create_worker_token(
                name, types=names([types] if types else None), expires_at=until
            )

    token = run(work(), as_json=as_json)
    record = {"name": name, "token": token, "types": names([types] if types else None)}
    _show_once(token, record, f"worker token {name!r}", as_json=as_json)


@tokens_app.command("create-user")
def tokens_create_user(
    user_id: Annotated[str, typer.Argument(help="The user the token stands for.")],
    expires_at: ExpiresAt = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Create a bearer token for a user of the HTTP API. Printed once."""

    async def work() -> str:
        until = aware("--expires-at", expires_at)
        async with open_desk(db, create=True) as desk:
            return await desk.create_user_token(user_id, expires_at=until)

    token = run(work(), as_json=as_json)
    _show_once(
        token, {"user_id": user_id, "token": token}, f"user token for {user_id!r}", as_json=as_json
    )


@tokens_app.command("list")
def tokens_list(db: Db = None, as_json: AsJson = False, debug: Debug = False) -> None:
    """List the worker tokens, newest first, without their secrets."""

    async def work() -> list[WorkerTokenInfo]:
        async with open_desk(db) as desk:
            return await desk.list_worker_tokens()

    infos = run(work(), as_json=as_json)
    if as_json:
        print_json(infos)
        return
    table = Table()
    for column in ("name", "types", "created", "expires", "revoked"):
        table.add_column(column)
    for info in infos:
        types = "all" if info.types is None else ",".join(sorted(info.types))
        table.add_row(
            cell(info.name),
            cell(types),
            cell(when(info.created_at)),
            cell(when(info.expires_at)),
            cell(when(info.revoked_at)),
        )
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The worker token's name.")],
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Revoke every live worker token with this name.

    A running worker using it stops within about a minute (its next token
    check) with exit code 5; a remote worker (--server) at its next request.
    New workers with it are refused at once.
    """

    async def work() -> int:
        async with open_desk(db) as desk:
            return await desk.revoke_worker_token(name)

    _show_revoked(run(work(), as_json=as_json), "worker", name, as_json=as_json)


@tokens_app.command("create-admin")
def tokens_create_admin(
    name: Annotated[str, typer.Argument(help="A name for the operator (or team).")],
    expires_at: ExpiresAt = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Create an admin token for the operator's dashboard (/admin). Printed once."""

    async def work() -> str:
        until = aware("--expires-at", expires_at)
        async with open_desk(db, create=True) as desk:
            return await desk.create_admin_token(name, expires_at=until)

    token = run(work(), as_json=as_json)
    _show_once(token, {"name": name, "token": token}, f"admin token {name!r}", as_json=as_json)


@tokens_app.command("revoke-admin")
def tokens_revoke_admin(
    name: Annotated[str, typer.Argument(help="The admin token's name.")],
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Revoke every live admin token with this name; its dashboard sessions end."""

    async def work() -> int:
        async with open_desk(db) as desk:
            return await desk.revoke_admin_token(name)

    _show_revoked(run(work(), as_json=as_json), "admin", name, as_json=as_json)


# -- limits ---------------------------------------------------------------------------------


def _print_usage(usage: UserUsage, as_json: bool) -> None:
    if as_json:
        print_json(usage)
        return
    out.print(
        Text(
            f"{usage.user_id}: {usage.running}/{usage.max_running} running, "
            f"{usage.waiting}/{usage.max_waiting} waiting, "
            f"{usage.created_today}/{usage.max_daily} created today "
            f"(resets {wire.timestamp(usage.resets_at)}), weight {usage.weight:g}"
        )
    )


MaxRunningOption = Annotated[
    int | None, typer.Option(help="Jobs processing at once; further jobs wait.", min=0)
]
MaxWaitingOption = Annotated[
    int | None, typer.Option(help="Pending jobs the user may hold; more are refused.", min=0)
]
MaxDailyOption = Annotated[int | None, typer.Option(help="Jobs created per UTC day.", min=0)]
WeightOption = Annotated[
    float | None,
    typer.Option(help="Share of the workers when several users wait (1: the default)."),
]


async def _user_limits(db: str | None, user_id: str, changes: UserLimits | None) -> UserUsage:
    async with open_desk(db, create=changes is not None) as desk:
        if changes is not None:
            await desk.set_user_limits(
                user_id,
                max_running=changes.max_running,
                max_waiting=changes.max_waiting,
                max_daily=changes.max_daily,
                weight=changes.weight,
            )
        return await desk.get_user_usage(user_id)


@limits_app.command("user")
def limits_user(
    user_id: Annotated[str, typer.Argument(help="The user.")],
    *,
    max_running: MaxRunningOption = None,
    max_waiting: MaxWaitingOption = None,
    max_daily: MaxDailyOption = None,
    weight: WeightOption = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Show a user's limits and usage; with any option, set them first.

    Setting sets all four at once: a limit left out returns to the default.
    """
    given = UserLimits(max_running, max_waiting, max_daily, weight)
    changes = None if given == UserLimits() else given
    _print_usage(run(_user_limits(db, user_id, changes), as_json=as_json), as_json)


@limits_app.command("set", hidden=True, deprecated=True)
def limits_set(
    user_id: Annotated[str, typer.Argument(help="The user.")],
    *,
    max_running: MaxRunningOption = None,
    max_waiting: MaxWaitingOption = None,
    max_active: Annotated[
        int | None, typer.Option(help="Deprecated: sets --max-running.", min=0)
    ] = None,
    max_daily: MaxDailyOption = None,
    weight: WeightOption = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Deprecated: `jobdesk limits user USER_ID --max-running N ...` (Typer warns)."""
    if max_active is not None:
        err.print("warning: --max-active is deprecated: use --max-running and --max-waiting")
        max_running = max_active if max_running is None else max_running
    changes = UserLimits(max_running, max_waiting, max_daily, weight)
    _print_usage(run(_user_limits(db, user_id, changes), as_json=as_json), as_json)


@limits_app.command("show", hidden=True, deprecated=True)
def limits_show(
    user_id: Annotated[str, typer.Argument(help="The user.")],
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Deprecated: `jobdesk limits user USER_ID` (Typer warns)."""
    _print_usage(run(_user_limits(db, user_id, None), as_json=as_json), as_json)


def _print_type_limits(limits: list[TypeLimits], as_json: bool) -> None:
    if as_json:
        print_json(limits)
        return
    if not limits:
        out.print(Text("no job type has a pool or a rate"))
    for each in limits:
        pool = "no pool" if each.max_running is None else f"at most {each.max_running} running"
        rate = "no rate" if each.rate is None else f"rate {each.rate}"
        out.print(Text(f"{each.type}: {pool}, {rate}"))


@limits_app.command("type")
def limits_type(
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="The job type.")],
    *,
    max_running: Annotated[
        int | None,
        typer.Option(help="Jobs of this type processing at once, across every worker.", min=0),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(help="Starts per period across every process: 60/min, 5/s, 1000/hour."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the type's limits.")] = False,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Show a job type's pool and rate; with --max-running, --rate or --clear, set them.

    Setting sets both: one left out is removed. Jobs over either wait, never refused.
    """
    if clear and (max_running is not None or rate is not None):
        fail("give --clear, or --max-running/--rate, not both", 2)
    setting = clear or max_running is not None or rate is not None

    async def work() -> TypeLimits:
        async with open_desk(db, create=setting) as desk:
            if setting:
                return await desk.set_type_limits(job_type, max_running=max_running, rate=rate)
            found = [each for each in await desk.get_type_limits() if each.type == job_type]
            return found[0] if found else TypeLimits(job_type)

    _print_type_limits([run(work(), as_json=as_json)], as_json)


@limits_app.command("types")
def limits_types(db: Db = None, as_json: AsJson = False, debug: Debug = False) -> None:
    """List the job types that have a pool or a rate."""

    async def work() -> list[TypeLimits]:
        async with open_desk(db) as desk:
            return await desk.get_type_limits()

    _print_type_limits(run(work(), as_json=as_json), as_json)


# -- stats ----------------------------------------------------------------------------------


def _stats_tables(stats: QueueStats) -> tuple[Table, Table]:
    minutes = f"{stats.window_seconds / 60:g} min"
    queue = Table(title=f"jobs by type (finished: in the last {minutes})")
    queue.add_column("type")
    for status in JobStatus:
        queue.add_column(status.value, justify="right")
    by_type: dict[str, dict[JobStatus, int]] = {}
    for count in stats.counts:
        by_type.setdefault(count.type, {})[count.status] = count.count
    for job_type, counts in by_type.items():
        queue.add_row(cell(job_type), *(cell(counts.get(status, 0)) for status in JobStatus))
    workers = Table(title=f"workers seen in the last {minutes}")
    for column in ("name", "processing", "last seen"):
        workers.add_column(column)
    for seen in stats.workers:
        workers.add_row(cell(seen.name), cell(seen.processing), cell(when(seen.last_seen)))
    return queue, workers


@app.command()
def stats(
    window: Annotated[
        float, typer.Option(help='How far back "recent" looks, in seconds.', min=1)
    ] = 300.0,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Show queue depth by type and status, the workers seen, and recent throughput."""

    async def work() -> QueueStats:
        async with open_desk(db) as desk:
            return await desk.get_queue_stats(timedelta(seconds=window))

    snapshot = run(work(), as_json=as_json)
    completed = snapshot.finished(JobStatus.COMPLETED)
    failed = snapshot.finished(JobStatus.FAILED)
    per_minute = completed / (snapshot.window_seconds / 60)
    if as_json:
        print_json(
            {
                "at": snapshot.at,
                "window_seconds": snapshot.window_seconds,
                "counts": snapshot.counts,
                "workers": snapshot.workers,
                "throughput": {"completed": completed, "failed": failed, "per_minute": per_minute},
            }
        )
        return
    for table in _stats_tables(snapshot):
        out.print(table)
    minutes = f"{snapshot.window_seconds / 60:g} min"
    out.print(
        Text(
            f"throughput: {completed} completed, {failed} failed in the last {minutes} "
            f"({per_minute:.1f}/min)"
        )
    )
