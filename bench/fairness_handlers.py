"""The handler ``bench_fairness.py`` runs in real ``jobdesk worker`` processes.

    jobdesk worker --app fairness_handlers:registry --app-dir bench ...

One job type, ``fair_sleep``: the handler sleeps ``input["seconds"]`` (the
benchmark sets 0.05) without using the CPU, so that the worker processes, not the
handlers, compete with the database for the machine.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobdesk.worker import JobContext, Registry

#: the job type every job of the fairness benchmark has
JOB_TYPE = "fair_sleep"

registry = Registry()


@registry.handler(JOB_TYPE)
async def sleep(ctx: JobContext, input: dict[str, Any]) -> None:  # noqa: A002 - the contract's name
    """Hold a worker slot for ``input["seconds"]``, as a job of that length would."""
    await asyncio.sleep(float(input["seconds"]))
