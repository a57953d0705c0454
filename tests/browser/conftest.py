"""Fixtures for the browser tests: a real server, Debian's Chromium driven by Playwright.

The server is the app ``jobdesk serve`` runs (uvicorn, lifespan and all) on an SQLite
file, in a thread with its own event loop, on a free port. The tests play the
worker through a second desk on the same file (``jobdesk.sync``), as a worker
process would: the server learns of those writes from the database, not in process.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs
it). Without it these tests are skipped, except under CI (``CI=true``): there they fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn

from jobdesk.http import Settings, create_app
from jobdesk.sync import JobDesk

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: counts the event streams htmx opened, so a test can wait for live updates to flow, and
#: records what the Content-Security-Policy refused, so a test can tell it refused nothing
SSE_OPEN_COUNTER = """
document.addEventListener("htmx:sseOpen", () => {
    window.__sseOpen = (window.__sseOpen || 0) + 1;
});
document.addEventListener("securitypolicyviolation", (event) => {
    (window.__cspViolations = window.__cspViolations || []).push(
        event.violatedDirective + " " + event.blockedURI
    );
});
"""


@dataclass
class Server:
    """The running dashboard, and a desk on its database for playing users and workers."""

    url: str
    desk: JobDesk

    def user(self) -> tuple[str, str]:
        """A fresh user id and a token for it."""
        user_id = f"user-{uuid.uuid4().hex[:10]}"
        return user_id, self.desk.create_user_token(user_id)


def _missing_browser(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must run the browser tests (apt-get install -y chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (its own browsers are never downloaded: Debian's Chromium runs).

    Module-scoped: the sync driver runs an event loop of its own while it lives, and the
    async tests of later modules need the thread's loop back.
    """
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional until used
    except ImportError:
        _missing_browser("playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        _missing_browser(f"{CHROMIUM} is missing")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium."""
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) at desktop size."""
    opened = browser.new_context(viewport={"width": 1280, "height": 900})
    opened.add_init_script(SSE_OPEN_COUNTER)
    opened.set_default_timeout(10_000)
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A tab in the fresh profile."""
    return context.new_page()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The dashboard served by uvicorn on a free port, over an SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'jobdesk.db'}"
    desk = JobDesk.open(url)
    app = create_app(url, Settings(reap_interval_seconds=0, sse_keepalive_seconds=5))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    served = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(served.serve(sockets=[sock])), name="dashboard-server"
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not served.started:
        assert time.monotonic() < deadline, "the server did not start within 10 s"
        time.sleep(0.01)
    try:
        yield Server(f"http://127.0.0.1:{port}", desk)
    finally:
        served.should_exit = True
        thread.join(15)
        sock.close()
        desk.close()


def wait_for_live_updates(page: Page, streams: int = 1, timeout: float = 10.0) -> None:
    """Block until the page's event streams are open (changes from now on show).

    Polled from here: ``page.wait_for_function`` polls by evaluating a string in the
    page, which the pages' Content-Security-Policy (no ``unsafe-eval``) refuses.
    """
    deadline = time.monotonic() + timeout
    while page.evaluate("window.__sseOpen || 0") < streams:
        assert time.monotonic() < deadline, f"no event stream opened within {timeout} s"
        page.wait_for_timeout(20)


def sign_in(page: Page, server: Server, token: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto(f"{server.url}/signin")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
