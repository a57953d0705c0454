"""Listing a user's jobs: newest first, filters, keyset pagination with signed cursors."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from jobdesk import Job, JobDesk, JobStatus, Worker
from jobdesk.errors import InvalidInput
from tests.conftest import OpenDesk
from tests.integration.support import job_in_status

Statuses = JobStatus | str | Sequence[JobStatus | str] | None
Types = str | Sequence[str] | None


async def walk(
    desk: JobDesk,
    user_id: str,
    limit: int,
    *,
    status: Statuses = None,
    type: Types = None,  # noqa: A002 - get_user_jobs names it "type"
    project_id: str | None = None,
) -> list[list[Job]]:
    """Every page of ``get_user_jobs``, following ``next_cursor`` to the end."""
    pages: list[list[Job]] = []
    cursor: str | None = None
    while True:
        page = await desk.get_user_jobs(
            user_id, status=status, type=type, project_id=project_id, limit=limit, cursor=cursor
        )
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        assert page.items, "a page with a next cursor must not be empty"
        cursor = page.next_cursor
        assert len(pages) < 1000, "pagination does not terminate"


@pytest.fixture
async def roomy(desk: JobDesk) -> JobDesk:
    """The desk, with room for many waiting jobs for alice."""
    await desk.set_user_limits("alice", max_waiting=500)
    return desk


async def test_jobs_are_listed_newest_first(roomy: JobDesk) -> None:
    created = [await roomy.create_job("alice", "demo", {"n": n}) for n in range(7)]
    page = await roomy.get_user_jobs("alice")
    assert [job.id for job in page.items] == [job.id for job in reversed(created)]
    assert [job.input for job in page.items] == [{"n": n} for n in reversed(range(7))]
    assert page.next_cursor is None


async def test_pagination_walks_every_job_exactly_once(roomy: JobDesk) -> None:
    created = [await roomy.create_job("alice", "demo", {"n": n}) for n in range(53)]
    pages = await walk(roomy, "alice", 10)
    assert [len(items) for items in pages] == [10, 10, 10, 10, 10, 3]
    ids = [job.id for items in pages for job in items]
    assert len(ids) == len(set(ids)) == 53
    assert ids == [job.id for job in reversed(created)]


async def test_the_last_page_has_no_next_cursor(roomy: JobDesk) -> None:
    for count in (1, 9, 10, 11, 20):
        user_id = f"user-{count}"
        await roomy.set_user_limits(user_id, max_waiting=count)
        for n in range(count):
            await roomy.create_job(user_id, "demo", {"n": n})
        pages = await walk(roomy, user_id, 10)
        assert sum(len(items) for items in pages) == count
        assert len(pages) == (count + 9) // 10, count
        assert all(len(items) == 10 for items in pages[:-1])


async def test_an_empty_listing_has_no_items_and_no_cursor(desk: JobDesk) -> None:
    page = await desk.get_user_jobs("nobody")
    assert page.items == []
    assert page.next_cursor is None


async def test_jobs_created_during_pagination_neither_repeat_nor_shift_pages(
    roomy: JobDesk,
) -> None:
    older = [await roomy.create_job("alice", "demo", {"n": n}) for n in range(25)]
    first = await roomy.get_user_jobs("alice", limit=10)
    newer = [await roomy.create_job("alice", "demo", {"late": n}) for n in range(5)]
    seen = [job.id for job in first.items]
    cursor = first.next_cursor
    while cursor is not None:
        page = await roomy.get_user_jobs("alice", limit=10, cursor=cursor)
        seen.extend(job.id for job in page.items)
        cursor = page.next_cursor
    assert seen == [job.id for job in reversed(older)]
    fresh = await roomy.get_user_jobs("alice", limit=5)
    assert [job.id for job in fresh.items] == [job.id for job in reversed(newer)]


@pytest.fixture
async def mixed(roomy: JobDesk, worker: Worker) -> dict[str, Job]:
    """Alice's jobs across statuses, types and projects, by a readable name."""
    jobs: dict[str, Job] = {}
    for status in JobStatus:
        for job_type in ("extract", "render"):
            for project_id in ("p1", "p2", None):
                job = await job_in_status(
                    roomy, worker, "alice", status, job_type=job_type, project_id=project_id
                )
                jobs[f"{status.value}/{job_type}/{project_id}"] = job
    await roomy.create_job("bob", "extract", {"n": 1}, "p1")
    return jobs


