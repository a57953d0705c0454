"""The ``jobdesk`` app and what every command shares: options, output, errors.

Every command opens the database named by ``--db`` (or ``JOBDESK_DB``) with
:func:`open_desk`, runs one or two operations, prints tables for people or JSON
for scripts (``--json``). Any error it raises, and any usage error, becomes one
line on standard error and an exit code (:data:`EXIT_CODES`), in one place:
:class:`Commands`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.text import Text

import jobdesk
from jobdesk import wire
from jobdesk.desk import DEFAULT_URL, JobDesk
from jobdesk.errors import (
    Forbidden,
    InvalidInput,
    InvalidTransition,
    JobdeskError,
    JobNotFound,
    LeaseLost,
    RateLimited,
    ScheduleNotFound,
    StoreUnavailable,
    Unauthorized,
)
from jobdesk.models import JobStatus

__all__ = ["EXIT_CODES", "WATCH_EXIT_CODES", "app", "open_desk"]

T = TypeVar("T")

#: the exit code of each error; anything unexpected exits with 1
EXIT_CODES: dict[type[JobdeskError], int] = {
    InvalidInput: 2,
    JobNotFound: 3,
    ScheduleNotFound: 3,
    RateLimited: 4,
    Unauthorized: 5,
    Forbidden: 5,
    InvalidTransition: 6,
    LeaseLost: 6,
    StoreUnavailable: 7,
}
#: ``jobs watch``: how the watched job ended
WATCH_EXIT_CODES = {JobStatus.COMPLETED: 0, JobStatus.FAILED: 8, JobStatus.CANCELLED: 9}

_HELP = """jobdesk: user-owned background jobs, from the command line.

Every command takes `--db` (or the environment variable `JOBDESK_DB`):
`sqlite:///path/to/jobdesk.db` or `postgresql://user@host:5432/database`.
Opening a database applies its pending migrations. Only `migrate`, `serve`,
`worker` and the commands that create something (`jobs create`, `tokens
create-*`, `limits set`) start a new SQLite file; the others refuse a missing
one. `--json` prints one JSON document (`jobs watch`: one per line) for
scripts, in the HTTP API's shapes (times in UTC with a Z). Errors are one line
on standard error; `--debug` (before or after the command) adds the traceback of
an unexpected one.
"""

_EXIT_CODES_HELP = """**Exit codes**

| code | meaning |
|---|---|
| 0 | success (`jobs watch`: the job completed) |
| 1 | unexpected error: run again with `--debug` and report it |
| 2 | bad usage, or an argument broke a rule (the message names it), a wrong `--db` included |
| 3 | not found: no such job for this user, no such token, no such schedule |
| 4 | refused by one of the user's limits (waiting jobs, jobs per day) |
| 5 | the worker token was refused (unknown, revoked, expired) |
| 6 | the job's status does not allow this (or the worker lost the job) |
| 7 | the database is unreachable or stayed busy: try again |
| 8 | `jobs watch`: the job failed |
| 9 | `jobs watch`: the job was cancelled |
| 130 | interrupted (Ctrl-C) |
"""

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class LogLevel(StrEnum):
    """How much ``jobdesk worker`` and ``jobdesk serve`` log."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class _Settings:
    """What this process's command line chose: the options before the command, ``--json``."""

    debug = False
    as_json = False
    db = DEFAULT_URL


#: the choices of this process's command line
settings = _Settings()


# -- plumbing -------------------------------------------------------------------------------


