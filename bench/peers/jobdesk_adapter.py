"""jobdesk in the peer harness: the one adapter behind every ``lib_jobdesk*.py``.

The harness (``../shared/bench`` beside the repository, see ``README.md`` here)
imports ``lib_<name>`` and calls ``setup()``, ``reset()``, ``Producer()``,
``worker_cmds(variant, python)`` and reads ``VARIANTS`` and ``NOTES``. Each
``lib_jobdesk*.py`` is three lines that bind this adapter to one named
configuration of :data:`CONFIGURATIONS`, because the harness keys its results by
module name and a session compares several configurations side by side.

A configuration is three options:

- **store and durability**: a database URL, read from an environment variable
  (``BENCH_JOBDESK_URL``, ...; the default is a file in the temp directory or a
  database on the local PostgreSQL server). ``sqlite:///...`` is SQLite at
  ``synchronous=full`` unless the URL says ``?synchronous=normal``;
  ``postgresql://...`` is PostgreSQL at the server's durability;
- **runtime**: chosen by the variant name, so one configuration can list several:

  - ``c10``, ``c10_batch``, ``c10_listen``, ``c10_overlap``: the bench loop of
    ``jobdesk_loop_worker.py`` (``claim_jobs(limit=10)`` by hand);
  - ``runtime_c10``: the worker runtime in one process
    (``jobdesk_runtime_worker.py``, concurrency 10);
  - ``x1``, ``x2``: one or two ``jobdesk worker --concurrency 10`` processes on
    the database, the CLI as users run it; ``x1_cif2``: one, with
    ``--commits-in-flight 2``;
  - ``http_x1``, ``http_x2``: ``jobdesk serve`` on the database and one or two
    remote ``jobdesk worker`` processes that reach it only over HTTP.

Producer (every configuration): ``create_job`` with the limit checks on (limits
raised so nothing is refused), round-robin over 1,000 users so each user's active
count stays small. ``enqueue_bulk`` is ``create_jobs``: one transaction per chunk,
the whole chunk one user's (a user's fan-out), the limits checked once per chunk.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import psycopg

from jobdesk import JobDesk, JobSpec, Limits
from jobdesk.sync import JobDesk as SyncJobDesk

HERE = Path(__file__).resolve().parent
JOB_TYPE = "noop"
#: jobs are spread over this many users, round-robin
USERS = 1_000
#: the most jobs one create_jobs call takes
MAX_BATCH = 1_000
#: high enough that no create is refused: the harness measures inserts, not refusals
LIMITS = Limits(max_active_per_user=1_000_000, max_created_per_day=100_000_000)
#: the bench loop's claim batch, which is also how many jobs it runs at once
BATCH = 10
#: how long an idle bench loop waits before it polls again
POLL_SECONDS = 0.005
#: the runtime's concurrency, in process and in ``jobdesk worker``
CONCURRENCY = 10

LOOP_WORKER = HERE / "jobdesk_loop_worker.py"
RUNTIME_WORKER = HERE / "jobdesk_runtime_worker.py"
#: the handler registry ``jobdesk worker --app`` loads (from ``--app-dir HERE``)
RUNTIME_APP = "jobdesk_runtime_worker:registry"

#: variants run by the bench loop, and how each completes and waits
LOOP_VARIANTS = ("c10", "c10_batch", "c10_listen", "c10_overlap")
#: variants run by ``jobdesk worker`` processes (on the database, or over HTTP)
CLI_VARIANTS = ("x1", "x1_cif2", "x2", "http_x1", "http_x2")
RUNTIME_VARIANT = "runtime_c10"

#: where the SQLite files go unless a configuration's URL variable says otherwise
SQLITE_FOLDER = Path(tempfile.gettempdir()) / "jobdesk-bench"
#: the PostgreSQL server the PostgreSQL configurations create their database on
POSTGRES_SERVER = os.environ.get("BENCH_JOBDESK_PG_SERVER", "postgresql://root@127.0.0.1:5432")

NOTES_BY_RUNTIME = {
    "loop": "worker: 1 process, claim_jobs(limit=10), the 10 run concurrently, then "
    "complete_job each (c10) or one complete_jobs (c10_batch, c10_listen, c10_overlap); "
    "idle: a 5 ms poll (c10, c10_batch) or a change notification (c10_listen, c10_overlap); "
    "c10_overlap commits a batch while claiming the next",
    "runtime": "runtime_c10: jobdesk.worker in one process, concurrency 10",
    "cli": "workers: the real `jobdesk worker --concurrency 10` CLI, 1 or 2 processes on "
    "the database (x1, x2; x1_cif2: --commits-in-flight 2), or `jobdesk serve` + remote "
    "workers over HTTP (http_x1, http_x2)",
}


@dataclass(frozen=True)
class Configuration:
    """One named way to run jobdesk in the harness: a store URL and the variants to run."""

    #: the environment variable that overrides the database URL
    url_variable: str
    default_url: str
    variants: tuple[str, ...]

    @property
    def url(self) -> str:
        """The database URL: the environment's, else the default."""
        return os.environ.get(self.url_variable, self.default_url)

    @property
    def notes(self) -> str:
        """What the harness prints beside this configuration's figures."""
        runtimes = [runtime_of(variant) for variant in self.variants]
        workers = [text for runtime, text in NOTES_BY_RUNTIME.items() if runtime in runtimes]
        return "; ".join(
            [
                describe_store(self.url),
                "create_job with limit checks; bulk: create_jobs, one user's chunk per call",
                *workers,
            ]
        )


