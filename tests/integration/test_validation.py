"""Validation at the boundary: a bad argument raises InvalidInput naming its field.

One spot check (or a few) per public operation, each on a desk with a job in
progress; a refused call changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from jobdesk import Completion, Job, JobDesk, JobSpec, Limits, Worker
from jobdesk.errors import InvalidInput
from tests.conftest import OpenDesk

Call = Callable[[JobDesk, Worker, Job], Awaitable[object]]


def bad(value: object) -> Any:
    """``value`` typed as Any: these calls break the annotations on purpose."""
    return value


def nested(depth: int) -> object:
    document: object = "leaf"
    for _ in range(depth):
        document = [document]
    return document


async def _async(function: Callable[..., object], *args: object) -> object:
    """A synchronous operation called as the table's asynchronous ones are."""
    return function(*args)


NAIVE = datetime(2026, 3, 1, 12, 0)  # no time zone: the point of the checks that use it

CASES: list[tuple[str, str, Call]] = [
    ("signing_key", "purpose", lambda d, w, j: _async(d.signing_key, "")),
    # create_job
    ("create_jobs", "user_id", lambda d, w, j: d.create_jobs("", [JobSpec("demo")])),
    ("create_jobs", "jobs", lambda d, w, j: d.create_jobs("alice", bad(JobSpec("demo")))),
    ("create_jobs", "jobs[0].type", lambda d, w, j: d.create_jobs("alice", [JobSpec("")])),
    ("create_job", "user_id", lambda d, w, j: d.create_job("", "demo", {})),
    ("create_job", "user_id", lambda d, w, j: d.create_job(bad(42), "demo", {})),
    ("create_job", "user_id", lambda d, w, j: d.create_job("u" * 129, "demo", {})),
    ("create_job", "user_id", lambda d, w, j: d.create_job("tab\there", "demo", {})),
    ("create_job", "type", lambda d, w, j: d.create_job("alice", "Has Space", {})),
    ("create_job", "type", lambda d, w, j: d.create_job("alice", "", {})),
    ("create_job", "type", lambda d, w, j: d.create_job("alice", "t" * 65, {})),
    ("create_job", "input", lambda d, w, j: d.create_job("alice", "demo", bad({1: "x"}))),
    ("create_job", "input", lambda d, w, j: d.create_job("alice", "demo", bad({"s": {1, 2}}))),
    ("create_job", "input", lambda d, w, j: d.create_job("alice", "demo", {"x": math.nan})),
    ("create_job", "input", lambda d, w, j: d.create_job("alice", "demo", nested(33))),
    ("create_job", "input", lambda d, w, j: d.create_job("alice", "demo", "x" * 300_000)),
    ("create_job", "project_id", lambda d, w, j: d.create_job("alice", "demo", {}, "")),
    ("create_job", "priority", lambda d, w, j: d.create_job("alice", "demo", {}, priority=10**6)),
    (
        "create_job",
        "priority",
        lambda d, w, j: d.create_job("alice", "demo", {}, priority=bad(True)),
    ),
    (
        "create_job",
        "priority",
        lambda d, w, j: d.create_job("alice", "demo", {}, priority=bad(1.5)),
    ),
    ("create_job", "run_at", lambda d, w, j: d.create_job("alice", "demo", {}, run_at=NAIVE)),
    ("create_job", "run_at", lambda d, w, j: d.create_job("alice", "demo", {}, run_at=bad("now"))),
    (
        "create_job",
        "max_attempts",
        lambda d, w, j: d.create_job("alice", "demo", {}, max_attempts=0),
    ),
    (
        "create_job",
        "idempotency_key",
        lambda d, w, j: d.create_job("alice", "demo", {}, idempotency_key=""),
    ),
    (
        "create_job",
        "idempotency_key",
        lambda d, w, j: d.create_job("alice", "demo", {}, idempotency_key="k" * 256),
    ),
    # user operations
    ("get_job_status", "job_id", lambda d, w, j: d.get_job_status("not-a-job-id", "alice")),
    ("get_job_status", "job_id", lambda d, w, j: d.get_job_status(j.id.lower(), "alice")),
    ("get_job_status", "user_id", lambda d, w, j: d.get_job_status(j.id, "")),
    ("get_user_jobs", "user_id", lambda d, w, j: d.get_user_jobs(bad(None))),
    ("get_user_jobs", "limit", lambda d, w, j: d.get_user_jobs("alice", limit=0)),
    ("get_user_jobs", "limit", lambda d, w, j: d.get_user_jobs("alice", limit=101)),
    ("get_user_jobs", "status", lambda d, w, j: d.get_user_jobs("alice", status="done")),
    ("get_user_jobs", "status", lambda d, w, j: d.get_user_jobs("alice", status=[])),
    (
        "get_user_jobs",
        "status",
        lambda d, w, j: d.get_user_jobs("alice", status=bad({"pending": 1})),
    ),
    ("get_user_jobs", "type", lambda d, w, j: d.get_user_jobs("alice", type="UPPER")),
    ("get_user_jobs", "type", lambda d, w, j: d.get_user_jobs("alice", type=[])),
    ("get_user_jobs", "project_id", lambda d, w, j: d.get_user_jobs("alice", project_id="")),
    ("get_user_jobs", "cursor", lambda d, w, j: d.get_user_jobs("alice", cursor="abc")),
    ("get_user_jobs", "cursor", lambda d, w, j: d.get_user_jobs("alice", cursor=bad(7))),
    ("get_job_history", "job_id", lambda d, w, j: d.get_job_history("", "alice")),
    ("get_job_history", "user_id", lambda d, w, j: d.get_job_history(j.id, bad(1))),
    ("cancel_job", "job_id", lambda d, w, j: d.cancel_job(j.id + "0", "alice")),
    ("cancel_job", "user_id", lambda d, w, j: d.cancel_job(j.id, "")),
    ("retry_job", "job_id", lambda d, w, j: d.retry_job(bad(None), "alice")),
    ("retry_job", "user_id", lambda d, w, j: d.retry_job(j.id, "x" * 200)),
    ("get_user_usage", "user_id", lambda d, w, j: d.get_user_usage("")),
    ("set_user_limits", "user_id", lambda d, w, j: d.set_user_limits("", max_running=1)),
    ("set_user_limits", "max_running", lambda d, w, j: d.set_user_limits("alice", max_running=-1)),
    ("set_user_limits", "max_waiting", lambda d, w, j: d.set_user_limits("alice", max_waiting=-1)),
    ("set_user_limits", "weight", lambda d, w, j: d.set_user_limits("alice", weight=0)),
    ("set_user_limits", "weight", lambda d, w, j: d.set_user_limits("alice", weight=math.nan)),
    ("set_user_limits", "weight", lambda d, w, j: d.set_user_limits("alice", weight=1001)),
    (
        "set_user_limits",
        "max_daily",
        lambda d, w, j: d.set_user_limits("alice", max_daily=bad("9")),
    ),
    # worker operations
    ("get_pending_jobs", "worker", lambda d, w, j: d.get_pending_jobs(bad("worker-1"))),
    ("get_pending_jobs", "limit", lambda d, w, j: d.get_pending_jobs(w, limit=0)),
    ("get_pending_jobs", "types", lambda d, w, j: d.get_pending_jobs(w, types="Bad Type")),
    ("start_job", "worker", lambda d, w, j: d.start_job(bad(None), j.id)),
    ("start_job", "job_id", lambda d, w, j: d.start_job(w, "short")),
    ("claim_jobs", "limit", lambda d, w, j: d.claim_jobs(w, limit=101)),
    ("claim_jobs", "types", lambda d, w, j: d.claim_jobs(w, types=bad(3))),
    ("claim_jobs", "worker", lambda d, w, j: d.claim_jobs(bad({"name": "w"}))),
    (
        "update_job_progress",
        "progress",
        lambda d, w, j: d.update_job_progress(w, j.id, 101, attempt=1),
    ),
    (
        "update_job_progress",
        "progress",
        lambda d, w, j: d.update_job_progress(w, j.id, -1, attempt=1),
    ),
    (
        "update_job_progress",
        "progress",
        lambda d, w, j: d.update_job_progress(w, j.id, math.nan, attempt=1),
    ),
    (
        "update_job_progress",
        "progress",
        lambda d, w, j: d.update_job_progress(w, j.id, bad("50"), attempt=1),
    ),
    (
        "update_job_progress",
        "message",
        lambda d, w, j: d.update_job_progress(w, j.id, 5, "m" * 1001, attempt=1),
    ),
    (
        "update_job_progress",
        "attempt",
        lambda d, w, j: d.update_job_progress(w, j.id, 5, attempt=0),
    ),
    ("update_job_progress", "job_id", lambda d, w, j: d.update_job_progress(w, "x", 5, attempt=1)),
    ("heartbeat_job", "attempt", lambda d, w, j: d.heartbeat_job(w, j.id, attempt=bad("1"))),
    ("heartbeat_job", "worker", lambda d, w, j: d.heartbeat_job(bad("w"), j.id, attempt=1)),
    ("complete_job", "result", lambda d, w, j: d.complete_job(w, j.id, bad({1: 2}), attempt=1)),
    ("complete_job", "result", lambda d, w, j: d.complete_job(w, j.id, nested(40), attempt=1)),
    ("complete_job", "result", lambda d, w, j: d.complete_job(w, j.id, bad(object()), attempt=1)),
    ("complete_job", "attempt", lambda d, w, j: d.complete_job(w, j.id, None, attempt=bad(None))),
    ("fail_job", "error", lambda d, w, j: d.fail_job(w, j.id, bad(42), attempt=1)),
    ("fail_job", "error", lambda d, w, j: d.fail_job(w, j.id, {"msg": "x"}, attempt=1)),
    ("fail_job", "error.message", lambda d, w, j: d.fail_job(w, j.id, "", attempt=1)),
    ("fail_job", "error.message", lambda d, w, j: d.fail_job(w, j.id, {"code": "E"}, attempt=1)),
    (
        "fail_job",
        "error.code",
        lambda d, w, j: d.fail_job(w, j.id, {"message": "m", "code": 7}, attempt=1),
    ),
    (
        "fail_job",
        "retryable",
        lambda d, w, j: d.fail_job(w, j.id, "m", retryable=bad(1), attempt=1),
    ),
    ("fail_job", "attempt", lambda d, w, j: d.fail_job(w, j.id, "m", attempt=-1)),
    ("release_job", "attempt", lambda d, w, j: d.release_job(w, j.id, attempt=0)),
    ("snooze_job", "delay", lambda d, w, j: d.snooze_job(w, j.id, -1, attempt=1)),
    ("snooze_job", "delay", lambda d, w, j: d.snooze_job(w, j.id, 31 * 86_400, attempt=1)),
    ("snooze_job", "delay", lambda d, w, j: d.snooze_job(w, j.id, math.inf, attempt=1)),
    ("snooze_job", "attempt", lambda d, w, j: d.snooze_job(w, j.id, 5, attempt=0)),
    ("snooze_job", "job_id", lambda d, w, j: d.snooze_job(w, "x", 5, attempt=1)),
    ("release_job", "job_id", lambda d, w, j: d.release_job(w, j.id[:-1], attempt=1)),
    ("release_job", "worker", lambda d, w, j: d.release_job(bad(None), j.id, attempt=1)),
    ("complete_jobs", "completions", lambda d, w, j: d.complete_jobs(w, [])),
    (
        "complete_and_claim_jobs",
        "completions",
        lambda d, w, j: d.complete_and_claim_jobs(w, bad(Completion(j.id, 1))),
    ),
    (
        "complete_and_claim_jobs",
        "attempt",
        lambda d, w, j: d.complete_and_claim_jobs(w, [Completion(j.id, bad("1"))]),
    ),
    ("complete_and_claim_jobs", "limit", lambda d, w, j: d.complete_and_claim_jobs(w, [], limit=0)),
    (
        "complete_and_claim_jobs",
        "types",
        lambda d, w, j: d.complete_and_claim_jobs(w, [], types=[""]),
    ),
    ("complete_jobs", "completions", lambda d, w, j: d.complete_jobs(w, bad([j.id]))),
    ("complete_jobs", "completions", lambda d, w, j: d.complete_jobs(w, bad(Completion(j.id, 1)))),
    ("complete_jobs", "job_id", lambda d, w, j: d.complete_jobs(w, [Completion("nope", 1)])),
    ("complete_jobs", "attempt", lambda d, w, j: d.complete_jobs(w, [Completion(j.id, 0)])),
    (
        "complete_jobs",
        "result",
        lambda d, w, j: d.complete_jobs(w, [Completion(j.id, 1, bad({1: 2}))]),
    ),
    # tokens
    ("create_worker_token", "name", lambda d, w, j: d.create_worker_token("has space")),
    ("create_worker_token", "name", lambda d, w, j: d.create_worker_token("")),
    ("create_worker_token", "types", lambda d, w, j: d.create_worker_token("w2", types=[])),
    (
        "create_worker_token",
        "expires_at",
        lambda d, w, j: d.create_worker_token("w2", expires_at=NAIVE),
    ),
    ("revoke_worker_token", "name", lambda d, w, j: d.revoke_worker_token(bad(None))),
    ("create_user_token", "user_id", lambda d, w, j: d.create_user_token("")),
    (
        "create_user_token",
        "expires_at",
        lambda d, w, j: d.create_user_token("alice", expires_at=bad(1)),
    ),
    ("revoke_user_tokens", "user_id", lambda d, w, j: d.revoke_user_tokens("")),
    # maintenance
    ("prune_finished", "older_than", lambda d, w, j: d.prune_finished(bad(3600))),
    ("prune_finished", "older_than", lambda d, w, j: d.prune_finished(timedelta(seconds=-1))),
    ("apply_retention", "policy", lambda d, w, j: d.apply_retention(bad("completed=7d"))),
    ("apply_retention", "batch_size", lambda d, w, j: d.apply_retention(batch_size=0)),
    ("apply_retention", "max_batches", lambda d, w, j: d.apply_retention(max_batches=0)),
    ("apply_retention", "pause", lambda d, w, j: d.apply_retention(pause=-1)),
    ("get_queue_stats", "window", lambda d, w, j: d.get_queue_stats(bad(300))),
    ("get_queue_stats", "window", lambda d, w, j: d.get_queue_stats(timedelta(0))),
    ("set_type_limits", "type", lambda d, w, j: d.set_type_limits("Bad Type", max_running=1)),
    ("set_type_limits", "max_running", lambda d, w, j: d.set_type_limits("demo", max_running=-1)),
    ("set_type_limits", "rate", lambda d, w, j: d.set_type_limits("demo", rate="5/fortnight")),
    ("set_type_limits", "rate", lambda d, w, j: d.set_type_limits("demo", rate="0/min")),
    # the operator's views and admin tokens
    ("get_throughput", "window", lambda d, w, j: d.get_throughput(bad(3600))),
    ("get_throughput", "window", lambda d, w, j: d.get_throughput(timedelta(days=2))),
    ("get_failed_jobs", "window", lambda d, w, j: d.get_failed_jobs(window=timedelta(0))),
    ("get_failed_jobs", "limit", lambda d, w, j: d.get_failed_jobs(limit=0)),
    ("get_top_users", "limit", lambda d, w, j: d.get_top_users(limit=101)),
    ("find_job", "job_id", lambda d, w, j: d.find_job("../jobs")),
    ("schedule", "cron", lambda d, w, j: d.schedule("s", "61 * * * *", "demo", {}, user_id="a")),
    (
        "schedule",
        "timezone",
        lambda d, w, j: d.schedule("s", "@daily", "demo", {}, user_id="a", timezone="No/Where"),
    ),
    ("schedule", "name", lambda d, w, j: d.schedule("a b", "@daily", "demo", {}, user_id="a")),
    (
        "schedule",
        "missed",
        lambda d, w, j: d.schedule("s", "@daily", "demo", {}, user_id="a", missed="x"),
    ),
    ("schedule", "user_id", lambda d, w, j: d.schedule("s", "@daily", "demo", {}, user_id="")),
    ("get_schedule", "name", lambda d, w, j: d.get_schedule("../x")),
    ("list_schedules", "limit", lambda d, w, j: d.list_schedules(limit=0)),
    ("delete_schedule", "name", lambda d, w, j: d.delete_schedule("")),
    ("pause_schedule", "name", lambda d, w, j: d.pause_schedule(bad(7))),
    ("resume_schedule", "name", lambda d, w, j: d.resume_schedule("a/b")),
    ("create_admin_token", "name", lambda d, w, j: d.create_admin_token("has space")),
    (
        "create_admin_token",
        "expires_at",
        lambda d, w, j: d.create_admin_token("ops", expires_at=NAIVE),
    ),
    ("revoke_admin_token", "name", lambda d, w, j: d.revoke_admin_token(bad(None))),
    (
        "get_user_jobs_changed_since",
        "since",
        lambda d, w, j: d.get_user_jobs_changed_since("alice", bad(1)),
    ),
    (
        "get_user_jobs_changed_since",
        "user_id",
        lambda d, w, j: d.get_user_jobs_changed_since("", datetime.now(UTC)),
    ),
    (
        "fail_job",
        "retry_after",
        lambda d, w, j: d.fail_job(w, j.id, "m", attempt=1, retry_after=-1),
    ),
    ("create_group", "jobs", lambda d, w, j: d.create_group("alice", [])),
    ("create_group", "jobs[0].type", lambda d, w, j: d.create_group("alice", [JobSpec("A B")])),
    ("create_group", "name", lambda d, w, j: d.create_group("alice", [JobSpec("x")], name="")),
    ("get_group", "group_id", lambda d, w, j: d.get_group("../x", "alice")),
    ("get_user_groups", "limit", lambda d, w, j: d.get_user_groups("alice", limit=0)),
    ("get_user_groups", "cursor", lambda d, w, j: d.get_user_groups("alice", cursor="x")),
    ("get_group_jobs", "group_id", lambda d, w, j: d.get_group_jobs("../x", "alice")),
    ("cancel_group", "group_id", lambda d, w, j: d.cancel_group(bad(1), "alice")),
    ("retry_group", "user_id", lambda d, w, j: d.retry_group(j.id, "")),
    ("create_view_token", "ttl", lambda d, w, j: d.create_view_token("alice", job_id=j.id, ttl=0)),
    ("create_view_token", "job_id", lambda d, w, j: d.create_view_token("alice")),
    ("set_webhook", "url", lambda d, w, j: d.set_webhook("http://x.example", user_id="alice")),
    ("remove_webhook", "webhook_id", lambda d, w, j: d.remove_webhook("../x")),
    ("get_webhook_deliveries", "state", lambda d, w, j: d.get_webhook_deliveries(state="x")),
    ("redeliver_webhook", "delivery_id", lambda d, w, j: d.redeliver_webhook("x")),
    ("deliver_webhooks", "limit", lambda d, w, j: d.deliver_webhooks(limit=0)),
    ("send_webhooks", "interval", lambda d, w, j: d.send_webhooks(interval=0)),
    ("send_webhooks", "concurrency", lambda d, w, j: d.send_webhooks(concurrency=0)),
    (
        "deliver_webhooks",
        "lease_seconds",
        lambda d, w, j: d.deliver_webhooks(lease_seconds=5, send_timeout=10),
    ),
    ("send_webhooks", "lease_seconds", lambda d, w, j: d.send_webhooks(lease_seconds=10)),
]


