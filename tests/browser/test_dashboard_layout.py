"""Every page fits the screen, 375 px wide (a phone) and 1280 px (a desktop), even when
the values users and workers write are as long as jobdesk allows and never break.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, sign_in

WIDTHS = (375, 1280)
#: a real type, padded to the longest a type may be ([a-z0-9_.-]{1,64})
LONG_TYPE = "character_extraction.speaker_diarization.v2".ljust(64, "x")
#: the longest a project id may be, a URL without a break
LONG_PROJECT = ("https://media.example.com/shows/" + "s01e01-" * 20)[:128]
#: the longest a progress or error message may be (1000 characters), one unbroken word
LONG_MESSAGE = ("downloading:https://cdn.example.com/" + "a1b2c3d4" * 130)[:1000]
#: the longest worker name ([A-Za-z0-9_.:@-]{1,64})
LONG_WORKER = ("gpu-box." + "0123456789" * 6)[:64]

#: the elements that would scroll sideways inside the page rather than widen it
OVERFLOW = """() => {
    const too_wide = [];
    for (const element of document.querySelectorAll("main *")) {
        const style = getComputedStyle(element);
        const scrolls = ["auto", "scroll"].includes(style.overflowX);
        if (scrolls && element.scrollWidth > element.clientWidth + 1) {
            too_wide.push(element.tagName + "." + element.className);
        }
    }
    return {
        document: document.documentElement.scrollWidth,
        viewport: window.innerWidth,
        scrolling: too_wide,
    };
}"""


@dataclass
class LongValues:
    """A user whose jobs hold the longest values, in every state the pages show."""

    user_id: str
    token: str
    processing: str
    failed: str
    completed: str


@pytest.fixture(scope="module")
def long_values(server: Server) -> LongValues:
    """The user (its id as long as ids go) and its jobs."""
    user_id = f"user-{uuid.uuid4().hex}-" + "z" * 90  # 128 characters
    assert len(user_id) == 128
    desk = server.desk
    desk.set_user_limits(user_id, max_waiting=100)
    worker = desk.verify_worker_token(desk.create_worker_token(LONG_WORKER))
    document = {"source_url": LONG_PROJECT * 3, "episodes": [LONG_MESSAGE] * 3}
    small = {"source_url": LONG_PROJECT * 3}
    processing = desk.create_job(user_id, LONG_TYPE, small, LONG_PROJECT)
    failed = desk.create_job(user_id, LONG_TYPE, document, LONG_PROJECT)
    completed = desk.create_job(user_id, LONG_TYPE, small, LONG_PROJECT)
    desk.create_job(user_id, LONG_TYPE, small, LONG_PROJECT)  # stays pending
    for job in (processing, failed, completed):
        desk.start_job(worker, job.id)
    desk.update_job_progress(worker, processing.id, 30, LONG_MESSAGE, attempt=1)
    desk.fail_job(
        worker, failed.id, {"message": LONG_MESSAGE, "details": {"url": LONG_MESSAGE}},
        retryable=False, attempt=1,
    )  # fmt: skip
    desk.complete_job(worker, completed.id, {"transcript": LONG_MESSAGE}, attempt=1)
    return LongValues(user_id, desk.create_user_token(user_id), processing.id, failed.id,
                      completed.id)  # fmt: skip


def _assert_fits(page: Page, path: str, width: int) -> None:
    measured = page.evaluate(OVERFLOW)
    assert measured["viewport"] == width
    assert measured["document"] <= width, f"{path} is {measured['document']} px wide at {width}"
    assert measured["scrolling"] == [], f"{path} at {width} px scrolls sideways inside"


def _assert_all_fit(page: Page, server: Server, paths: list[str], width: int) -> None:
    for path in paths:
        page.goto(server.url + path)
        expect(page.locator("main h1")).to_be_visible()
        _assert_fits(page, path, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_users_pages_fit_the_screen_with_the_longest_values(
    page: Page, server: Server, long_values: LongValues, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, server, long_values.token)
    paths = [
        "/",
        f"/jobs/{long_values.processing}",
        f"/jobs/{long_values.failed}",
        f"/jobs/{long_values.completed}",
    ]
    _assert_all_fit(page, server, paths, width)
    page.goto(f"{server.url}/jobs/{long_values.processing}")
    expect(page.locator(".progress-message")).to_have_text(LONG_MESSAGE)
    expect(page.locator(".progress-message")).to_be_in_viewport()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_operators_pages_fit_the_screen_with_the_longest_values(
    page: Page, server: Server, long_values: LongValues, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, server, server.desk.create_admin_token(f"ops-{uuid.uuid4().hex[:8]}"))
    paths = [
        "/admin",
        f"/admin/users/{quote(long_values.user_id, safe='')}",
        f"/admin/jobs/{long_values.failed}",
        f"/admin/jobs/{long_values.processing}",
    ]
    _assert_all_fit(page, server, paths, width)


def test_the_queue_counts_read_as_labelled_cards_on_a_narrow_screen(
    page: Page, server: Server, long_values: LongValues
) -> None:
    page.set_viewport_size({"width": 375, "height": 900})
    sign_in(page, server, server.desk.create_admin_token(f"ops-{uuid.uuid4().hex[:8]}"))
    queue = page.locator("section", has=page.get_by_role("heading", name="Queue"))
    row = queue.get_by_role("row", name=LONG_TYPE)
    expect(row).to_be_visible()
    for label in ("pending", "processing", "completed", "failed", "cancelled"):
        cell = row.locator(f'td[data-label="{label}"]')
        cell.scroll_into_view_if_needed()
        expect(cell).to_be_in_viewport(ratio=1)
        # the label shows beside each count, since the column headings are off screen
        content = cell.evaluate("cell => getComputedStyle(cell, '::before').content")
        assert content == f'"{label}"'
    page.evaluate("window.scrollTo(0, 0)")
    box = row.bounding_box()
    assert box is not None
    assert 0 <= box["x"] < box["x"] + box["width"] <= 375
    page.screenshot(path="/tmp/admin-narrow-test.png", full_page=False)
