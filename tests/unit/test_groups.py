"""The group rule: a group's status and progress from its jobs, at once or change by change."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobdesk.groups import GroupStatus, GroupTally, is_finished, summarize
from jobdesk.models import JobStatus

P, R, C, F, X = (
    JobStatus.PENDING,
    JobStatus.PROCESSING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)


def test_the_status_table() -> None:
    cases = [
        ({P: 3}, False, GroupStatus.PENDING),
        ({P: 2, R: 1}, False, GroupStatus.RUNNING),
        ({P: 2, C: 1}, False, GroupStatus.RUNNING),
        ({C: 3}, False, GroupStatus.COMPLETED),
        ({C: 3}, True, GroupStatus.COMPLETED),
        ({C: 2, F: 1}, False, GroupStatus.PARTIALLY_FAILED),
        ({C: 2, X: 1}, False, GroupStatus.PARTIALLY_FAILED),
        ({C: 2, X: 1}, True, GroupStatus.CANCELLED),
        ({F: 2, X: 1}, False, GroupStatus.FAILED),
        ({X: 3}, False, GroupStatus.CANCELLED),
        ({P: 1, X: 2}, True, GroupStatus.RUNNING),
    ]
    for counts, cancelled, expected in cases:
        assert summarize(counts, 0.0, cancelled=cancelled)[0] is expected, (counts, cancelled)


def test_progress_is_the_mean_with_finished_jobs_as_100() -> None:
    assert summarize({P: 1, R: 1, C: 1, F: 1}, 50.0)[1] == 62.5
    assert summarize({P: 4}, 0.0)[1] == 0.0
    assert summarize({F: 4}, 0.0)[1] == 100.0
    assert summarize({}, 0.0) == (GroupStatus.CANCELLED, 0.0)


def test_finished_means_no_job_active() -> None:
    assert is_finished({C: 1, F: 1, X: 1})
    assert not is_finished({C: 1, P: 1})
    assert not is_finished({R: 1})


states = st.tuples(st.sampled_from(list(JobStatus)), st.integers(0, 100).map(float))


@given(
    start=st.lists(states, min_size=1, max_size=20),
    changes=st.lists(st.tuples(st.integers(0, 19), states), max_size=40),
    cancelled=st.booleans(),
)
def test_a_tally_kept_change_by_change_agrees_with_the_rule_at_once(
    start: list[tuple[JobStatus, float]],
    changes: list[tuple[int, tuple[JobStatus, float]]],
    cancelled: bool,
) -> None:
    jobs = {f"job-{index}": state for index, state in enumerate(start)}
    tally = GroupTally(((key, *state) for key, state in jobs.items()), cancelled=cancelled)
    assert "job-999" not in tally
    assert not tally.apply("job-999", C, 100.0)
    for index, state in changes:
        key = f"job-{index}"
        tally.apply(key, *state)
        if key in jobs:
            jobs[key] = state
    counts = dict.fromkeys(JobStatus, 0)
    for job_status, _ in jobs.values():
        counts[job_status] += 1
    active = sum(progress for job_status, progress in jobs.values() if job_status.is_active)
    status, progress = summarize(counts, active, cancelled=cancelled)
    assert tally.summary() == (status, round(progress, 2), counts)
    assert len(tally) == len(jobs)
