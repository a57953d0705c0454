"""The dashboard in a real browser: sign in, create, watch, filter, cancel, retry, refusals,
ownership and the operator's pages.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from jobdesk import JobStatus
from tests.browser.conftest import Server, sign_in, wait_for_live_updates


def _no_reload_marker(page: Page) -> None:
    page.evaluate("window.__sameDocument = true")


def _still_same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def test_a_user_signs_in_with_a_token_and_signs_out(page: Page, server: Server) -> None:
    user_id, token = server.user()
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/signin")

    page.get_by_label("Token").fill("jdu_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Not signed in")

    sign_in(page, server, token)
    expect(page.get_by_role("heading", name="My jobs", exact=True)).to_be_visible()
    expect(page.get_by_text(user_id)).to_be_visible()
    [cookie] = [c for c in page.context.cookies() if c["name"] == "jobdesk_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # no script can read either cookie

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(server.url + "/signin")
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/signin")


def test_sign_in_and_create_work_from_the_keyboard(page: Page, server: Server) -> None:
    _, token = server.user()
    page.goto(server.url + "/signin")
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "token":
            break
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="My jobs", exact=True)).to_be_visible()
    page.get_by_label("Job type").focus()
    page.keyboard.type("keyboard_job")
    page.keyboard.press("Tab")  # to the project
    page.keyboard.press("Tab")  # to the input
    page.keyboard.press("Control+A")
    page.keyboard.type('{"from": "keys"}')
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Create job"
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Job created.")


def test_a_created_job_shows_its_progress_and_completion_without_a_reload(
    page: Page, server: Server
) -> None:
    user_id, token = server.user()
    sign_in(page, server, token)
    page.get_by_label("Job type").fill("character_extraction")
    page.get_by_label("Project (optional)").fill("show-1")
    page.get_by_label("Input (JSON)").fill('{"episode_ids": ["ep-1", "ep-2"]}')
    page.get_by_role("button", name="Create job").click()
    expect(page.get_by_role("status")).to_have_text("Job created.")
    job_id = page.url.split("/jobs/")[1].split("?")[0]
    live = page.locator("#live")
    expect(live.locator("#job-status")).to_contain_text("pending")
    wait_for_live_updates(page)
    _no_reload_marker(page)

    worker = server.desk.verify_worker_token(server.desk.create_worker_token(f"w-{user_id}"))
    [claimed] = server.desk.claim_jobs(worker, types=["character_extraction"])
    assert claimed.id == job_id
    expect(live.locator("#job-status")).to_contain_text("processing")
    bar = live.locator("progress")
    for percent, message in ((25, "episode 1 of 4"), (60, "episode 3 of 4")):
        server.desk.update_job_progress(worker, job_id, percent, message, attempt=claimed.attempt)
        expect(bar).to_have_attribute("value", str(percent))
        expect(live.locator(".progress-message")).to_have_text(message)
    server.desk.complete_job(worker, job_id, {"characters": ["Ann"]}, attempt=claimed.attempt)
    expect(live.locator("#job-status")).to_contain_text("completed")
    expect(bar).to_have_attribute("value", "100")
    expect(live.locator("pre")).to_contain_text('"Ann"')
    expect(live.locator(".timeline li")).to_have_count(3)
    assert _still_same_document(page)


def test_the_list_shows_new_jobs_and_moves_their_progress_bars_live(
    page: Page, server: Server
) -> None:
    user_id, token = server.user()
    first = server.desk.create_job(user_id, "live_list", {"n": 1})
    sign_in(page, server, token)
    expect(page.locator(f"#job-{first.id}")).to_be_visible()
    wait_for_live_updates(page)
    _no_reload_marker(page)

    second = server.desk.create_job(user_id, "live_list", {"n": 2})
    row = page.locator(f"#job-{second.id}")
    expect(row).to_be_visible()
    expect(page.locator("tr.job").first).to_have_id(f"job-{second.id}")  # newest first
    worker = server.desk.verify_worker_token(server.desk.create_worker_token(f"w-{user_id}"))
    claimed = server.desk.start_job(worker, second.id)
    server.desk.update_job_progress(worker, second.id, 42, "halfway", attempt=claimed.attempt)
    expect(row.locator("progress")).to_have_attribute("value", "42")
    expect(row).to_contain_text("halfway")
    server.desk.complete_job(worker, second.id, None, attempt=claimed.attempt)
    expect(row.locator(".badge")).to_have_text(re.compile(r"completed"))
    assert _still_same_document(page)


def test_filters_by_status_type_and_project_and_loads_more(page: Page, server: Server) -> None:
    user_id, token = server.user()
    server.desk.set_user_limits(user_id, max_waiting=100)
    worker = server.desk.verify_worker_token(server.desk.create_worker_token(f"w-{user_id}"))
    for number in range(30):
        server.desk.create_job(user_id, "bulk", {"n": number}, "p-bulk")
    alpha = server.desk.create_job(user_id, "alpha", {}, "p-one")
    beta = server.desk.create_job(user_id, "beta", {}, "p-two")
    cancelled = server.desk.cancel_job(
        server.desk.create_job(user_id, "alpha", {}, "p-two").id, user_id
    )
    started = server.desk.start_job(worker, beta.id)
    assert started.status is JobStatus.PROCESSING

    sign_in(page, server, token)
    rows = page.locator("tr.job")
    expect(rows).to_have_count(25)
    page.get_by_role("link", name="Load more jobs").click()
    expect(rows).to_have_count(33)
    expect(page.get_by_role("link", name="Load more jobs")).to_have_count(0)

    page.get_by_label("Type", exact=True).fill("alpha")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    page.get_by_label("cancelled").check()
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id(f"job-{cancelled.id}")

    page.goto(server.url + "/?status=pending&status=processing&project=p-two")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id(f"job-{beta.id}")
    expect(page.get_by_label("processing")).to_be_checked()
    page.goto(server.url + "/?project=p-one")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id(f"job-{alpha.id}")


def test_cancelling_a_pending_job(page: Page, server: Server) -> None:
    user_id, token = server.user()
    job = server.desk.create_job(user_id, "to_cancel", {})
    sign_in(page, server, token)
    page.goto(f"{server.url}/jobs/{job.id}")
    expect(page.get_by_role("button", name="Retry job")).to_have_count(0)
    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_role("status")).to_have_text("Job cancelled.")
    expect(page.locator("#job-status")).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert server.desk.get_job_status(job.id, user_id).status is JobStatus.CANCELLED


def test_retrying_a_failed_job_shows_its_error_and_attempts(page: Page, server: Server) -> None:
    user_id, token = server.user()
    worker = server.desk.verify_worker_token(server.desk.create_worker_token(f"w-{user_id}"))
    job = server.desk.create_job(user_id, "to_retry", {})
    claimed = server.desk.start_job(worker, job.id)
    server.desk.fail_job(
        worker, job.id, {"message": "GPU out of memory", "code": "oom"}, retryable=False,
        attempt=claimed.attempt,
    )  # fmt: skip
    sign_in(page, server, token)
    page.goto(f"{server.url}/jobs/{job.id}")
    expect(page.locator(".job-error")).to_contain_text("GPU out of memory")
    expect(page.locator(".timeline .event-error")).to_contain_text("GPU out of memory")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    page.get_by_role("button", name="Retry job").click()
    expect(page.get_by_role("status")).to_have_text("Job queued again.")
    expect(page.locator("#job-status")).to_contain_text("pending")
    expect(page.locator(".timeline li")).to_have_count(4)
    assert server.desk.get_job_status(job.id, user_id).status is JobStatus.PENDING


def test_a_refused_action_says_why_and_when_it_frees_up(page: Page, server: Server) -> None:
    user_id, token = server.user()
    worker = server.desk.verify_worker_token(server.desk.create_worker_token(f"w-{user_id}"))
    failed = server.desk.create_job(user_id, "refused", {})
    claimed = server.desk.start_job(worker, failed.id)
    server.desk.fail_job(worker, failed.id, "no", retryable=False, attempt=claimed.attempt)
    server.desk.create_job(user_id, "refused", {})
    # Room in the day (a retry counts as a creation), none among the waiting jobs.
    server.desk.set_user_limits(user_id, max_waiting=1, max_daily=3)

    sign_in(page, server, token)
    expect(page.locator("#usage-waiting")).to_have_text("1")
    page.goto(f"{server.url}/jobs/{failed.id}")
    page.get_by_role("button", name="Retry job").click()
    expect(page.get_by_role("alert")).to_contain_text("1 waiting job, the most allowed")
    expect(page.locator("#job-status")).to_contain_text("failed")

    # Now room among the waiting jobs, none in the day: the two creations filled it.
    server.desk.set_user_limits(user_id, max_waiting=10, max_daily=2)
    page.goto(server.url + "/")
    page.get_by_label("Job type").fill("refused")
    page.get_by_role("button", name="Create job").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("2 jobs today")
    expect(alert).to_contain_text(re.compile(r"starts again at \d{4}-\d\d-\d\d 00:00 UTC"))

    page.get_by_label("Job type").fill("Not A Type!")
    page.get_by_label("Input (JSON)").fill("{oops")
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("#input-error")).to_contain_text("input must be valid JSON")
    expect(page.get_by_label("Input (JSON)")).to_have_attribute("aria-invalid", "true")


def test_a_user_never_sees_another_users_job(page: Page, server: Server) -> None:
    alice, alice_token = server.user()
    bob, _ = server.user()
    bobs = server.desk.create_job(bob, "secret", {"bob": True})
    server.desk.create_job(alice, "mine", {})
    sign_in(page, server, alice_token)
    wait_for_live_updates(page)
    worker = server.desk.verify_worker_token(server.desk.create_worker_token(f"w-{bob}"))
    claimed = server.desk.start_job(worker, bobs.id)
    server.desk.update_job_progress(worker, bobs.id, 50, "bob's", attempt=claimed.attempt)
    later = server.desk.create_job(alice, "mine", {})
    expect(page.locator(f"#job-{later.id}")).to_be_visible()  # the stream delivered
    assert bobs.id not in page.content()

    response = page.goto(f"{server.url}/jobs/{bobs.id}")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()
    assert "secret" not in page.content()
    stream = page.request.get(f"{server.url}/jobs/{bobs.id}/events")  # with the cookie
    assert stream.status == 404


def test_admin_pages_refuse_a_user_token_and_serve_an_admin(page: Page, server: Server) -> None:
    user_id, token = server.user()
    worker_name = f"gpu-{user_id}"
    worker = server.desk.verify_worker_token(server.desk.create_worker_token(worker_name))
    failing = server.desk.create_job(user_id, "admin_view", {})
    claimed = server.desk.start_job(worker, failing.id)
    server.desk.fail_job(worker, failing.id, "disk full", retryable=False, attempt=claimed.attempt)
    held = server.desk.create_job(user_id, "admin_view", {})
    server.desk.start_job(worker, held.id)

    sign_in(page, server, token)
    response = page.goto(server.url + "/admin")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="Admin token needed")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, server, server.desk.create_admin_token(f"ops-{user_id}"))
    expect(page).to_have_url(server.url + "/admin")
    expect(page.get_by_role("heading", name="Operator")).to_be_visible()
    workers = page.locator("section", has=page.get_by_role("heading", name=re.compile("Workers")))
    expect(workers.get_by_role("row", name=re.compile(worker_name))).to_contain_text("1")
    failed = page.locator("section", has=page.get_by_role("heading", name=re.compile("Failed")))
    expect(failed).to_contain_text("disk full")
    expect(page.get_by_role("img", name=re.compile("Jobs per minute"))).to_be_visible()
    busiest = page.locator("section", has=page.get_by_role("heading", name="Busiest users"))
    expect(busiest.get_by_role("row", name=re.compile(user_id))).to_be_visible()

    page.get_by_label("Find a job id or a user id").fill(failing.id)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(f"{server.url}/admin/jobs/{failing.id}")
    expect(page.locator(".job-error")).to_contain_text("disk full")
    page.get_by_role("link", name=user_id).first.click()
    expect(page.get_by_role("heading", name=f"User {user_id}")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(2)
