"""The wire format: jobs and problems written and read back the same by every face."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal, cast

import pytest

from jobdesk import errors, lifecycle, wire
from jobdesk.errors import (
    InvalidInput,
    InvalidTransition,
    JobdeskError,
    JobNotFound,
    LeaseLost,
    RateLimited,
    StoreUnavailable,
    Unauthorized,
)
from jobdesk.http.schemas import JobOut
from jobdesk.http.schemas_limits import TypeLimitsOut, UsageOut
from jobdesk.models import Job, JobStatus, ProgressReply, UserUsage, Waiting, WaitReason
from jobdesk.scheduling import Rate, TypeLimits
from tests.unit.builders import ERROR, LIMITS, NOW, WORKER, job_in, processing_job


def released_then_retried() -> Job:
    """Started, handed back, started, failed for good, retried, started: attempt 3."""
    job = processing_job()
    job = lifecycle.release(job, NOW, worker=WORKER, attempt=1)
    job = lifecycle.start(job, NOW, worker=WORKER, lease_seconds=60)
    job = lifecycle.fail(
        job, NOW, worker=WORKER, attempt=2, error=ERROR, retryable=False, limits=LIMITS
    )
    job = lifecycle.retry(job, NOW)
    return lifecycle.start(job, NOW, worker=WORKER, lease_seconds=60)


JOBS = [*(job_in(status) for status in JobStatus), released_then_retried()]


def test_times_are_utc_with_a_z_and_microseconds_only_when_there_are_some() -> None:
    assert wire.timestamp(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == "2026-03-01T12:00:00Z"
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 1, 13, 0, 0, 250000, tzinfo=paris)
    assert wire.timestamp(moment) == "2026-03-01T12:00:00.250000Z"
    assert wire.parse_time("2026-03-01T12:00:00.250000Z") == moment


@pytest.mark.parametrize("value", ["2026-03-01T12:00:00", "yesterday", 5, None])
def test_a_time_without_a_zone_or_not_a_time_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        wire.parse_time(value, "run_at")
    assert refused.value.field == "run_at"


@pytest.mark.parametrize("job", JOBS, ids=lambda job: f"{job.status}-{job.attempt}")
def test_a_job_comes_back_from_its_json_unchanged(job: Job) -> None:
    text = json.dumps(wire.encode_job(job))
    assert wire.decode_job(json.loads(text)) == job


@pytest.mark.parametrize("job", JOBS, ids=lambda job: f"{job.status}-{job.attempt}")
def test_the_http_api_writes_exactly_what_the_wire_encodes(job: Job) -> None:
    assert JobOut.of(job).model_dump(mode="json") == wire.encode_job(job)
    assert set(JobOut.model_fields) == set(wire.encode_job(job))


def test_a_job_from_a_server_without_attempts_used_keeps_its_budget() -> None:
    job = released_then_retried()
    data = wire.encode_job(job)
    del data["attempts_used"]
    assert wire.decode_job(data) == job


@pytest.mark.parametrize(
    ("member", "value"),
    [("attempt", "3"), ("cancel_requested", 1), ("created_at", "noon"), ("id", None)],
)
def test_a_malformed_job_is_refused_naming_the_member(member: str, value: object) -> None:
    data = wire.encode_job(processing_job())
    data[member] = value
    with pytest.raises(InvalidInput) as refused:
        wire.decode_job(data)
    assert refused.value.field == f"job.{member}"


def test_a_released_then_retried_job_shows_the_attempts_of_its_current_budget() -> None:
    job = released_then_retried()
    assert (job.attempt, job.max_attempts) == (3, 3)
    assert job.attempts_used == 1
    assert wire.attempts_label(job) == "1 of 3"
    assert wire.encode_job(job)["attempts_used"] == 1
    assert wire.attempts_label(job_in(JobStatus.PENDING)) == f"0 of {job.max_attempts}"


def test_models_are_written_field_by_field_with_wire_times() -> None:
    reply = ProgressReply(cancel_requested=True, lease_expires_at=NOW)
    assert wire.encode(reply) == {
        "cancel_requested": True,
        "lease_expires_at": "2026-03-01T12:00:00Z",
    }
    assert wire.decode_progress_reply(wire.encode(reply)) == reply
    assert wire.encode({"types": frozenset({"b", "a"}), "status": JobStatus.FAILED}) == {
        "types": ["a", "b"],
        "status": "failed",
    }


def every_error() -> list[JobdeskError]:
    """One instance of each error class, with every attribute set."""
    return [
        InvalidInput("progress", "must be between 0 and 100"),
        JobNotFound("J1"),
        RateLimited("daily", 1000, 60),
        RateLimited("waiting", 1000),
        Unauthorized("malformed user token"),
        InvalidTransition("J1", "completed", "cancelled"),
        LeaseLost("J1", "attempt 2 is not the job's current attempt 3"),
        StoreUnavailable("the database is gone", outcome_unknown=True),
        JobdeskError("a bug"),
    ]


def test_every_error_class_has_one_problem_type_and_each_slug_is_used_once() -> None:
    classes = {getattr(errors, name) for name in errors.__all__}
    assert set(wire.PROBLEMS) == classes
    slugs = [problem.slug for problem in wire.PROBLEMS.values()]
    assert len(slugs) == len(set(slugs))


@pytest.mark.parametrize("error", every_error(), ids=lambda error: type(error).__name__)
def test_an_error_travels_as_its_problem_and_comes_back_as_itself(error: JobdeskError) -> None:
    problem = wire.problem_type(error)
    document = json.loads(json.dumps(wire.encode_error(error, request_id="r1")))
    assert list(document)[:5] == ["type", "title", "status", "detail", "request_id"]
    assert set(document) - {"type", "title", "status", "detail", "request_id"} == set(
        problem.members
    )
    back = wire.error_from_problem(document["status"], document, job_id="J1")
    assert type(back) is type(error)
    same = ("field", "rule", "job_id", "limit", "allowed", "retry_after", "outcome_unknown")
    for name in same:
        assert getattr(back, name, None) == getattr(error, name, None), name
    if isinstance(error, InvalidTransition):
        assert isinstance(back, InvalidTransition)
        assert (back.status, back.action) == (error.status, error.action)


def test_a_subclass_is_answered_as_its_nearest_registered_ancestor() -> None:
    class ExpiredToken(Unauthorized):
        pass

    assert wire.status_of(ExpiredToken("expired")) == 401
    assert wire.status_of(JobNotFound) == 404
    assert wire.problem_type(ExpiredToken).uri == "urn:jobdesk:problem:unauthorized"


@pytest.mark.parametrize(
    ("status", "document", "expected"),
    [
        (502, {"detail": "Bad Gateway"}, StoreUnavailable),
        (413, {}, InvalidInput),
        (404, {"detail": "Not Found"}, JobNotFound),
        (418, {}, JobdeskError),
        (500, {"type": "urn:jobdesk:problem:internal-error"}, JobdeskError),
    ],
)
def test_an_answer_that_is_not_a_jobdesk_problem_is_read_by_its_status(
    status: int, document: dict[str, Any], expected: type[JobdeskError]
) -> None:
    assert type(wire.error_from_problem(status, document)) is expected


def test_progress_is_always_written_as_a_number_with_a_fraction() -> None:
    job = dataclasses.replace(processing_job(), progress=40)
    assert wire.encode_job(job)["progress"] == 40.0  # always a float, as the API writes it


WAITS = [
    Waiting(WaitReason.SCHEDULED, until=NOW),
    Waiting(WaitReason.USER_RUNNING_LIMIT, running=10, limit=10),
    Waiting(WaitReason.TYPE_POOL, running=4, limit=4),
    Waiting(WaitReason.TYPE_RATE, until=NOW),
    Waiting(WaitReason.QUEUED, ahead=3),
]


@pytest.mark.parametrize("waiting", WAITS, ids=lambda waiting: waiting.reason.value)
def test_a_pending_job_carries_why_it_waits_there_and_back(waiting: Waiting) -> None:
    job = dataclasses.replace(job_in(JobStatus.PENDING), waiting=waiting)
    data = json.loads(json.dumps(wire.encode_job(job)))
    assert data["waiting"]["reason"] == waiting.reason.value
    assert wire.decode_job(data).waiting == waiting
    assert JobOut.of(job).model_dump(mode="json") == wire.encode_job(job)


def test_a_job_that_does_not_say_why_it_waits_reads_as_none() -> None:
    data = wire.encode_job(job_in(JobStatus.PENDING))
    assert data["waiting"] is None
    del data["waiting"]  # an older server
    assert wire.decode_job(data).waiting is None


@pytest.mark.parametrize(
    ("waiting", "field"),
    [({"reason": "sleepy"}, "job.waiting.reason"), ({"reason": "queued", "ahead": "3"},
     "job.waiting.ahead"), ("queued", "job.waiting")],
)  # fmt: skip
def test_a_malformed_wait_is_refused_naming_the_member(waiting: object, field: str) -> None:
    data = wire.encode_job(job_in(JobStatus.PENDING))
    data["waiting"] = cast(Any, waiting)
    with pytest.raises(InvalidInput) as refused:
        wire.decode_job(data)
    assert refused.value.field == field


def test_usage_is_written_with_its_new_fields_and_the_derived_active() -> None:
    usage = UserUsage("alice", 2, 10, 5, 1000, 7, 1000, NOW, 2.0)
    data = wire.encode(usage)
    assert data == {
        "user_id": "alice",
        "running": 2,
        "max_running": 10,
        "waiting": 5,
        "max_waiting": 1000,
        "created_today": 7,
        "max_daily": 1000,
        "resets_at": "2026-03-01T12:00:00Z",
        "weight": 2.0,
        "active": 7,
    }
    assert UsageOut.of(usage).model_dump(mode="json") == data


def test_a_types_limits_are_written_with_the_rate_as_its_text() -> None:
    limits = TypeLimits("gpu", max_running=4, rate=Rate.parse("60/min"))
    assert wire.encode(limits) == {"type": "gpu", "max_running": 4, "rate": "60/min"}
    assert wire.encode([TypeLimits("api")]) == [{"type": "api", "max_running": None, "rate": None}]
    assert TypeLimitsOut.of(limits).model_dump(mode="json") == wire.encode(limits)


@pytest.mark.parametrize("limit", ["waiting", "daily"])
def test_a_refusal_comes_back_naming_the_limit_that_refused(limit: str) -> None:
    error = RateLimited(cast(Literal["waiting", "daily"], limit), 1000)
    document = wire.encode_error(error)
    assert document["limit"] == limit
    back = wire.error_from_problem(429, document)
    assert isinstance(back, RateLimited)
    assert back.limit == limit


@pytest.mark.parametrize(
    ("waiting", "words"),
    [
        (WAITS[0], "scheduled until 2026-03-01T12:00:00Z"),
        (WAITS[1], "waiting: 10 of 10 of your jobs are running"),
        (WAITS[2], "waiting: 4 of 4 jobs of its type are running"),
        (WAITS[3], "waiting: its type's rate allows the next start at 2026-03-01T12:00:00Z"),
        (WAITS[4], "its turn: 3 of your jobs ahead"),
        (Waiting(WaitReason.QUEUED, ahead=0), "its turn: next of your jobs, once a worker is free"),
        (Waiting(WaitReason.BACKOFF, until=NOW), "failed: next attempt at 2026-03-01T12:00:00Z"),
    ],
)
def test_a_wait_is_told_in_words(waiting: Waiting, words: str) -> None:
    assert wire.waiting_label(waiting) == words
    assert wire.waiting_label(WAITS[0], lambda moment: moment.strftime("%H:%M")) == (
        "scheduled until 12:00"
    )
