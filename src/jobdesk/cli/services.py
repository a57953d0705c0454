"""``jobdesk worker`` and ``jobdesk serve``: the long-running processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from jobdesk import Limits, tracing
from jobdesk.cli.app import (
    Db,
    Debug,
    LogLevel,
    app,
    database_url,
    err,
    names,
    open_desk,
    run,
    safe_url,
    settings,
)
from jobdesk.cli.retention import Policy, policy_from, retaining
from jobdesk.errors import InvalidInput
from jobdesk.heap import freeze_startup_heap

__all__ = ["serve", "worker"]

RetryBackoff = Annotated[
    float | None,
    typer.Option(
        help="The first retry delay of the jobs it fails or requeues (default: the desk's, 5).",
        min=0.001,
    ),
]
MaxRunning = Annotated[
    int | None,
    typer.Option(
        help="Jobs of one user processing at once, unless set per user; further jobs wait "
        "(default: 10).",
        min=1,
    ),
]
MaxWaiting = Annotated[
    int | None,
    typer.Option(
        help="Pending jobs one user may hold, unless set per user; creating more is refused "
        "(default: 1000).",
        min=1,
    ),
]
MaxActive = Annotated[
    int | None,
    typer.Option(help="Deprecated: use --max-running (it sets that).", min=1, hidden=True),
]


def serve(
    *,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.", min=1, max=65535)] = 8000,
    log_level: Annotated[LogLevel, typer.Option(help="How much to log.")] = LogLevel.INFO,
    lease_seconds: Annotated[
        float | None,
        typer.Option(
            help="The lease of the jobs remote workers claim (default: the desk's, 300).",
            min=0.1,
        ),
    ] = None,
    retry_backoff: RetryBackoff = None,
    max_running: MaxRunning = None,
    max_waiting: MaxWaiting = None,
    max_active: MaxActive = None,
    max_daily: Annotated[
        int | None,
        typer.Option(
            help="Jobs a user may create per UTC day, unless set per user (default: 1000).",
            min=1,
        ),
    ] = None,
    db: Db = None,
    debug: Debug = False,
) -> None:
    """Serve the HTTP API (and the reaper, and the schedules) until SIGTERM or SIGINT.

    Settings come from `JOBDESK_*` environment variables (see docs/http.md). The
    limits apply to what goes through this server: users' creates and retries
    (`--max-waiting`, `--max-daily`), remote workers' claims (`--max-running`) and
    failures, and the leases its reaper finds expired. Give every process the same,
    or set them per user with `jobdesk limits user`. It fires due schedules every
    `JOBDESK_SCHEDULE_INTERVAL_SECONDS` (1; 0 turns it off), and deletes expired
    finished jobs every `JOBDESK_RETENTION_INTERVAL_SECONDS` (300; 0 turns it off) as
    `JOBDESK_RETENTION` says (docs/operations.md). `JOBDESK_TRACING=on`
    makes OpenTelemetry spans (docs/tracing.md).
    """
    from jobdesk.http import serve as serve_http  # noqa: PLC0415 - FastAPI loads only here

    tracing.enable_from_environment()
    limits = _limits(lease_seconds, retry_backoff, _running(max_running, max_active))
    if max_waiting is not None:
        limits = dataclasses.replace(limits, max_waiting_per_user=max_waiting)
    if max_daily is not None:
        limits = dataclasses.replace(limits, max_created_per_day=max_daily)

    async def check() -> None:  # a bad URL or an unreachable database: one line, not a trace
        async with open_desk(db, create=True, limits=limits):
            pass

    run(check())
    err.print(Text(serving_banner(host, port)))
    serve_http(database_url(db), host, port, log_level=log_level.value, limits=limits)


def serving_banner(host: str, port: int) -> str:
    """What ``jobdesk serve`` says before it starts: where, and how to sign in."""
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else shown}:{port}"  # noqa: S104 - a comparison
    return (
        f"jobdesk serves the HTTP API at {base}/api/v1 (schema: {base}/openapi.json)\n"
        f"dashboard: {base}/ : sign in with a user token (jobdesk tokens create-user USER_ID)\n"
        f"operators: {base}/admin : sign in with an admin token "
        "(jobdesk tokens create-admin NAME)"
    )


def _running(max_running: int | None, max_active: int | None) -> int | None:
    """``--max-running``, or the deprecated ``--max-active`` (with a warning) in its place."""
    if max_active is None:
        return max_running
    err.print(
        "warning: --max-active is deprecated: use --max-running (jobs past it now wait "
        "instead of being refused) and --max-waiting"
    )
    return max_active if max_running is None else max_running


def _limits(
    lease_seconds: float | None, retry_backoff: float | None, max_running: int | None = None
) -> Limits:
    """The default limits with ``--lease-seconds``, ``--retry-backoff`` and
    ``--max-running`` applied."""
    limits = Limits()
    if max_running is not None:
        limits = dataclasses.replace(limits, max_running_per_user=max_running)
    if lease_seconds is not None:
        limits = dataclasses.replace(limits, lease_seconds=lease_seconds)
    if retry_backoff is not None:
        limits = dataclasses.replace(limits, retry_backoff_seconds=retry_backoff)
    return limits


# The HTTP face is optional: without it (or its dependencies) there is no `serve`.
if importlib.util.find_spec("jobdesk.http") is not None:
    app.command()(serve)


def _load_registry(reference: str, app_dir: str) -> Any:
    """The object ``module:attribute`` names, importing ``module`` from ``app_dir`` first."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise InvalidInput("--app", "must look like package.module:registry")
    sys.path.insert(0, str(Path(app_dir).resolve()))
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        if settings.debug:
            raise
        raise InvalidInput("--app", f"cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise InvalidInput("--app", f"{module_name!r} has no {attribute!r}") from None
    return found


@app.command()
def worker(
    *,
    app_reference: Annotated[
        str,
        typer.Option(
            "--app", help="The handlers: module:attribute naming a jobdesk.worker.Registry."
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            envvar="JOBDESK_WORKER_TOKEN",
            help="The worker token (from `jobdesk tokens create-worker`).",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Jobs run at once.", min=1)] = 1,
    prefetch: Annotated[
        int | None,
        typer.Option(
            help="Claimed jobs that may wait for a slot (default: about 0.1 s of work, "
            "going by recent handler times).",
            min=0,
            show_default=False,
        ),
    ] = None,
    commits_in_flight: Annotated[
        int | None,
        typer.Option(
            help="Completion batches on their way at once (default: 1 with --db, 2 with "
            "--server); 2 drains faster, at more of the database's CPU per job.",
            min=1,
            max=4,
            show_default=False,
        ),
    ] = None,
    types: Annotated[
        str | None, typer.Option(help="Only these job types, comma-separated.")
    ] = None,
    grace: Annotated[
        float, typer.Option(help="On SIGTERM, seconds running jobs may finish.", min=0)
    ] = 30.0,
    cancel_grace: Annotated[
        float, typer.Option(help="Seconds a handler may go on after its user cancelled.", min=0)
    ] = 5.0,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between looks at the queue.", min=0.01)
    ] = 1.0,
    reap_interval: Annotated[
        float, typer.Option(help="Seconds between requeues of expired leases.", min=0.01)
    ] = 30.0,
    schedule_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between firings of due schedules (with --db only; 0 turns it off).",
            min=0,
        ),
    ] = 1.0,
    retention_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between retention passes (with --db only; 0 turns them off; one "
            "process at a time runs one).",
            min=0,
        ),
    ] = 300.0,
    retention: Policy = None,
    lease_seconds: Annotated[
        float | None,
        typer.Option(help="The lease of the jobs it claims (default: the desk's, 300).", min=0.1),
    ] = None,
    retry_backoff: RetryBackoff = None,
    max_running: MaxRunning = None,
    max_active: MaxActive = None,
    webhook_interval: Annotated[
        float,
        typer.Option(
            envvar="JOBDESK_WEBHOOK_INTERVAL_SECONDS",
            help="With --db: seconds between looks for webhook deliveries to send when "
            "there were none (0 turns this worker's sender off).",
            min=0,
        ),
    ] = 1.0,
    webhook_concurrency: Annotated[
        int,
        typer.Option(help="With --db: webhook deliveries sent at once.", min=1, max=256),
    ] = 16,
    until_empty: Annotated[
        bool,
        typer.Option("--until-empty", help="Stop once no due job is left and none is running."),
    ] = False,
    app_dir: Annotated[str, typer.Option(help="Where to import --app from.")] = ".",
    log_level: Annotated[LogLevel, typer.Option(help="How much to log.")] = LogLevel.INFO,
    server: Annotated[
        str | None,
        typer.Option(
            envvar="JOBDESK_SERVER",
            help="A jobdesk server's URL (http://host:8000): work through its HTTP API "
            "with only the worker token, instead of --db.",
            show_default=False,
        ),
    ] = None,
    db: Db = None,
    debug: Debug = False,
) -> None:
    """Run the handlers of --app on the queue until SIGTERM or SIGINT.

    It reaches the queue through the database (--db) or through a jobdesk
    server's HTTP API (--server, with only the worker token). On the first
    signal it claims nothing more and gives running jobs `--grace` seconds,
    then hands the unfinished ones back (their attempt is not spent); a second
    signal hands them back at once. With --db it also requeues expired leases,
    fires due schedules, runs retention passes and sends webhook deliveries,
    beside the jobs (a server does all three itself). `JOBDESK_TRACING=on`
    makes OpenTelemetry spans for each attempt (docs/tracing.md).
    """
    from jobdesk.worker import (  # noqa: PLC0415 - only this command
        DeskTransport,
        HttpTransport,
        Registry,
        Transport,
        WorkerRuntime,
    )

    logging.basicConfig(
        level=log_level.value.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tracing.enable_from_environment()
    running = _running(max_running, max_active)

    async def work() -> None:
        if not token:
            raise InvalidInput(
                "--token",
                "a worker token is required (or JOBDESK_WORKER_TOKEN): create one "
                "with `jobdesk tokens create-worker NAME`",
            )
        registry = _load_registry(app_reference, app_dir)
        if not isinstance(registry, Registry):
            raise InvalidInput("--app", f"{app_reference} is not a jobdesk.worker.Registry")
        if server is not None:
            if db is not None:
                raise InvalidInput("--server", "give --server or --db, not both")
            for option, value in (
                ("--lease-seconds", lease_seconds),
                ("--retry-backoff", retry_backoff),
                ("--max-running", running),
            ):
                if value is not None:
                    raise InvalidInput(
                        option,
                        "only with --db: over HTTP the server's apply "
                        "(jobdesk serve --lease-seconds, --retry-backoff, --max-running)",
                    )
            async with HttpTransport.connect(server, token) as remote:
                await serve_jobs(registry, remote, server)
            return
        limits = _limits(lease_seconds, retry_backoff, running)
        async with (
            open_desk(db, create=True, limits=limits) as desk,
            retaining(desk, policy_from(retention), retention_interval),
        ):
            direct = await DeskTransport.connect(desk, token)
            if not webhook_interval:
                await serve_jobs(registry, direct, safe_url(database_url(db)))
                return
            # The webhook sender is a task of its own beside the worker, off its claim
            # and complete path; it stops when the worker has stopped.
            sender = asyncio.create_task(
                desk.send_webhooks(interval=webhook_interval, concurrency=webhook_concurrency),
                name="jobdesk-webhooks",
            )
            try:
                await serve_jobs(registry, direct, safe_url(database_url(db)))
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def serve_jobs(registry: Registry, transport: Transport, where: str) -> None:
        runtime = WorkerRuntime(
            registry,
            transport,
            concurrency=concurrency,
            types=names([types] if types else None),
            poll_interval=poll_interval,
            grace=grace,
            cancel_grace=cancel_grace,
            reap_interval=reap_interval,
            prefetch=prefetch,
            commits_in_flight=commits_in_flight,
            schedule_interval=schedule_interval or None,
        )
        logging.getLogger("jobdesk.worker").info(
            "worker %s: %d slot(s), types %s, on %s",
            transport.worker_name,
            concurrency,
            ",".join(sorted(runtime.types)),
            where,
        )
        freeze_startup_heap()  # the handlers' modules, the connections: never walked again
        await runtime.run(until_empty=until_empty, handle_signals=True)

    run(work())