def print_json(value: object) -> None:
    """Print ``value`` (models included) as one line of JSON on stdout, as the wire
    writes it (:func:`jobdesk.wire.encode`: the HTTP API's shapes and times)."""
    text = json.dumps(wire.encode(value), ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def fail(message: str, code: int, **extra: object) -> NoReturn:
    """Print ``message`` as one line on stderr (JSON with ``--json``) and exit with ``code``."""
    if settings.as_json:
        payload = {"error": {"message": message, "exit_code": code, **extra}}
        sys.stderr.write(json.dumps(wire.encode(payload)) + "\n")
    else:
        err.print(Text(f"error: {message}"))
    raise SystemExit(code)


def _quiet_libraries() -> None:
    """Keep the libraries' chatter out of the output, unless ``--debug``."""
    if settings.debug:
        return
    # The pool logs every failed connection attempt; the error line says it once.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    # httpx logs every request at INFO: a remote worker's log would be nothing else.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run(work: Coroutine[Any, Any, T], *, as_json: bool = False) -> T:
    """Run one command's coroutine; ``as_json`` also shapes the error, should one come."""
    settings.as_json = as_json
    _quiet_libraries()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(work)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        _close(loop)


#: what a command leaves running when it returns gets this long to end after it is
#: cancelled; the process exits without it (a job handler that ignores cancellation)
LEFTOVER_SECONDS = 1.0


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """``asyncio.run``'s clean-up, except that it waits a bounded time for leftovers."""
    try:
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=LEFTOVER_SECONDS))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def exit_for(exc: Exception) -> NoReturn:
    """Report ``exc`` as one line and exit with its code (see :data:`EXIT_CODES`)."""
    if not isinstance(exc, JobdeskError):
        hint = "run again with --debug for the traceback"
        fail(f"unexpected {type(exc).__name__}: {exc} ({hint})", 1)
    extra: dict[str, object] = {"type": type(exc).__name__}
    if isinstance(exc, InvalidInput):
        extra.update(field=exc.field, rule=exc.rule)
    if isinstance(exc, RateLimited):
        extra.update(limit=exc.limit, retry_after=exc.retry_after)
    code = next(code for kind, code in EXIT_CODES.items() if isinstance(exc, kind))
    fail(str(exc), code, **extra)


def usage_error(exc: typer.TyperException) -> NoReturn:
    """Report a usage error (a missing option, a bad value...) as one line, with its code."""
    message = " ".join(exc.format_message().split())
    command_path = getattr(getattr(exc, "ctx", None), "command_path", None)
    if command_path:
        message += f" (see '{command_path} --help')"
    fail(message, exc.exit_code)


class Commands(typer.Typer):
    """Typer, with every error turned into one line and an exit code.

    Only an unexpected error under ``--debug`` keeps its traceback. Click runs
    outside its standalone mode so that usage errors come here, not to Typer's
    boxed rendering; the exit codes stay Click's (2 for bad usage).
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            outcome = super().__call__(*args, **kwargs)
        except typer.TyperException as exc:
            # A group run without a command has already printed its help (Typer, too,
            # tells this error by its name: its class is not public).
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise SystemExit(exc.exit_code) from None
            usage_error(exc)
        except typer.Abort:
            fail("aborted", 1)
        except JobdeskError as exc:
            exit_for(exc)
        except Exception as exc:
            if settings.debug:
                raise
            exit_for(exc)
        # Outside standalone mode, Click returns the code of an Exit (--help, jobs watch...)
        # rather than exiting with it; the commands themselves return None.
        raise SystemExit(outcome if isinstance(outcome, int) else 0)


app = Commands(
    name="jobdesk",
    help=_HELP,
    epilog=_EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
jobs_app = typer.Typer(help="A user's jobs: create, list, show, cancel, retry, watch.")
tokens_app = typer.Typer(help="Worker tokens (and user tokens for the HTTP API).")
limits_app = typer.Typer(
    help="Limits: a user's running, waiting and daily jobs and weight; a job type's pool and rate."
)
for _group, _name in ((jobs_app, "jobs"), (tokens_app, "tokens"), (limits_app, "limits")):
    app.add_typer(_group, name=_name, no_args_is_help=True)

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL: sqlite:///path.db or postgresql://... "
        "[default: the --db given before the command, else JOBDESK_DB, else sqlite:///jobdesk.db]",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _debug_on(value: bool) -> None:
    if value:
        settings.debug = True


Debug = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Show the traceback of an unexpected error (also accepted before the command).",
        callback=_debug_on,
        expose_value=False,
    ),
]
User = Annotated[
    str, typer.Option("--user", "-u", help="The user the jobs belong to (their user id).")
]
JobId = Annotated[str, typer.Argument(help="The job's id.", show_default=False)]


def safe_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def aware(option: str, value: str | None) -> datetime | None:
    """The time an option gave, which must be ISO 8601 with a time zone; None if absent."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(option, "must be an ISO 8601 time, such as 2026-03-01T12:00Z") from None
    if moment.tzinfo is None:
        raise InvalidInput(option, "must include a time zone, such as 2026-03-01T12:00Z")
    return moment