CONFIGURATIONS = {
    "jobdesk": Configuration(
        "BENCH_JOBDESK_URL", f"sqlite:///{SQLITE_FOLDER}/jobdesk.db", LOOP_VARIANTS[:3]
    ),
    "jobdesk_normal": Configuration(
        "BENCH_JOBDESK_NORMAL_URL",
        f"sqlite:///{SQLITE_FOLDER}/jobdesk-normal.db?synchronous=normal",
        LOOP_VARIANTS[:3],
    ),
    "jobdesk_pg": Configuration(
        "BENCH_JOBDESK_PG_URL",
        f"{POSTGRES_SERVER}/jobdesk_bench",
        (RUNTIME_VARIANT, *LOOP_VARIANTS),
    ),
    "jobdesk_rt": Configuration(
        "BENCH_JOBDESK_RT_URL", f"sqlite:///{SQLITE_FOLDER}/runtime.db", CLI_VARIANTS
    ),
    "jobdesk_rt_pg": Configuration(
        "BENCH_JOBDESK_RT_PG_URL", f"{POSTGRES_SERVER}/jobdesk_bench_rt", CLI_VARIANTS
    ),
}


def record(enq_ts: float) -> None:
    """The harness's ``common.record``: note that the job enqueued at ``enq_ts`` starts now.

    ``common`` is the harness's module, on the worker's path only when the harness starts
    it; it is imported at the first job, so that ``--help`` works without it.
    """
    _harness_record()(enq_ts)


@functools.cache
def _harness_record() -> Callable[[float], None]:
    return cast(Callable[[float], None], importlib.import_module("common").record)


def runtime_of(variant: str) -> str:
    """``loop``, ``runtime`` or ``cli``: which worker runs ``variant``."""
    if variant in LOOP_VARIANTS:
        return "loop"
    if variant == RUNTIME_VARIANT:
        return "runtime"
    if variant in CLI_VARIANTS:
        return "cli"
    raise KeyError(f"unknown variant {variant!r}: expected one of {ALL_VARIANTS}")


ALL_VARIANTS = (*LOOP_VARIANTS, RUNTIME_VARIANT, *CLI_VARIANTS)


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (else an SQLite file)."""
    return url.startswith(("postgresql://", "postgres://"))


def describe_store(url: str) -> str:
    """The store and its durability, in the words of the results tables."""
    if is_postgres(url):
        return "PostgreSQL (same server and durability as the peers)"
    synchronous = "normal" if "synchronous=normal" in url else "full"
    return f"SQLite file, WAL, synchronous={synchronous}"


def database_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"url must start with sqlite:/// or postgresql://, got {url!r}")
    return Path(url[len("sqlite:///") :].partition("?")[0])


async def setup_database(url: str) -> None:
    """Create the SQLite file's folder or the PostgreSQL database; jobdesk migrates on open."""
    if is_postgres(url):
        parts = urlsplit(url)
        server = urlunsplit(parts._replace(path="/postgres", query=""))
        name = parts.path.lstrip("/")
        with psycopg.connect(server, autocommit=True) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                admin.execute(f"CREATE DATABASE {name}")  # a name from our own setting
    else:
        database_path(url).parent.mkdir(parents=True, exist_ok=True)
    async with JobDesk.open(url, limits=LIMITS):
        pass


