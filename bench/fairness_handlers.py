"""The handler ``bench_fairness.py`` runs in real ``jobdesk worker`` processes.

    jobdesk worker --app fairness_handlers:registry --app-dir bench ...

Three job types, one handler: it sleeps ``input["seconds"]`` (the benchmark sets
0.05) without using the CPU, so that the worker processes, not the handlers,
compete with the database for the machine. ``fair_sleep`` has no limits of its
own; the ``caps`` scenario gives ``fair_pooled`` a pool and ``fair_rated`` a rate.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobdesk.worker import JobContext, Registry

#: the job type every job of the fairness benchmark has, but those of ``caps``'s limited types
JOB_TYPE = "fair_sleep"
#: ``caps``: a type with a pool (``set_type_limits(max_running=)``)
POOLED_TYPE = "fair_pooled"
#: ``caps``: a type with a rate (``set_type_limits(rate=)``)
RATED_TYPE = "fair_rated"

registry = Registry()


@registry.handler(RATED_TYPE)
@registry.handler(POOLED_TYPE)
@registry.handler(JOB_TYPE)
async def sleep(ctx: JobContext, input: dict[str, Any]) -> None:  # noqa: A002 - the contract's name
    """Hold a worker slot for ``input["seconds"]``, as a job of that length would."""
    await asyncio.sleep(float(input["seconds"]))
