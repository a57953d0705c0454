"""Operations routes: liveness, readiness and Prometheus metrics (no token)."""

from __future__ import annotations

import contextlib
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.responses import Response

from jobdesk.errors import JobNotFound
from jobdesk.http.metrics import CONTENT_TYPE_LATEST
from jobdesk.http.problems import documented
from jobdesk.http.runtime import RuntimeDep

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """A probe's answer."""

    status: Literal["ok", "ready"]


@router.get("/healthz", operation_id="healthz")
async def healthz() -> Health:
    """The process is up and serving (it does not touch the database)."""
    return Health(status="ok")


# TEMPORARY(core patch "ping"): the core has no "is the database reachable" operation.
# Until JobDesk.ping() lands, read a job that never exists: JobNotFound means the
# database answered.
_PROBE_JOB_ID = "00000000000000000000000000"
_PROBE_USER_ID = "jobdesk-readiness-probe"


@router.get("/readyz", operation_id="readyz", responses=documented(503))
async def readyz(runtime: RuntimeDep) -> Health:
    """The database answers (503 problem otherwise)."""
    with contextlib.suppress(JobNotFound):
        await runtime.require_desk().get_job_status(_PROBE_JOB_ID, _PROBE_USER_ID)
    return Health(status="ready")


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **documented(503),
    },
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Job counters, queue depth, job and request durations, in Prometheus format."""
    body = await runtime.metrics.render(runtime.require_desk())
    return Response(body, media_type=CONTENT_TYPE_LATEST)
