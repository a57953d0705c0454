"""``jobdesk migrate``, ``jobdesk tokens ...`` and ``jobdesk limits ...``: set-up and access."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

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
from jobdesk.models import JobStatus, QueueStats, UserUsage, WorkerTokenInfo

__all__ = [
    "limits_set",
    "limits_show",
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
            f"{usage.user_id}: {usage.active}/{usage.max_active} active, "
            f"{usage.created_today}/{usage.max_daily} created today "
            f"(resets {usage.resets_at.isoformat()})"
        )
    )


@limits_app.command("set")
def limits_set(
    user_id: Annotated[str, typer.Argument(help="The user.")],
    *,
    max_active: Annotated[
        int | None, typer.Option(help="Pending + processing jobs at once.", min=0)
    ] = None,
    max_daily: Annotated[int | None, typer.Option(help="Jobs created per UTC day.", min=0)] = None,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Override a user's limits. Each call sets both: a limit left out returns to the default."""

    async def work() -> UserUsage:
        async with open_desk(db, create=True) as desk:
            await desk.set_user_limits(user_id, max_active=max_active, max_daily=max_daily)
            return await desk.get_user_usage(user_id)

    _print_usage(run(work(), as_json=as_json), as_json)


@limits_app.command("show")
def limits_show(
    user_id: Annotated[str, typer.Argument(help="The user.")],
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Show a user's limits and how much of them is in use."""

    async def work() -> UserUsage:
        async with open_desk(db) as desk:
            return await desk.get_user_usage(user_id)

    _print_usage(run(work(), as_json=as_json), as_json)


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
