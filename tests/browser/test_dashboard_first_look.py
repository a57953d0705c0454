"""What a first visit shows, at 1280 and 375 px wide: whole percents, a chart with axes
and units, one label per field, a favicon, and no empty area in the limits card.

Each page is also saved as a screenshot (in the test's temporary directory) for a
person to look at when a check fails; the checks themselves read the page's layout.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import FloatRect, Page, Response, expect

from tests.browser.conftest import Server, sign_in

WIDTHS = (1280, 375)
#: the labels of the page's form fields and check boxes, as read aloud
LABELS = """() => [...document.querySelectorAll("main label")].map(
    (label) => label.textContent.replace(/\\s+/g, " ").trim()
)"""


@pytest.fixture(scope="module")
def busy_user(server: Server) -> tuple[str, str]:
    """A user with a job at 14.4444 %, one completed, one waiting; and its token."""
    user_id, token = server.user()
    desk = server.desk
    for _ in range(3):
        desk.create_job(user_id, "first_look", {"episode_ids": ["e1"]})
    worker = desk.verify_worker_token(desk.create_worker_token(f"w-{uuid.uuid4().hex[:8]}"))
    running, done = desk.claim_jobs(worker, types=["first_look"], limit=2)
    desk.update_job_progress(worker, running.id, 14.4444, "episode 1 of 9", attempt=running.attempt)
    desk.complete_job(worker, done.id, {"ok": True}, attempt=done.attempt)
    return running.id, token


def failures(page: Page) -> list[str]:
    """Every response of 400 or more the page gets from now on (a favicon's 404 too)."""
    failed: list[str] = []

    def note(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", note)
    return failed


def box(page: Page, selector: str) -> FloatRect:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not laid out"
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_a_users_first_look(
    page: Page, server: Server, busy_user: tuple[str, str], width: int, tmp_path: Path
) -> None:
    job_id, token = busy_user
    page.set_viewport_size({"width": width, "height": 900})
    failed = failures(page)
    sign_in(page, server, token)
    page.goto(f"{server.url}/")
    page.screenshot(path=tmp_path / f"jobs-{width}.png", full_page=True)

    # Whole percents, in the list and on the job's page.
    percents = page.locator(".pct").all_inner_texts()
    assert "14%" in percents, percents
    assert all(re.fullmatch(r"\d+%", text) for text in percents), percents
    page.goto(f"{server.url}/jobs/{job_id}")
    page.screenshot(path=tmp_path / f"job-{width}.png", full_page=True)
    expect(page.locator(".pct").first).to_have_text("14%")

    # One label per field: "Type" names the filter, "Job type" the new job's.
    page.goto(f"{server.url}/")
    labels = page.evaluate(LABELS)
    assert len(labels) == len(set(labels)), labels
    expect(page.get_by_label("Job type")).to_be_visible()
    expect(page.get_by_label("Type", exact=True)).to_have_attribute("name", "type")

    # The limits card ends with its figures: no empty area below them.
    card = box(page, "section[aria-labelledby=limits-title]")
    figures = box(page, "section[aria-labelledby=limits-title] dl")
    assert card["y"] + card["height"] - (figures["y"] + figures["height"]) < 40

    # A favicon, and nothing else missing.
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon is not None
    assert page.request.get(f"{server.url}{icon}").ok
    assert failed == []


@pytest.mark.parametrize("width", WIDTHS)
def test_the_throughput_chart_has_axes_and_units(
    page: Page, server: Server, busy_user: tuple[str, str], width: int, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    failed = failures(page)
    sign_in(page, server, server.desk.create_admin_token(f"ops-{uuid.uuid4().hex[:8]}"))
    page.goto(f"{server.url}/admin")
    page.screenshot(path=tmp_path / f"admin-{width}.png", full_page=True)

    frame = page.locator(".chart-frame")
    expect(frame.locator(".y-unit")).to_have_text("jobs / min")
    expect(frame.locator(".x-axis")).to_contain_text("60 min ago")
    expect(frame.locator(".x-axis")).to_contain_text("now")
    ticks = frame.locator(".y-axis span")
    expect(ticks).to_have_count(3)
    assert ticks.last.inner_text() == "0"
    peak = int(ticks.first.inner_text())
    assert peak >= 1

    # The y labels sit at the plot's top and bottom, the x labels under the plot.
    plot = box(page, ".chart")
    top, bottom = ticks.first.bounding_box(), ticks.last.bounding_box()
    assert top is not None
    assert bottom is not None
    assert abs(top["y"] + top["height"] / 2 - plot["y"]) < 12
    assert abs(bottom["y"] + bottom["height"] / 2 - (plot["y"] + plot["height"])) < 12
    assert top["x"] + top["width"] <= plot["x"]
    x_axis = box(page, ".chart-frame .x-axis")
    assert x_axis["y"] >= plot["y"] + plot["height"] - 1
    assert x_axis["x"] + x_axis["width"] <= width
    assert failed == []