OPERATIONS = sorted({operation for operation, _, _ in CASES})


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_a_bad_argument_is_refused_naming_its_field(
    desk: JobDesk, worker: Worker, operation: str
) -> None:
    job = await desk.create_job("alice", "demo", {"n": 1})
    [claimed] = await desk.claim_jobs(worker)
    usage = await desk.get_user_usage("alice")
    tokens = await desk.list_worker_tokens()

    cases = [(field, call) for name, field, call in CASES if name == operation]
    for number, (field, call) in enumerate(cases):
        with pytest.raises(InvalidInput) as caught:
            await call(desk, worker, claimed)
        context = f"{operation} case {number} ({field})"
        assert caught.value.field == field, (context, caught.value)
        assert str(caught.value).startswith(f"{field}: "), context

        assert await desk.get_job_status(job.id, "alice") == claimed, context
        assert await desk.get_user_usage("alice") == usage, context
        assert await desk.list_worker_tokens() == tokens, context


def test_every_public_operation_is_spot_checked() -> None:
    checked = {operation for operation, _, _ in CASES}
    public = {
        name
        for name in dir(JobDesk)
        if not name.startswith("_") and callable(getattr(JobDesk, name))
    }
    without_arguments = {
        "close",
        "start",
        "open",
        "requeue_expired",
        "list_worker_tokens",
        "subscribe",
        "ping",
        "now",
        "get_oldest_pending",
        "get_type_limits",
        "run_due_schedules",
        "finish_groups",
        "get_webhooks",
        "get_retention_state",
    }
    # These refuse a bad token with Unauthorized.
    tokens_only = {
        "verify_worker_token",
        "verify_user_token",
        "verify_admin_token",
        "verify_view_token",
    }
    assert public - without_arguments - tokens_only <= checked
    assert checked <= public


