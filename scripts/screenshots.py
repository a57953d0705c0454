"""Screenshots of the dashboard for the README: docs/img/dashboard-*.png.

    .venv/bin/python scripts/screenshots.py

Serves the app on a fresh SQLite file with a few users, jobs in every status and a
worker mid-job, then photographs the job list, a job and the operator's page at
1280 px (desktop) and 375 px (narrow) with Debian's Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, sync_playwright

from jobdesk.http import Settings, create_app
from jobdesk.sync import JobDesk

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "img"
SIZES = {"desktop": (1280, 900), "narrow": (375, 812)}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@contextmanager
def serving(url: str) -> Iterator[str]:
    """The dashboard under uvicorn in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = create_app(url, Settings(reap_interval_seconds=0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def populate(desk: JobDesk) -> tuple[str, str, str]:
    """Demo data; the user's token, the admin token and the id of a job to show."""
    desk.set_user_limits("alice", max_active=10, max_daily=200)
    gpu = desk.verify_worker_token(desk.create_worker_token("gpu-box-1"))
    cpu = desk.verify_worker_token(desk.create_worker_token("cpu-box-2"))
    episodes = {"episode_ids": ["s01e01", "s01e02", "s01e03", "s01e04"]}
    for user, count in (("bob", 6), ("carol", 3)):
        for number in range(count):
            desk.create_job(user, "transcription", {"n": number}, "podcast")
    done = desk.create_job("alice", "character_extraction", episodes, "show-1")
    desk.start_job(gpu, done.id)
    desk.complete_job(gpu, done.id, {"characters": ["Ann", "Bob", "Cleo"]}, attempt=1)
    failed = desk.create_job("alice", "transcription", {"episode_id": "s01e05"}, "show-1")
    desk.start_job(cpu, failed.id)
    desk.fail_job(
        cpu, failed.id, {"message": "audio track missing", "code": "no_audio"},
        retryable=False, attempt=1,
    )  # fmt: skip
    cancelled = desk.create_job("alice", "thumbnail", {"frame": 120}, "show-2")
    desk.cancel_job(cancelled.id, "alice")
    running = desk.create_job("alice", "character_extraction", episodes, "show-2")
    desk.start_job(gpu, running.id)
    desk.update_job_progress(gpu, running.id, 62, "episode 3 of 4: faces", attempt=1)
    desk.create_job("alice", "thumbnail", {"frame": 48}, "show-2")
    bobs = desk.claim_jobs(cpu, types=["transcription"], limit=2)
    desk.complete_job(cpu, bobs[0].id, {"words": 5120}, attempt=1)
    return desk.create_user_token("alice"), desk.create_admin_token("ops"), running.id


def sign_in(page: Page, base: str, token: str) -> None:
    """Sign in through the form."""
    page.goto(f"{base}/signin")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def main() -> None:
    """Make the screenshots."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/screens.db"
        desk = JobDesk.open(url)
        try:
            user_token, admin_token, job_id = populate(desk)
            with serving(url) as base, sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path="/usr/bin/chromium", headless=True, args=ARGS
                )
                for size, (width, height) in SIZES.items():
                    context = browser.new_context(viewport={"width": width, "height": height})
                    page = context.new_page()
                    sign_in(page, base, user_token)
                    shots = {"jobs": "/", "job": f"/jobs/{job_id}"}
                    for name, path in shots.items():
                        page.goto(base + path, wait_until="domcontentloaded")
                        target = IMAGES / f"dashboard-{name}-{size}.png"
                        page.screenshot(path=target, full_page=True)
                    context.clear_cookies()
                    sign_in(page, base, admin_token)
                    page.goto(base + "/admin", wait_until="domcontentloaded")
                    page.screenshot(path=IMAGES / f"dashboard-admin-{size}.png", full_page=True)
                    context.close()
                browser.close()
        finally:
            desk.close()
    for image in sorted(IMAGES.glob("dashboard-*.png")):
        print(f"wrote {image.relative_to(IMAGES.parents[1])}")


if __name__ == "__main__":
    main()
