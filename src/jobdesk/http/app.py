"""The app factory: ``create_app(desk_or_url, settings) -> FastAPI``.

Given an open :class:`~jobdesk.JobDesk`, the app uses it as it is (and works
without its lifespan, e.g. mounted in a host application). Given a database URL,
the app's lifespan opens the desk at startup and closes it at shutdown. The
lifespan also returns expired leases to the queue periodically, since remote
workers cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles

from jobdesk import __version__
from jobdesk.desk import DEFAULT_URL, JobDesk
from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.http import (
    dashboard,
    routes_admin,
    routes_groups,
    routes_ops,
    routes_user,
    routes_webhooks,
    routes_worker,
)
from jobdesk.http.metrics import Metrics
from jobdesk.http.middleware import (
    API_SECURITY_HEADERS,
    CORS,
    BodyLimit,
    RequestContext,
    SecurityHeaders,
)
from jobdesk.http.problems import HANDLERS, FieldProblem, Problem
from jobdesk.http.runtime import Runtime
from jobdesk.http.schemas import JobStateEvent, ReadyEvent, ResyncEvent
from jobdesk.http.schemas_groups import GroupEvent
from jobdesk.http.schemas_problems import PROBLEM_SCHEMAS
from jobdesk.http.settings import Settings
from jobdesk.limits import Limits
from jobdesk.retention import RetentionPolicy

__all__ = ["create_app"]

_log = logging.getLogger("jobdesk.http")

DESCRIPTION = """\
User-owned background jobs over HTTP. Users create, list, watch, cancel and retry
their jobs with a user token or a JWT; workers claim and report with a worker
token. Errors are RFC 9457 `application/problem+json`. See docs/http.md.
"""


def create_app(
    desk_or_url: JobDesk | str = DEFAULT_URL,
    settings: Settings | None = None,
    *,
    limits: Limits | None = None,
) -> FastAPI:
    """The jobdesk HTTP API as a FastAPI app.

    ``desk_or_url`` is an open desk (its owner closes it) or a database URL (the
    app's lifespan opens and closes it, with ``limits`` as the desk's defaults).
    ``settings`` default to :meth:`Settings.from_env`.
    """
    if not isinstance(desk_or_url, JobDesk | str):
        raise TypeError("desk_or_url must be a JobDesk or a database URL")
    if limits is not None and isinstance(desk_or_url, JobDesk):
        raise InvalidInput("limits", "only with a URL: an open desk has its own limits")
    settings = Settings.from_env() if settings is None else settings
    metrics = Metrics()
    runtime = Runtime(
        settings=settings,
        metrics=metrics,
        desk=desk_or_url if isinstance(desk_or_url, JobDesk) else None,
    )
    url = desk_or_url if isinstance(desk_or_url, str) else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if url is not None:
                runtime.desk = await stack.enter_async_context(JobDesk.open(url, limits=limits))
                stack.callback(setattr, runtime, "desk", None)
            stack.push_async_callback(runtime.close_broadcaster)
            for loop, interval, name in (
                (_reap, settings.reap_interval_seconds, "jobdesk-reaper"),
                (_run_schedules, settings.schedule_interval_seconds, "jobdesk-schedules"),
                (_deliver_webhooks, settings.webhook_interval_seconds, "jobdesk-webhooks"),
                (
                    partial(_apply_retention, settings.retention, metrics),
                    settings.retention_interval_seconds,
                    "jobdesk-retention",
                ),
            ):
                # The server's own loops, each off when its interval is 0.
                if interval > 0:
                    task = asyncio.create_task(loop(runtime.require_desk(), interval), name=name)
                    stack.push_async_callback(_stop, task)
            yield

    app = FastAPI(
        title="jobdesk",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        exception_handlers=HANDLERS,
        # Swagger UI and ReDoc load scripts from a CDN: on the origin that holds the
        # dashboard's session, a compromised CDN could act as the signed-in user.
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
    )
    app.state.jobdesk = runtime
    app.include_router(routes_user.router)
    app.include_router(routes_groups.router)
    app.include_router(routes_worker.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_ops.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIRECTORY), name="static")
    # Added innermost first: the request context wraps everything, CORS answers
    # preflights before the body limit, and the limit sits right above the routes.
    app.add_middleware(
        BodyLimit, limit=settings.max_body_bytes, timeout=settings.body_timeout_seconds
    )
    if settings.cors_origins:
        app.add_middleware(
            CORS,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Last-Event-ID",
                "X-Request-ID",
                "traceparent",
                "tracestate",
            ],
            expose_headers=["Retry-After", "WWW-Authenticate", "X-Request-ID"],
            max_age=600,
        )
    # The docs pages, when on, need their CDN scripts and inline set-up: no CSP of ours.
    docs = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"} if settings.api_docs else ())
    app.add_middleware(SecurityHeaders, headers=API_SECURITY_HEADERS, exempt=docs)
    app.add_middleware(RequestContext, metrics=metrics, trust_request_id=settings.trust_request_id)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            ref = "#/components/schemas/{model}"
            models: list[type[BaseModel]] = [
                Problem,
                FieldProblem,
                JobStateEvent,
                ReadyEvent,
                ResyncEvent,
                GroupEvent,
                *PROBLEM_SCHEMAS.values(),
            ]
            for model in models:
                document = model.model_json_schema(ref_template=ref, mode="serialization")
                components.update(document.pop("$defs", {}))
                components[model.__name__] = document
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _reap(desk: JobDesk, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            count = await desk.requeue_expired()
            await desk.finish_groups()
        except JobdeskError as exc:
            _log.warning("returning expired leases to the queue failed: %s", exc)
            continue
        if count:
            _log.info("returned %d jobs with expired leases to the queue", count)


async def _run_schedules(desk: JobDesk, interval: float) -> None:
    """Fire due schedules every ``interval``: any number of servers and workers may."""
    while True:
        await asyncio.sleep(interval)
        try:
            count = await desk.run_due_schedules()
        except JobdeskError as exc:
            _log.warning("firing due schedules failed: %s", exc)
            continue
        if count:
            _log.info("schedules made %d job(s)", count)


async def _deliver_webhooks(desk: JobDesk, interval: float) -> None:
    """Send due webhook deliveries (never in the request that made the transition)."""
    await desk.send_webhooks(interval=interval)


#: how long a retention pass of the server rests between batches, so that requests and
#: workers' commits never queue behind a run of deletes
RETENTION_PAUSE_SECONDS = 0.05


async def _apply_retention(
    policy: RetentionPolicy, metrics: Metrics, desk: JobDesk, interval: float
) -> None:
    """A retention pass every ``interval``: in small batches, one process at a time."""
    while True:
        await asyncio.sleep(interval)
        try:
            report = await desk.apply_retention(policy, pause=RETENTION_PAUSE_SECONDS)
        except JobdeskError as exc:
            metrics.retention_failed()
            _log.warning("the retention pass failed: %s", exc)
            continue
        metrics.retention(report)
        if report.total:
            _log.info("retention deleted %d finished job(s): %s", report.total, report.deleted)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
