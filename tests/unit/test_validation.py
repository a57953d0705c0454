"""Every public argument is checked before it reaches a query, and a refusal names the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

import pytest

from jobdesk import validation
from jobdesk.errors import InvalidInput
from jobdesk.ids import new_job_id
from jobdesk.models import JobStatus, Worker

PARIS = timezone(timedelta(hours=2))


def refusal(call: Callable[[], object]) -> InvalidInput:
    """The InvalidInput that ``call`` raises."""
    with pytest.raises(InvalidInput) as caught:
        call()
    return caught.value


class NoOffset(tzinfo):
    """A tzinfo that does not know its offset: as good as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.mark.parametrize(
    "value", ["u", "user-1", "a" * 128, "名前", "with space", "user@example.com"]
)
def test_a_principal_id_of_1_to_128_printable_characters_is_accepted(value: str) -> None:
    assert validation.principal_id("user_id", value) == value
    assert validation.optional_principal_id("project_id", value) == value


@pytest.mark.parametrize(
    "value", ["", "a" * 129, "tab\there", "new\nline", "nul\x00", "\u200b", 5, None, b"user-1"]
)
@pytest.mark.parametrize("field", ["user_id", "project_id"])
def test_a_bad_principal_id_is_refused_naming_its_field(value: object, field: str) -> None:
    assert refusal(lambda: validation.principal_id(field, value)).field == field


def test_a_missing_project_id_is_none() -> None:
    assert validation.optional_principal_id("project_id", None) is None
    assert refusal(lambda: validation.optional_principal_id("project_id", "")).field == "project_id"


@pytest.mark.parametrize(
    "value", [new_job_id(), "01JNQ0000000000000000000AB", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"]
)
def test_a_job_id_is_accepted(value: str) -> None:
    assert validation.job_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01jnq0000000000000000000ab",
        "01JNQ0000000000000000000A",
        "01JNQ0000000000000000000ABC",
        "01JNQ0000000000000000000AI",
        "01JNQ0000000000000000000AL",
        "01JNQ0000000000000000000AO",
        "01JNQ0000000000000000000AU",
        "81JNQ0000000000000000000AB",
        "01JNQ0000000000000000000AB\n",
        "01JNQ00000000000000000-0AB",
        "1 OR 1=1",
        26,
        None,
    ],
)
def test_a_malformed_job_id_is_refused(value: object) -> None:
    assert refusal(lambda: validation.job_id(value)).field == "job_id"
    assert refusal(lambda: validation.job_id(value, field="cursor")).field == "cursor"


@pytest.mark.parametrize(
    "value", ["a", "character_extraction", "v1.resize-image", "0", "a" * 64, "a.b_c-d"]
)
def test_a_job_type_is_accepted(value: str) -> None:
    assert validation.job_type(value) == value


@pytest.mark.parametrize(
    "value", ["", "A", "Upper", "a" * 65, "has space", "ünï", "a/b", "type\n", 3, None]
)
def test_a_malformed_job_type_is_refused(value: object) -> None:
    assert refusal(lambda: validation.job_type(value)).field == "type"
    assert refusal(lambda: validation.job_type(value, field="types")).field == "types"


def test_with_a_registry_only_registered_types_are_accepted() -> None:
    registered = {"character_extraction", "transcode"}
    assert validation.job_type("transcode", registered) == "transcode"
    error = refusal(lambda: validation.job_type("send_email", registered))
    assert error.field == "type"
    assert "character_extraction, transcode" in error.rule


def test_a_registry_does_not_relax_the_type_pattern() -> None:
    assert refusal(lambda: validation.job_type("Bad Type", {"Bad Type"})).field == "type"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("transcode", frozenset({"transcode"})),
        (["transcode", "resize", "transcode"], frozenset({"transcode", "resize"})),
        (("transcode",), frozenset({"transcode"})),
        ({"a", "b"}, frozenset({"a", "b"})),
    ],
)
def test_job_types_are_none_one_type_or_several(
    value: object, expected: frozenset[str] | None
) -> None:
    assert validation.job_types(value) == expected


@pytest.mark.parametrize(
    "value",
    [[], {"transcode": 1}, b"transcode", 5, ["transcode", "Bad"], [f"t{n}" for n in range(101)]],
    ids=["empty", "mapping", "bytes", "number", "one-bad", "too-many"],
)
def test_bad_job_types_are_refused(value: object) -> None:
    assert refusal(lambda: validation.job_types(value)).field == "types"
    assert refusal(lambda: validation.job_types(value, field="type")).field == "type"


