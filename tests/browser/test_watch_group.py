"""jobdesk.js in a real browser: a page follows a group with ``watchGroup`` and a view
token; the server goes away mid-way (its streams close) and comes back; the page's
EventSource reconnects with ``Last-Event-ID``, catches up with the state it missed, and
follows the group to its final state, after which the server's 204 stops it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from jobdesk import JobSpec
from jobdesk.http import Settings, create_app
from jobdesk.sync import JobDesk

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request, Route

PAGE = """<!doctype html><meta charset="utf-8"><title>watch</title>
<script type="module">
  import { watchGroup } from "/static/jobdesk.js";
  window.updates = [];
  watchGroup(%(url)s, %(token)s,
    (update) => window.updates.push(update),
    (reason) => { window.ended = reason; });
</script>"""


@contextlib.contextmanager
def serving(database: str, port: int) -> Iterator[None]:
    """``jobdesk serve``'s app on ``port`` (bound again after a restart), in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    app = create_app(database, Settings(reap_interval_seconds=0, webhook_interval_seconds=0))
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start within 10 s"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def wait_until(page: Page, what: str, test: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The page's updates once ``test(updates)`` holds (polled from here: see conftest)."""
    deadline = time.monotonic() + timeout
    while True:
        updates: list[dict[str, Any]] = page.evaluate("window.updates || []")
        if test(updates):
            return updates
        assert time.monotonic() < deadline, f"the page never saw {what}: {updates[-3:]}"
        page.wait_for_timeout(50)


def groups(updates: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(item["status"], item["progress"]) for item in updates if item["event"] == "group"]


def test_watch_group_reconnects_with_last_event_id_and_ends_on_the_final_state(
    browser: Browser, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'jobdesk.db'}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with JobDesk.open(database) as desk:
        group = desk.create_group("alice", [JobSpec("extract", {"n": n}) for n in range(2)])
        token = desk.create_view_token("alice", group_id=group.id, ttl=600)
        worker = desk.verify_worker_token(desk.create_worker_token("w1"))
        first, second = desk.claim_jobs(worker, limit=2)
        stream = f"{base}/api/v1/groups/{group.id}/events"
        html = PAGE % {"url": json.dumps(stream), "token": json.dumps(token)}
        context = browser.new_context()
        page = context.new_page()
        requests: list[Request] = []  # the stream's: its opening and each reconnection
        answers: list[int] = []
        page.on(
            "request",
            lambda request: requests.append(request) if _is_stream(request, stream) else None,
        )
        page.on(
            "response",
            lambda response: (
                answers.append(response.status) if _is_stream(response.request, stream) else None
            ),
        )
        # The host app's page, on the server's origin (the module and stream are the server's).
        page.route(f"{base}/watch", lambda route: _fulfil(route, html), times=1)
        try:
            with serving(database, port):
                page.goto(f"{base}/watch")
                wait_until(page, "the group running", lambda u: ("running", 0.0) in groups(u))
                desk.update_job_progress(worker, first.id, 50, attempt=first.attempt)
                wait_until(page, "the first progress", lambda u: ("running", 25.0) in groups(u))
            # The server is gone and its streams with it; meanwhile the first job ends.
            desk.complete_job(worker, first.id, "one", attempt=first.attempt)
            with serving(database, port):
                wait_until(page, "the missed end", lambda u: ("running", 50.0) in groups(u))
                desk.complete_job(worker, second.id, "two", attempt=second.attempt)
                updates = wait_until(
                    page, "the final state", lambda u: ("completed", 100.0) in groups(u)
                )
                deadline = time.monotonic() + 15
                while page.evaluate("window.ended || null") is None:
                    assert time.monotonic() < deadline, "EventSource did not stop after the end"
                    page.wait_for_timeout(50)
                assert page.evaluate("window.ended") == "closed"
                # Each request's Last-Event-ID (as sent: not among Playwright's first headers).
                opened = [request.all_headers().get("last-event-id") for request in requests]
        finally:
            context.close()
    assert groups(updates)[-1] == ("completed", 100.0)
    progress = [value for _, value in groups(updates)]
    assert progress == sorted(progress)  # nothing older after newer, across the restart
    assert ("running", 50.0) in groups(updates)  # what happened while it was away
    # Opened afresh, then again with the id of the last group event it had each time:
    # after the restart (caught up), and after the final event (answered 204).
    assert opened[0] is None
    assert len(opened) >= 3
    assert all(last is not None and last.endswith("-running") for last in opened[1:-1])
    assert opened[-1] is not None
    assert opened[-1].endswith(f"{group.id}-completed")
    assert answers[-1] == 204


def _is_stream(request: Request, stream: str) -> bool:
    return request.url.startswith(stream)


def _fulfil(route: Route, html: str) -> None:
    route.fulfill(status=200, content_type="text/html", body=html)
