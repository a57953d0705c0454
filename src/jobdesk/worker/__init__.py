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
``await Worker(registry, await DeskTransport.connect(desk, token)).run()`` (or
``async with HttpTransport.connect(url, token) as transport: ...``).
:class:`Worker` here is the runtime; ``jobdesk.Worker`` is the verified identity
of a worker token.
"""

from jobdesk.worker.context import Fail, JobContext, Retry, SyncJobContext
from jobdesk.worker.http import HttpTransport
from jobdesk.worker.registry import Handler, Registry
from jobdesk.worker.runtime import Worker
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
    "SyncJobContext",
    "Transport",
    "Worker",
]
