"""A user who retries a failing job without end: every retry is a creation for the daily
limit, so neither attempts nor history rows grow past what the user may create a day."""

from __future__ import annotations

from jobdesk import JobDesk
from tests.acceptance.conftest import Api


async def test_retries_count_against_the_daily_limit(api: Api, desk: JobDesk) -> None:
    headers = await api.user("mallory")
    await desk.set_user_limits("mallory", max_daily=3)
    worker = await desk.verify_worker_token(await desk.create_worker_token("w-retries"))
    created = await api.client.post(
        "/api/v1/jobs", json={"type": "flaky", "input": {}, "max_attempts": 1}, headers=headers
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    refusal = None
    for _ in range(5):
        [claimed] = await desk.claim_jobs(worker)
        await desk.fail_job(worker, job_id, "boom", retryable=False, attempt=claimed.attempt)
        retried = await api.client.post(f"/api/v1/jobs/{job_id}/retry", headers=headers)
        if retried.status_code != 200:
            refusal = retried
            break
    # One creation and two retries fill the day; the third retry is refused.
    assert refusal is not None
    assert refusal.status_code == 429
    assert refusal.json()["limit"] == "daily"
    assert "Retry-After" in refusal.headers
    history = await desk.get_job_history(job_id, "mallory")
    assert [event.status.value for event in history].count("pending") == 3