def test_job_types_respect_the_registry() -> None:
    assert validation.job_types(["a"], {"a", "b"}) == frozenset({"a"})
    assert refusal(lambda: validation.job_types(["a", "c"], {"a", "b"})).field == "types"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("pending", (JobStatus.PENDING,)),
        (JobStatus.FAILED, (JobStatus.FAILED,)),
        (["processing", "pending", "processing"], (JobStatus.PROCESSING, JobStatus.PENDING)),
        ((JobStatus.COMPLETED, "cancelled"), (JobStatus.COMPLETED, JobStatus.CANCELLED)),
    ],
)
def test_statuses_are_none_one_status_or_several_in_order(
    value: object, expected: tuple[JobStatus, ...] | None
) -> None:
    assert validation.statuses(value) == expected


@pytest.mark.parametrize(
    "value",
    [[], "PENDING", "done", ["pending", "done"], 5, {"pending": 1}, b"pending", [["pending"]]],
)
def test_bad_statuses_are_refused(value: object) -> None:
    assert refusal(lambda: validation.statuses(value)).field == "status"


@pytest.mark.parametrize("value", [-5, 0, 5])
def test_an_integer_within_bounds_is_accepted(value: int) -> None:
    assert validation.integer("priority", value, -5, 5) == value


@pytest.mark.parametrize("value", [-6, 6, True, False, 1.0, "1", None])
def test_an_integer_out_of_bounds_or_of_another_type_is_refused(value: object) -> None:
    assert refusal(lambda: validation.integer("priority", value, -5, 5)).field == "priority"


@pytest.mark.parametrize(("value", "accepted"), [(1, True), (100, True), (0, False), (101, False)])
def test_a_page_limit_is_1_to_100(value: int, accepted: bool) -> None:
    if accepted:
        assert validation.page_limit(value) == value
    else:
        assert refusal(lambda: validation.page_limit(value)).field == "limit"


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (100, 100.0), (50.5, 50.5), (-0.0, 0.0)])
def test_progress_is_a_percentage_as_a_float(value: float, expected: float) -> None:
    result = validation.progress(value)
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    "value",
    [True, False, float("nan"), float("inf"), float("-inf"), -0.1, 100.1, "50", None, [50]],
)
def test_bad_progress_is_refused(value: object) -> None:
    assert refusal(lambda: validation.progress(value)).field == "progress"


@pytest.mark.parametrize("value", [None, "", "3 of 8", "x" * 1000])
def test_a_message_is_optional_and_at_most_1000_characters(value: str | None) -> None:
    assert validation.message(value) == value


@pytest.mark.parametrize("value", ["x" * 1001, 5, b"bytes"])
def test_a_bad_message_is_refused(value: object) -> None:
    assert refusal(lambda: validation.message(value)).field == "message"
    assert refusal(lambda: validation.message(value, field="error")).field == "error"


def test_an_aware_datetime_is_converted_to_utc() -> None:
    in_paris = datetime(2026, 3, 1, 14, 0, tzinfo=PARIS)
    result = validation.aware_datetime("run_at", in_paris)
    assert result == in_paris
    assert result.tzinfo is UTC
    assert result.hour == 12


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 1, 12, 0),
        datetime(2026, 3, 1, 12, 0, tzinfo=NoOffset()),
        date(2026, 3, 1),
        "2026-03-01T12:00:00Z",
        1772366400,
        None,
    ],
    ids=["naive", "no-offset", "date", "string", "timestamp", "none"],
)
def test_a_naive_or_non_datetime_is_refused(value: object) -> None:
    assert refusal(lambda: validation.aware_datetime("run_at", value)).field == "run_at"


@pytest.mark.parametrize("value", [None, "k", "order-42/attempt 1", "k" * 255])
def test_an_idempotency_key_is_optional_and_1_to_255_printable_characters(
    value: str | None,
) -> None:
    assert validation.idempotency_key(value) == value


@pytest.mark.parametrize("value", ["", "k" * 256, "line\nbreak", "\x7f", 42, b"key"])
def test_a_bad_idempotency_key_is_refused(value: object) -> None:
    assert refusal(lambda: validation.idempotency_key(value)).field == "idempotency_key"


@pytest.mark.parametrize("value", ["worker-1", "gpu.box:1@eu_west", "W" * 64])
def test_a_token_name_is_accepted(value: str) -> None:
    assert validation.token_name(value) == value


@pytest.mark.parametrize("value", ["", "W" * 65, "with space", "ü", "a/b", "name\n", None])
def test_a_bad_token_name_is_refused(value: object) -> None:
    assert refusal(lambda: validation.token_name(value)).field == "name"


def test_a_worker_must_come_from_verify_worker_token() -> None:
    worker = Worker("worker-1")
    assert validation.worker(worker) is worker
    assert refusal(lambda: validation.worker("worker-1")).field == "worker"
