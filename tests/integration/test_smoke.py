"""The quickstart of the README, end to end on every store."""

from __future__ import annotations

from jobdesk import JobDesk, JobStatus, Worker


async def test_a_job_goes_from_create_to_completed(desk: JobDesk, worker: Worker) -> None:
    job = await desk.create_job("user-1", "character_extraction", {"episode_ids": ["ep-1"]})
    [claimed] = await desk.claim_jobs(worker, limit=1)
    assert claimed.id == job.id
    reply = await desk.update_job_progress(worker, job.id, 40, "3 of 8", attempt=claimed.attempt)
    assert reply.cancel_requested is False
    done = await desk.complete_job(worker, job.id, {"characters": []}, attempt=claimed.attempt)
    assert done.status is JobStatus.COMPLETED
    assert (await desk.get_job_status(job.id, "user-1")).result == {"characters": []}
