"""The dashboard's groups page over HTTP, on every store: rows that open into their jobs,
cancel and retry with CSRF, and another user's group as a 404."""

from __future__ import annotations

from jobdesk import JobSpec
from tests.acceptance.conftest import Api
from tests.acceptance.test_dashboard_http import csrf_of, signed_in


async def test_a_group_row_opens_into_its_jobs_and_can_be_cancelled_then_retried(
    api: Api,
) -> None:
    group = await api.desk.create_group(
        "alice", [JobSpec("episode", {"n": n}) for n in range(3)], name="The book"
    )
    await signed_in(api.client, await api.desk.create_user_token("alice"))
    listed = await api.client.get("/groups")
    assert listed.status_code == 200
    assert "The book" in listed.text
    assert f"/groups?open={group.id}" in listed.text
    opened = await api.client.get("/groups", params={"open": group.id})
    jobs = await api.desk.get_group_jobs(group.id, "alice")
    assert all(f"/jobs/{job.id}" in opened.text for job in jobs)

    worker = await api.desk.verify_worker_token(await api.desk.create_worker_token("w1"))
    started = await api.desk.start_job(worker, jobs[0].id)
    await api.desk.fail_job(worker, started.id, "no", retryable=False, attempt=started.attempt)
    csrf = await csrf_of(api.client, "/groups")
    refused = await api.client.post(f"/groups/{group.id}/cancel", data={"csrf_token": "0" * 32})
    assert refused.status_code == 403
    cancelled = await api.client.post(f"/groups/{group.id}/cancel", data={"csrf_token": csrf})
    assert cancelled.status_code == 303
    assert (await api.desk.get_group(group.id, "alice")).status.value == "cancelled"
    page = await api.client.get(cancelled.headers["location"])
    assert "Group cancelled." in page.text
    retried = await api.client.post(f"/groups/{group.id}/retry", data={"csrf_token": csrf})
    assert retried.status_code == 303
    assert (await api.desk.get_group(group.id, "alice")).status.value == "running"


async def test_another_users_group_is_a_404_page(api: Api) -> None:
    group = await api.desk.create_group("alice", [JobSpec("episode", {"n": 1})])
    await signed_in(api.client, await api.desk.create_user_token("mallory"))
    assert (await api.client.get("/groups", params={"open": group.id})).status_code == 404
    csrf = await csrf_of(api.client, "/groups")
    response = await api.client.post(f"/groups/{group.id}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 404
    assert (await api.desk.get_group(group.id, "alice")).status.value == "pending"
