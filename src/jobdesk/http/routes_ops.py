"""Operations routes: liveness, readiness and Prometheus metrics (no token)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from starlette.responses import Response

from jobdesk.http.metrics import CONTENT_TYPE_LATEST
from jobdesk.http.runtime import RuntimeDep
from jobdesk.http.schemas import Out
from jobdesk.http.schemas_problems import documented

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Health(Out):
    """A probe's answer."""

    status: Literal["ok", "ready"]


@router.get("/healthz", operation_id="healthz")
async def healthz() -> Health:
    """The process is up and serving (it does not touch the database)."""
    return Health(status="ok")


@router.get("/readyz", operation_id="readyz", responses=documented(503))
async def readyz(runtime: RuntimeDep) -> Health:
    """The database answers (503 problem otherwise)."""
    await runtime.require_desk().ping()
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
