"""The dashboard's routes over HTTP, on every store: sessions, cookies, CSRF, ownership
and the admin pages' refusals. (tests/browser drives the same pages in Chromium.)
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from jobdesk import JobStatus
from tests.acceptance.conftest import JWT_SECRET, Api, MakeApp, running

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


async def csrf_of(client: httpx.AsyncClient, path: str = "/signin") -> str:
    """The CSRF token of the form on ``path``."""
    response = await client.get(path)
    match = _CSRF.search(response.text)
    assert match is not None, response.text
    return match.group(1)


async def signed_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    """Sign in through the form; the client keeps the cookies."""
    csrf = await csrf_of(client)
    return await client.post("/signin", data={"token": token, "csrf_token": csrf})


async def test_signing_in_sets_an_httponly_samesite_cookie_and_signing_out_clears_it(
    api: Api,
) -> None:
    token = await api.desk.create_user_token("alice")
    response = await signed_in(api.client, token)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    [session] = [c for c in response.headers.get_list("set-cookie") if "jobdesk_session=" in c]
    assert "HttpOnly" in session
    assert "SameSite=lax" in session
    assert "Secure" not in session  # plain http here
    assert (await api.client.get("/")).status_code == 200

    csrf = await csrf_of(api.client, "/")
    response = await api.client.post("/signout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert (await api.client.get("/")).headers["location"] == "/signin"


async def test_the_cookies_are_secure_over_https(api: Api) -> None:
    token = await api.desk.create_user_token("alice")
    transport = httpx.ASGITransport(api.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        response = await signed_in(client, token)
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("jobdesk_session=") and "Secure" in c for c in cookies)
    async with httpx.AsyncClient(transport=transport, base_url="https://x") as client:
        page = await client.get("/signin")
    assert "Secure" in page.headers["set-cookie"]
    assert "SameSite=strict" in page.headers["set-cookie"]


async def test_a_jwt_signs_in_and_a_worker_token_does_not(api: Api) -> None:
    import jwt  # noqa: PLC0415

    assert (
        await signed_in(api.client, await api.desk.create_worker_token("w1"))
    ).status_code == 401
    claims = {"sub": "carol", "exp": 4_102_444_800}
    response = await signed_in(api.client, jwt.encode(claims, JWT_SECRET, algorithm="HS256"))
    assert response.status_code == 303
    assert "carol" in (await api.client.get("/")).text


async def test_a_revoked_token_ends_the_session(api: Api) -> None:
    await signed_in(api.client, await api.desk.create_user_token("alice"))
    assert (await api.client.get("/")).status_code == 200
    await api.desk.revoke_user_tokens("alice")
    response = await api.client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"


async def test_a_post_without_the_sessions_csrf_token_changes_nothing(api: Api) -> None:
    await signed_in(api.client, await api.desk.create_user_token("alice"))
    form = {"type": "extract", "input": "{}"}
    assert (await api.client.post("/jobs", data=form)).status_code == 403
    transport = httpx.ASGITransport(api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as stranger:
        stale = await csrf_of(stranger)  # another browser's form
    assert (await api.client.post("/jobs", data={**form, "csrf_token": stale})).status_code == 403
    job = await api.desk.create_job("alice", "extract", {})
    response = await api.client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": "0" * 64})
    assert response.status_code == 403
    assert (await api.desk.get_job_status(job.id, "alice")).status is JobStatus.PENDING
    assert len((await api.desk.get_user_jobs("alice")).items) == 1

    csrf = await csrf_of(api.client, "/")
    response = await api.client.post("/jobs", data={**form, "csrf_token": csrf})
    assert response.status_code == 303
    header = {"X-CSRF-Token": csrf}
    response = await api.client.post(f"/jobs/{job.id}/cancel", headers=header)
    assert response.status_code == 303
    assert len((await api.desk.get_user_jobs("alice")).items) == 2


async def test_another_users_job_is_not_found_on_every_route(api: Api) -> None:
    bobs = await api.desk.create_job("bob", "extract", {"secret": "bob"})
    await signed_in(api.client, await api.desk.create_user_token("alice"))
    csrf = await csrf_of(api.client, "/")
    missing = "0" * 26
    for job_id in (bobs.id, missing):
        page = await api.client.get(f"/jobs/{job_id}")
        assert page.status_code == 404
        assert "secret" not in page.text
        assert (await api.client.get(f"/jobs/{job_id}/events")).status_code == 404
        for action in ("cancel", "retry"):
            response = await api.client.post(f"/jobs/{job_id}/{action}", data={"csrf_token": csrf})
            assert response.status_code == 404
    assert (await api.desk.get_job_status(bobs.id, "bob")).status is JobStatus.PENDING
    assert bobs.id not in (await api.client.get("/")).text
    assert bobs.id not in (await api.client.get("/rows")).text


async def test_admin_pages_refuse_users_and_strangers(api: Api) -> None:
    job = await api.desk.create_job("alice", "extract", {})
    paths = ["/admin", f"/admin/jobs/{job.id}", "/admin/users/alice", "/admin/search?q=alice"]
    for path in paths:
        response = await api.client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/signin"
    await signed_in(api.client, await api.desk.create_user_token("alice"))
    for path in paths:
        response = await api.client.get(path)
        assert response.status_code == 403, path
        assert "Admin token needed" in response.text


async def test_an_admin_sees_every_users_job_and_the_queue(api: Api) -> None:
    worker = await api.desk.verify_worker_token(await api.desk.create_worker_token("gpu-1"))
    job = await api.desk.create_job("alice", "extract", {})
    claimed = await api.desk.start_job(worker, job.id)
    await api.desk.fail_job(worker, job.id, "disk full", retryable=False, attempt=claimed.attempt)
    response = await signed_in(api.client, await api.desk.create_admin_token("ops"))
    assert response.headers["location"] == "/admin"
    overview = await api.client.get("/admin")
    assert overview.status_code == 200
    assert "disk full" in overview.text
    assert "gpu-1" in overview.text
    found = await api.client.get(f"/admin/search?q={job.id.lower()}")
    assert found.headers["location"] == f"/admin/jobs/{job.id}"
    detail = await api.client.get(f"/admin/jobs/{job.id}")
    assert detail.status_code == 200
    assert "disk full" in detail.text
    assert (await api.client.get("/admin/users/alice")).status_code == 200
    assert (await api.client.get(f"/admin/jobs/{'0' * 26}")).status_code == 404
    assert (await api.client.get("/")).headers["location"] == "/admin"


async def test_bad_filters_and_cursors_are_reported_not_applied(api: Api) -> None:
    await signed_in(api.client, await api.desk.create_user_token("alice"))
    page = await api.client.get("/?status=done")
    assert page.status_code == 200
    assert "status must be one of pending" in page.text
    page = await api.client.get("/?cursor=not-a-cursor")
    assert "cursor" in page.text
    assert (await api.client.get("/rows?cursor=not-a-cursor")).status_code == 422


@pytest.mark.parametrize("path", ["/", "/signin", "/admin", "/jobs/{id}", "/events"])
async def test_dashboard_routes_stay_out_of_the_api_schema(api: Api, path: str) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert path not in schema["paths"]
    assert all(
        route.startswith(("/api/v1", "/healthz", "/readyz", "/metrics"))
        for route in schema["paths"]
    )


async def test_the_vendored_assets_are_served_with_their_licences(api: Api) -> None:
    for name in ("htmx.min.js", "htmx-ext-sse.min.js", "dashboard.css"):
        assert (await api.client.get(f"/static/{name}")).status_code == 200
    for name in ("htmx.LICENSE", "htmx-ext-sse.LICENSE"):
        licence = await api.client.get(f"/static/{name}")
        assert "Permission" in licence.text or "BSD" in licence.text
    page = (await api.client.get("/signin")).text
    assert "https://" not in page  # nothing from a CDN


async def test_pages_forbid_framing_and_anything_but_their_own_scripts(api: Api) -> None:
    job = await api.desk.create_job("alice", "extract", {})
    pages = [await api.client.get("/signin")]
    await signed_in(api.client, await api.desk.create_user_token("alice"))
    pages += [await api.client.get(path) for path in ("/", f"/jobs/{job.id}", "/jobs/" + "0" * 26)]
    for page in pages:
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        for directive in (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ):
            assert directive in policy
        assert "unsafe" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text  # nothing inline: the policy would refuse it
        assert " style=" not in page.text


async def test_the_input_field_is_as_long_as_the_body_limit_allows(make_app: MakeApp) -> None:
    app = make_app(max_body_bytes=40_960)
    async with running(app) as client:
        desk = app.state.jobdesk.require_desk()
        await signed_in(client, await desk.create_user_token("alice"))
        page = (await client.get("/")).text
    # a character of the field is at most 9 bytes of the form's body (%XX%XX%XX), and
    # 4 KiB are kept for the other fields
    assert 'maxlength="4096"' in page
    assert "At most 4,096 characters." in page
    assert 'name="type"' in page
    assert 'maxlength="64"' in page
    assert 'maxlength="128"' in page


async def test_a_form_over_the_body_limit_gets_the_page_with_the_error(
    make_app: MakeApp,
) -> None:
    app = make_app(max_body_bytes=10_000)
    async with running(app) as client:
        desk = app.state.jobdesk.require_desk()
        await signed_in(client, await desk.create_user_token("alice"))
        csrf = await csrf_of(client, "/")
        body = f"csrf_token={csrf}&type=extract&input=".encode() + b"%22" * 5_000

        async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for start in range(0, len(body), 1000):
                yield body[start : start + 1000]

        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = await client.post("/jobs", content=streamed(), headers=headers)
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("text/html")
        assert 'id="input-error"' in response.text
        assert "over the 10,000 bytes the server accepts" in response.text
        assert 'aria-invalid="true"' in response.text

        signout = await client.post("/signout", content=streamed(), headers=headers)
        assert signout.status_code == 413
        assert "Form too large" in signout.text

        # As a browser sends it, its size declared up front: the same page.
        declared = await client.post("/jobs", content=body, headers=headers)
        assert declared.status_code == 413
        assert declared.headers["content-type"].startswith("text/html")
        assert 'id="input-error"' in declared.text
        assert (await desk.get_user_jobs("alice")).items == []

        # The API refuses a declared size before reading the body, as a problem.
        api = await client.post("/api/v1/jobs", content=body, headers=headers)
        assert (api.status_code, api.headers["content-type"]) == (413, "application/problem+json")