def names(jobs: dict[str, Job], listed: list[Job]) -> set[str]:
    by_id = {job.id: name for name, job in jobs.items()}
    assert len(by_id) == len(jobs)
    return {by_id[job.id] for job in listed}


Wanted = Callable[[str, str, str], bool]
"""Whether a job named ``status/type/project`` should be listed."""

FILTER_CASES: list[tuple[Statuses, Types, str | None, Wanted]] = [
    ("failed", None, None, lambda s, t, p: s == "failed"),
    (JobStatus.PROCESSING, None, None, lambda s, t, p: s == "processing"),
    (["pending", "processing"], None, None, lambda s, t, p: s in {"pending", "processing"}),
    (
        ("completed", JobStatus.CANCELLED),
        None,
        None,
        lambda s, t, p: s in {"completed", "cancelled"},
    ),
    (None, "render", None, lambda s, t, p: t == "render"),
    (None, ["render", "extract"], None, lambda s, t, p: True),
    (None, ["render", "unknown"], None, lambda s, t, p: t == "render"),
    (None, None, "p1", lambda s, t, p: p == "p1"),
    (None, None, "nope", lambda s, t, p: False),
    (
        ["failed", "cancelled"],
        "extract",
        "p2",
        lambda s, t, p: s in {"failed", "cancelled"} and t == "extract" and p == "p2",
    ),
    ("pending", "render", None, lambda s, t, p: s == "pending" and t == "render"),
    (list(JobStatus), ("extract",), "p1", lambda s, t, p: t == "extract" and p == "p1"),
]


async def test_filters_select_exactly_the_matching_jobs(
    roomy: JobDesk, mixed: dict[str, Job]
) -> None:
    for number, (status, job_type, project_id, wanted) in enumerate(FILTER_CASES):
        expected = {name for name in mixed if wanted(*name.split("/"))}
        pages = await walk(roomy, "alice", 4, status=status, type=job_type, project_id=project_id)
        listed = [job for items in pages for job in items]
        context = f"filter case {number}: {status=} {job_type=} {project_id=}"
        assert names(mixed, listed) == expected, context
        assert len(listed) == len(expected), context
        assert [job.id for job in listed] == sorted((j.id for j in listed), reverse=True), context


async def test_status_filter_accepts_a_repeated_status(
    roomy: JobDesk, mixed: dict[str, Job]
) -> None:
    page = await roomy.get_user_jobs("alice", status=["failed", "failed"], limit=100)
    assert len(page.items) == 6
    assert all(job.status is JobStatus.FAILED for job in page.items)


async def test_a_cursor_of_another_user_is_refused(roomy: JobDesk) -> None:
    for n in range(5):
        await roomy.create_job("alice", "demo", {"n": n})
        await roomy.create_job("bob", "demo", {"n": n})
    alice_page = await roomy.get_user_jobs("alice", limit=2)
    assert alice_page.next_cursor is not None
    with pytest.raises(InvalidInput) as caught:
        await roomy.get_user_jobs("bob", limit=2, cursor=alice_page.next_cursor)
    assert caught.value.field == "cursor"
    following = await roomy.get_user_jobs("alice", limit=2, cursor=alice_page.next_cursor)
    assert len(following.items) == 2


async def test_an_altered_cursor_is_refused(roomy: JobDesk) -> None:
    for n in range(5):
        await roomy.create_job("alice", "demo", {"n": n})
    cursor = (await roomy.get_user_jobs("alice", limit=2)).next_cursor
    assert cursor is not None
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    for altered in (flipped, cursor[:-1], cursor + "AAAA", cursor[::-1], "", "x" * 100):
        with pytest.raises(InvalidInput) as caught:
            await roomy.get_user_jobs("alice", limit=2, cursor=altered)
        assert caught.value.field == "cursor"


async def test_a_cursor_from_another_desk_on_the_same_database_works(
    roomy: JobDesk, open_desk: OpenDesk
) -> None:
    for n in range(5):
        await roomy.create_job("alice", "demo", {"n": n})
    first = await roomy.get_user_jobs("alice", limit=2)
    async with open_desk() as other:
        second = await other.get_user_jobs("alice", limit=2, cursor=first.next_cursor)
    assert [job.input for job in first.items + second.items] == [{"n": n} for n in (4, 3, 2, 1)]
