"""The worker runtime: handlers for job types, run by a worker process.

::

    from jobdesk.worker import JobContext, Registry

    registry = Registry()

    @registry.handler("character_extraction", timeout=600, max_attempts=3)
    async def extract(ctx: JobContext, input: dict) -> dict:
        episodes = input["episode_ids"]
        for done, episode in enumerate(episodes):
            if ctx.cancelled:
                break
            await ctx.progress(100 * done / len(episodes), f"episode {episode}")
        return {"characters": [...]}

Run it with ``jobdesk worker --app myapp.jobs:registry --db URL`` (or
``--server URL`` for a remote jobdesk server) or, in code,
``await WorkerRuntime(registry, await DeskTransport.connect(desk, token)).run()`` (or
``async with HttpTransport.connect(url, token) as transport: ...``).
:class:`WorkerRuntime` is the runtime; ``jobdesk.Worker`` is the verified identity
of a worker token. The runtime's old name here, ``jobdesk.worker.Worker``, still
works for one release, with a :class:`DeprecationWarning`.
"""

import warnings
from typing import TYPE_CHECKING

from jobdesk.worker.context import Fail, JobContext, Retry, Snooze, SyncJobContext
from jobdesk.worker.http import HttpTransport
from jobdesk.worker.registry import Handler, Registry
from jobdesk.worker.runtime import WorkerRuntime
from jobdesk.worker.transport import ChangeFeed, DeskTransport, Transport

__all__ = [
    "ChangeFeed",
    "DeskTransport",
    "Fail",
    "Handler",
    "HttpTransport",
    "JobContext",
    "Registry",
    "Retry",
    "Snooze",
    "SyncJobContext",
    "Transport",
    "WorkerRuntime",
]

if TYPE_CHECKING:
    # Type checkers see the old name as the class itself; at run time __getattr__ warns.
    Worker = WorkerRuntime


def __getattr__(name: str) -> object:
    # The runtime was called Worker, like the verified identity jobdesk.Worker: one
    # name for two things. The old name keeps working for one release.
    if name == "Worker":
        warnings.warn(
            "jobdesk.worker.Worker is now jobdesk.worker.WorkerRuntime; the old name "
            "goes away in the next release (jobdesk.Worker, the verified identity, stays)",
            DeprecationWarning,
            stacklevel=2,
        )
        return WorkerRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
