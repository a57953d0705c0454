"""What users and workers write is shown as text, never run: on whole pages and in the
fragments live updates swap in. The pages work under their Content-Security-Policy, and
the create form stops an input before it outgrows the server's body limit.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

from playwright.sync_api import Page, expect

from jobdesk.http import Settings
from jobdesk.http.dashboard.forms import input_maxlength
from tests.browser.conftest import Server, sign_in, wait_for_live_updates

MARKUP = "<script>window.__xss=1</script><img src=x onerror=window.__xss=1>"

#: elements that only injected markup would make (the pages have no <img>, and their only
#: scripts are htmx's two, in <head>)
INJECTED = "main script, body img, main iframe, main object"


def _assert_shown_as_text(page: Page, where: str = "main") -> None:
    assert page.locator(INJECTED).count() == 0, page.content()
    assert page.evaluate("window.__xss") is None
    assert MARKUP in page.locator(where).inner_text()


def _no_csp_violation(page: Page) -> None:
    assert page.evaluate("window.__cspViolations || []") == []


def test_markup_in_a_jobs_data_is_shown_as_text_on_every_page(page: Page, server: Server) -> None:
    user_id = f"user-{uuid.uuid4().hex[:8]}{MARKUP}"
    desk = server.desk
    desk.set_user_limits(user_id, max_waiting=10)
    worker = desk.verify_worker_token(desk.create_worker_token(f"w-{uuid.uuid4().hex[:8]}"))
    running = desk.create_job(user_id, "markup", {"html": MARKUP}, MARKUP)
    failed = desk.create_job(user_id, "markup", {"html": MARKUP}, MARKUP)
    done = desk.create_job(user_id, "markup", {"html": MARKUP}, MARKUP)
    for job in (running, failed, done):
        desk.start_job(worker, job.id)
    desk.update_job_progress(worker, running.id, 10, MARKUP, attempt=1)
    desk.fail_job(worker, failed.id, {"message": MARKUP, "details": {"html": MARKUP}},
                  retryable=False, attempt=1)  # fmt: skip
    desk.complete_job(worker, done.id, {"html": MARKUP}, attempt=1)

    sign_in(page, server, desk.create_user_token(user_id))
    for path in ("/", f"/jobs/{running.id}", f"/jobs/{failed.id}", f"/jobs/{done.id}"):
        page.goto(server.url + path)
        _assert_shown_as_text(page)
        assert MARKUP in page.locator("header").inner_text()  # the user id
    expect(page.locator("#live pre")).to_contain_text(MARKUP)  # the result, as text

    page.context.clear_cookies()
    sign_in(page, server, desk.create_admin_token(f"ops-{uuid.uuid4().hex[:8]}"))
    for path in ("/admin", f"/admin/jobs/{failed.id}", f"/admin/users/{quote(user_id, safe='')}"):
        page.goto(server.url + path)
        _assert_shown_as_text(page)
    _no_csp_violation(page)


def test_markup_in_live_updates_is_shown_as_text(page: Page, server: Server) -> None:
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    desk = server.desk
    worker = desk.verify_worker_token(desk.create_worker_token(f"w-{uuid.uuid4().hex[:8]}"))
    first = desk.create_job(user_id, "markup", {}, "plain")
    sign_in(page, server, desk.create_user_token(user_id))
    expect(page.locator(f"#job-{first.id}")).to_be_visible()
    wait_for_live_updates(page)

    # the list: a new row (the "created" event), then its cells (a "job-<id>" event)
    second = desk.create_job(user_id, "markup", {"html": MARKUP}, MARKUP)
    row = page.locator(f"#job-{second.id}")
    expect(row).to_contain_text(MARKUP)
    desk.start_job(worker, second.id)
    desk.update_job_progress(worker, second.id, 20, MARKUP, attempt=1)
    expect(row.locator(".progress-message")).to_have_text(MARKUP)
    _assert_shown_as_text(page, "#job-rows")

    # a job's page: the live panel (the "job" event) with a message, then an error
    page.goto(f"{server.url}/jobs/{second.id}")
    wait_for_live_updates(page)
    desk.update_job_progress(worker, second.id, 40, f"{MARKUP} again", attempt=1)
    live = page.locator("#live")
    expect(live.locator(".progress-message")).to_have_text(f"{MARKUP} again")
    desk.fail_job(worker, second.id, MARKUP, retryable=False, attempt=1)
    expect(live.locator(".job-error")).to_contain_text(MARKUP)
    _assert_shown_as_text(page, "#live")
    _no_csp_violation(page)


def test_pages_work_under_their_content_security_policy(page: Page, server: Server) -> None:
    user_id, token = server.user()
    server.desk.set_user_limits(user_id, max_waiting=40)
    for number in range(30):
        server.desk.create_job(user_id, "csp", {"n": number})
    response = page.goto(server.url + "/signin")
    assert response is not None
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    sign_in(page, server, token)
    rows = page.locator("tr.job")
    expect(rows).to_have_count(25)
    page.get_by_role("link", name="Load more jobs").click()  # htmx's GET and swap
    expect(rows).to_have_count(30)
    wait_for_live_updates(page)  # htmx-ext-sse's event stream
    newest = server.desk.create_job(user_id, "csp", {"n": 30})
    expect(page.locator(f"#job-{newest.id}")).to_be_visible()
    # the focus ring is the stylesheet's, not the browser's default
    page.get_by_role("button", name="Filter").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineColor")
    assert outline == "rgb(180, 83, 9)"
    _no_csp_violation(page)


def test_the_input_field_stops_at_what_the_body_limit_allows(page: Page, server: Server) -> None:
    _, token = server.user()
    sign_in(page, server, token)
    field = page.get_by_label("Input (JSON)")
    most = input_maxlength(Settings())
    assert field.get_attribute("maxlength") == str(most)
    expect(page.locator("#new-input-help")).to_contain_text(f"{most:,} characters")
    field.fill("")
    field.press("Control+A")
    page.keyboard.insert_text('{"text": "' + "é" * most + '"}')  # a paste: the browser cuts it
    assert len(field.input_value()) == most
    page.get_by_label("Job type").fill("too_long")
    with page.expect_response(lambda response: response.url.endswith("/jobs")) as posted:
        page.get_by_role("button", name="Create job").click()
    assert posted.value.status == 422  # the page, not the body limit's refusal
    expect(page.locator("#input-error")).to_contain_text(
        f"the field holds at most {most:,} characters"
    )
    expect(field).to_have_attribute("aria-invalid", "true")