def names(values: Sequence[str] | None) -> list[str] | None:
    """Repeated options, each possibly comma-separated: ``--type a,b --type c``."""
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def cell(value: object) -> Text:
    """A table cell for ``value``."""
    # Text, not a string: user data must never be read as Rich markup.
    return Text("" if value is None else str(value))


def when(moment: datetime | None) -> str:
    """A time, short, for tables."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _version(value: bool) -> None:
    if value:
        out.print(f"jobdesk {jobdesk.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    db: Annotated[
        str,
        typer.Option(
            "--db", envvar="JOBDESK_DB", help="Database URL: sqlite:///path.db or postgresql://..."
        ),
    ] = DEFAULT_URL,
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="JOBDESK_DEBUG", help="Show the traceback of errors."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """jobdesk: user-owned background jobs, from the command line."""
    settings.debug = debug
    settings.db = db


def database_url(url: str | None) -> str:
    """The database URL: the command's ``--db``, else the one before the command."""
    return settings.db if url is None else url


def _missing_sqlite_file(url: str) -> str | None:
    """The path of the SQLite file ``url`` names, if that file does not exist."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].partition("?")[0]
    if not path or path == ":memory:" or os.path.exists(path):
        return None
    return os.path.abspath(path)


def act(
    action: Callable[[JobDesk], Awaitable[T]],
    db: str | None,
    *,
    as_json: bool,
    said: Callable[[T], str],
) -> None:
    """One operation on the desk of ``--db``, and what it answered: as JSON with
    ``--json``, else the line ``said(answer)``. For the commands that change one thing
    (cancel, retry) and print a word about it."""

    async def work() -> T:
        async with open_desk(db) as desk:
            return await action(desk)

    answer = run(work(), as_json=as_json)
    if as_json:
        print_json(answer)
    else:
        out.print(Text(said(answer)))


@contextlib.asynccontextmanager
async def open_desk(
    url: str | None, *, create: bool = False, **options: Any
) -> AsyncIterator[JobDesk]:
    """The desk on ``--db`` (``url``, else the one before the command), for one command.

    Only a command that may start a new database (``create``) opens an SQLite
    file that does not exist yet: for the others a missing file means a wrong
    ``--db`` (or none), not an empty queue. A URL or a file that is no database
    is reported as a bad ``--db`` (exit code 2), not as an outage to retry.
    ``options`` go to :meth:`JobDesk.open`.
    """
    url = database_url(url)
    if not create and (missing := _missing_sqlite_file(url)) is not None:
        raise InvalidInput(
            "--db",
            f"no database at {missing}: give --db or set JOBDESK_DB "
            "(`jobdesk migrate` creates a new one)",
        )
    try:
        opening = JobDesk.open(url, **options)
    except InvalidInput as exc:
        if exc.field != "url":
            raise
        raise InvalidInput("--db", exc.rule) from None
    except ValueError as exc:  # what urllib makes of a malformed URL
        rule = f"must be a database URL such as sqlite:///jobdesk.db ({exc})"
        raise InvalidInput("--db", rule) from None
    try:
        desk = await opening
    except InvalidInput as exc:  # the store says the URL names no database of its kind
        raise InvalidInput("--db", f"{safe_url(url)} {exc.rule}") from exc
    try:
        yield desk
    finally:
        await desk.close()