async def test_multi_byte_input_over_the_byte_limit_is_refused(desk: JobDesk) -> None:
    # 200,000 characters but 400,000 bytes of UTF-8: over the 256 KiB limit.
    document = {"text": "é" * 200_000}
    with pytest.raises(InvalidInput) as caught:
        await desk.create_job("alice", "demo", document)
    assert caught.value.field == "input"
    assert (await desk.get_user_usage("alice")).created_today == 0


async def test_input_at_the_limits_is_accepted(desk: JobDesk) -> None:
    limit = Limits().max_input_bytes
    job = await desk.create_job("alice", "demo", "x" * (limit - 2))  # quotes make it the limit
    assert job.input == "x" * (limit - 2)
    deep = await desk.create_job("alice", "demo", nested(Limits().max_input_depth))
    assert (await desk.get_job_status(deep.id, "alice")).input == nested(32)
    with pytest.raises(InvalidInput):
        await desk.create_job("alice", "demo", "x" * (limit - 1))


async def test_a_run_at_in_another_time_zone_is_converted_to_utc(desk: JobDesk) -> None:
    when = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    job = await desk.create_job("alice", "demo", {}, run_at=when)
    assert job.run_at == when
    assert job.run_at.utcoffset() == timedelta(0)
    assert (await desk.get_job_status(job.id, "alice")).run_at == datetime(
        2026, 3, 1, 12, tzinfo=UTC
    )


