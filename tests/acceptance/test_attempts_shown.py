"""Attempts read the same on every face: the API, the CLI (JSON and table), the dashboard."""

from __future__ import annotations

import asyncio
import re

from jobdesk import JobStatus
from tests.acceptance.conftest import Api
from tests.acceptance.test_cli import jobdesk, json_of
from tests.acceptance.test_dashboard_http import signed_in


async def test_a_released_then_retried_job_reads_the_same_on_every_face(
    api: Api, store_url: str
) -> None:
    desk = api.desk
    job = await desk.create_job("alice", "extract", {}, max_attempts=3)
    worker = await desk.verify_worker_token(await desk.create_worker_token("w"))
    [held] = await desk.claim_jobs(worker)
    await desk.release_job(worker, job.id, attempt=held.attempt)  # handed back: not spent
    [held] = await desk.claim_jobs(worker)
    await desk.fail_job(worker, job.id, "broken", retryable=False, attempt=held.attempt)
    await desk.retry_job(job.id, "alice")  # a fresh budget
    [held] = await desk.claim_jobs(worker)
    assert held.status is JobStatus.PROCESSING
    assert held.attempt == 3  # the third start, but the first of this budget
    assert (held.attempts_used, held.max_attempts) == (1, 3)

    over_http = await api.client.get(f"/api/v1/jobs/{job.id}", headers=await api.user("alice"))
    body = over_http.json()
    assert (body["attempts_used"], body["max_attempts"], body["attempts_left"]) == (1, 3, 2)

    listed = json_of(await asyncio.to_thread(jobdesk, "jobs", "list", "-u", "alice", "--json",
                                             db=store_url))  # fmt: skip
    [item] = listed["items"]
    assert (item["attempts_used"], item["max_attempts"], item["attempts_left"]) == (1, 3, 2)
    assert item["updated_at"] == body["updated_at"]  # the same encoder: Z times

    table = await asyncio.to_thread(jobdesk, "jobs", "list", "-u", "alice", db=store_url)
    [row] = [line for line in table.stdout.splitlines() if job.id in line]
    assert re.split(r"\s{2,}", row.strip())[3] == "1 of 3"  # id, status, progress, attempts

    await signed_in(api.client, await desk.create_user_token("alice"))
    listing = (await api.client.get("/")).text
    assert '<td data-label="Attempt">1 of 3</td>' in listing
    page = (await api.client.get(f"/jobs/{job.id}")).text
    assert "<dt>Attempt</dt><dd>1 of 3</dd>" in page