def reset_database(url: str) -> None:
    """Empty jobdesk's tables, as the peers' adapters TRUNCATE and VACUUM theirs.

    The harness calls this while a producer may hold its connection open, so an
    SQLite file stays: the rows go, then VACUUM gives back the pages.
    """
    tables = ("job_events", "jobs", "users", "tokens")
    if is_postgres(url):
        plain = urlunsplit(urlsplit(url)._replace(query=""))
        with psycopg.connect(plain, autocommit=True) as connection:
            names = ", ".join(f"jobdesk.{table}" for table in tables)
            connection.execute(f"TRUNCATE {names} RESTART IDENTITY")
            for table in tables:
                connection.execute(f"VACUUM ANALYZE jobdesk.{table}")
        return
    database = sqlite3.connect(database_path(url), timeout=30, isolation_level=None)
    try:
        database.execute("BEGIN IMMEDIATE")
        for table in tables:
            database.execute(f"DELETE FROM {table}")
        database.execute("COMMIT")
        database.execute("VACUUM")
        database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        database.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def worker_commands(url: str, variant: str, python: str) -> list[list[str]]:
    """The processes of ``variant`` on ``url``: workers, and for ``http_*`` the server first."""
    runtime = runtime_of(variant)
    if runtime == "loop":
        return [[python, str(LOOP_WORKER), url, variant]]
    if runtime == "runtime":
        return [[python, str(RUNTIME_WORKER), url]]
    count = 2 if variant.endswith("x2") else 1
    with SyncJobDesk.open(url, limits=LIMITS) as desk:
        tokens = [desk.create_worker_token(f"bench-{variant}-{n}") for n in range(count)]
    common = [
        "--app", RUNTIME_APP, "--app-dir", str(HERE), "--concurrency", str(CONCURRENCY),
        "--log-level", "warning",
    ]  # fmt: skip
    if variant == "x1_cif2":
        common += ["--commits-in-flight", "2"]
    if not variant.startswith("http"):
        return [
            [python, "-m", "jobdesk", "worker", *common, "--db", url, "--token", token]
            for token in tokens
        ]
    port = _free_port()
    server = f"http://127.0.0.1:{port}"
    serve = [
        python, "-m", "jobdesk", "serve", "--db", url, "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    wait = [python, str(HERE / "wait_for_server.py"), server, "--"]
    return [serve] + [
        [*wait, python, "-m", "jobdesk", "worker", *common, "--server", server, "--token", token]
        for token in tokens
    ]


class Producer:
    """``create_job`` per enqueue, over one open desk on ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.count = 0
        self.desk: JobDesk | None = None

    async def __aenter__(self) -> Producer:
        self.desk = await JobDesk.open(self.url, limits=LIMITS)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.desk is not None:
            await self.desk.close()

    def next_user(self) -> str:
        """The next user of the round-robin."""
        user = f"bench-user-{self.count % USERS:04d}"
        self.count += 1
        return user

    async def enqueue(self, enq_ts: float) -> None:
        """One job whose input carries its enqueue time."""
        assert self.desk is not None, "use Producer as an async context manager"
        await self.desk.create_job(self.next_user(), JOB_TYPE, {"enq_ts": enq_ts})

    async def enqueue_bulk(self, ts_list: Sequence[float]) -> None:
        """One ``create_jobs`` per chunk of ``MAX_BATCH``, each chunk one user's."""
        assert self.desk is not None, "use Producer as an async context manager"
        user = self.next_user()
        for start in range(0, len(ts_list), MAX_BATCH):
            chunk = ts_list[start : start + MAX_BATCH]
            await self.desk.create_jobs(user, [JobSpec(JOB_TYPE, {"enq_ts": ts}) for ts in chunk])


@dataclass(frozen=True)
class HarnessModule:
    """What a ``lib_<name>`` module exposes to the harness, for one configuration.

    The fields carry the harness's names, so that a ``lib_<name>`` module binds them as they are.
    """

    setup: Callable[[], Awaitable[None]]
    reset: Callable[[], None]
    Producer: Callable[[], Producer]
    worker_cmds: Callable[[str, str], list[list[str]]]
    VARIANTS: list[str]
    NOTES: str


def harness_module(name: str) -> HarnessModule:
    """The harness's names for configuration ``name`` of :data:`CONFIGURATIONS`.

    The URL is read once, here, as the harness imports the module.
    """
    configuration = CONFIGURATIONS[name]
    url = configuration.url

    def worker_cmds(variant: str, python: str) -> list[list[str]]:
        if variant not in configuration.variants:
            raise KeyError(f"{name} has no variant {variant!r}: {configuration.variants}")
        return worker_commands(url, variant, python)

    return HarnessModule(
        setup=functools.partial(setup_database, url),
        reset=functools.partial(reset_database, url),
        Producer=functools.partial(Producer, url),
        worker_cmds=worker_cmds,
        VARIANTS=list(configuration.variants),
        NOTES=configuration.notes,
    )