def test_open_refuses_a_bad_url_or_limits() -> None:
    with pytest.raises(InvalidInput) as caught:
        JobDesk.open("mysql://localhost/jobs")
    assert caught.value.field == "url"
    with pytest.raises(InvalidInput) as caught:
        JobDesk.open("sqlite:///x.db", limits=bad({"max_running_per_user": 1}))
    assert caught.value.field == "limits"
    with pytest.raises(InvalidInput) as caught:
        Limits(max_running_per_user=0)
    assert caught.value.field == "max_running_per_user"
    with pytest.raises(InvalidInput) as caught:
        Limits(max_waiting_per_user=0)
    assert caught.value.field == "max_waiting_per_user"


async def test_a_desk_with_registered_types_refuses_every_other_type(
    open_desk: OpenDesk,
) -> None:
    async with open_desk(types=["extract", "render"]) as desk:
        job = await desk.create_job("alice", "extract", {})
        assert job.type == "extract"
        with pytest.raises(InvalidInput) as caught:
            await desk.create_job("alice", "transcode", {})
        assert caught.value.field == "type"
        assert "extract" in caught.value.rule
        with pytest.raises(InvalidInput) as caught:
            await desk.create_worker_token("gpu", types=["transcode"])
        assert caught.value.field == "types"
        assert (await desk.get_user_usage("alice")).created_today == 1
