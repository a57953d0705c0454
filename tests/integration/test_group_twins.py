"""The group rules once: what the stores' SQL restates agrees with jobdesk.groups and limits.

- ``groups_to_finish`` (both stores) restates :func:`jobdesk.groups.is_finished`: a group
  is offered for its fan-in exactly when the Python rule, over the counts the store
  reports, says none of its jobs is active;
- ``jobdesk.create_group`` (PostgreSQL migration 0009) restates the admission of
  :func:`jobdesk.limits.check_daily` and :func:`~jobdesk.limits.check_waiting` for a whole
  group: every row of the table below is judged by Python and by each store alike
  (``PostgresStore`` also checks each answer against the Python rule, and fails loudly on
  a disagreement).
"""

from __future__ import annotations

import re

import pytest

from jobdesk import FanIn, JobDesk, JobSpec, Worker
from jobdesk.errors import RateLimited
from jobdesk.groups import is_finished
from jobdesk.limits import check_daily, check_waiting
from jobdesk.store.postgres import migrations
from jobdesk.testing import ManualClock
from tests.integration.test_rule_twins import python_object, twin_lines

GROUP_TWINS = {
    "sqlite_groups.sql": {"groups_to_finish"},
    "postgres_groups.sql": {"create_group", "groups_to_finish"},
}


@pytest.mark.parametrize("filename", sorted(GROUP_TWINS))
def test_every_group_sql_twin_names_python_originals_that_exist(filename: str) -> None:
    found = twin_lines(filename)
    assert set(found) == GROUP_TWINS[filename]
    for originals in found.values():
        for original in originals:
            python_object(original)


def test_create_group_names_python_originals_that_exist() -> None:
    [script] = [script for version, script in migrations() if version == 9]
    named = re.findall(r"twin of:\s+((?:jobdesk\.[\w.]+(?:,\s*)?)+)", script)
    originals = [name.strip() for line in named for name in line.split(",") if name.strip()]
    assert "jobdesk.limits.check_daily" in originals
    for original in originals:
        python_object(original)


#: (max_waiting, max_daily, pending jobs held, jobs created today, group size)
ADMISSION = [
    (10, 100, 0, 0, 10),
    (10, 100, 0, 0, 11),
    (10, 100, 7, 7, 3),
    (10, 100, 7, 7, 4),
    (100, 10, 0, 9, 1),
    (100, 10, 0, 9, 2),
    (100, 10, 0, 10, 1),
    (5, 5, 5, 5, 1),
    (0, 100, 0, 0, 1),
]


@pytest.mark.parametrize("row", ADMISSION)
async def test_a_groups_admission_is_the_python_rules(
    desk: JobDesk, clock: ManualClock, row: tuple[int, int, int, int, int]
) -> None:
    max_waiting, max_daily, held, today, size = row
    await desk.set_user_limits("alice", max_waiting=1000, max_daily=1000)
    if today:
        jobs = await desk.create_jobs("alice", [JobSpec("ok", {"n": n}) for n in range(today)])
        for job in jobs[held:]:
            await desk.cancel_job(job.id, "alice")
    await desk.set_user_limits("alice", max_waiting=max_waiting, max_daily=max_daily)
    expected: RateLimited | None = None
    try:
        check_daily(today, max_daily, clock(), size)
        check_waiting(held, max_waiting, size)
    except RateLimited as refusal:
        expected = refusal
    specs = [JobSpec("ok", {"n": n}) for n in range(size)]
    if expected is None:
        group = await desk.create_group("alice", specs)
        assert group.size == size
        assert (await desk.get_user_usage("alice")).waiting == held + size
        return
    with pytest.raises(RateLimited) as caught:
        await desk.create_group("alice", specs)
    refused = caught.value
    assert (refused.limit, refused.allowed, refused.fits, refused.retry_after) == (
        expected.limit,
        expected.allowed,
        expected.fits,
        expected.retry_after,
    )
    assert (await desk.get_user_usage("alice")).waiting == held


async def test_groups_to_finish_offers_exactly_the_groups_python_calls_finished(
    desk: JobDesk, worker: Worker
) -> None:
    async def run(job_id: str, *, fail: bool = False) -> None:
        job = await desk.start_job(worker, job_id)
        if fail:
            await desk.fail_job(worker, job.id, "no", retryable=False, attempt=job.attempt)
        else:
            await desk.complete_job(worker, job.id, attempt=job.attempt)

    made = []
    # (how each of the group's three jobs ends: "done", "fail", "cancel", "run" or "wait")
    shapes = [
        ("done", "done", "done"),
        ("done", "fail", "cancel"),
        ("cancel", "cancel", "cancel"),
        ("done", "done", "wait"),
        ("done", "run", "done"),
        ("wait", "wait", "wait"),
    ]
    for shape in shapes:
        group = await desk.create_group(
            "alice", [JobSpec("ok", {"n": n}) for n in range(3)], on_complete=FanIn("merge")
        )
        for job, end in zip(await desk.get_group_jobs(group.id, "alice"), shape, strict=True):
            if end in ("done", "fail"):
                await run(job.id, fail=end == "fail")
            elif end == "cancel":
                await desk.cancel_job(job.id, "alice")
            elif end == "run":
                await desk.start_job(worker, job.id)
        made.append(await desk.get_group(group.id, "alice"))
    python_says = {group.id for group in made if is_finished(group.counts)}
    assert len(python_says) == 3
    assert await desk.finish_groups() == len(python_says)
    finished = {
        group.id
        for group in [await desk.get_group(group.id, "alice") for group in made]
        if group.on_complete_job_id is not None
    }
    assert finished == python_says
