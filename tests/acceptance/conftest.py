"""Fixtures for the HTTP API: the app over the test's desk, a client, tokens.

Requests go through the real ASGI app (``httpx.ASGITransport``), middleware and
all, on every store (``store_url`` is parametrised). Event streams need a real
server: :func:`served` runs uvicorn in the test's event loop on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from jobdesk import JobDesk
from jobdesk.http import Settings, create_app

JWT_SECRET = "a-test-secret-long-enough-for-hs256-and-for-hs512-too-0123456789"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    """A client on the app, with helpers to mint tokens on the same desk."""

    app: FastAPI
    desk: JobDesk
    client: httpx.AsyncClient

    async def user(self, user_id: str) -> dict[str, str]:
        """Headers authenticating as ``user_id`` (a fresh user token)."""
        return bearer(await self.desk.create_user_token(user_id))

    async def worker(self, name: str, types: list[str] | None = None) -> dict[str, str]:
        """Headers authenticating as a new worker token ``name``."""
        return bearer(await self.desk.create_worker_token(name, types=types))

    async def create(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        """Create a job (type ``extract`` unless given) and return its JSON."""
        body.setdefault("type", "extract")
        body.setdefault("input", {"episode_ids": ["ep-1"]})
        response = await self.client.post("/api/v1/jobs", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@contextlib.asynccontextmanager
async def running(app: FastAPI, **client_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan around an in-process client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, **client_options)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


MakeApp = Callable[..., FastAPI]


@pytest.fixture
def make_app(desk: JobDesk) -> MakeApp:
    """``make_app(**settings)``: an app over the test's desk (no reaper unless asked)."""

    def make(**settings: Any) -> FastAPI:
        settings.setdefault("reap_interval_seconds", 0)
        settings.setdefault("schedule_interval_seconds", 0)
        settings.setdefault("webhook_interval_seconds", 0)
        settings.setdefault("retention_interval_seconds", 0)
        settings.setdefault("jwt_secret", JWT_SECRET)
        return create_app(desk, Settings(**settings))

    return make


@pytest.fixture
async def api(desk: JobDesk, make_app: MakeApp) -> AsyncIterator[Api]:
    """A client on the app over the test's desk, on each store."""
    app = make_app()
    async with running(app) as client:
        yield Api(app, desk, client)


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server._serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no "started" event
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
