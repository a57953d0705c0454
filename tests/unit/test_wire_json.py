"""The hot routes' JSON writer: the same job document as the wire's and the API's model."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobdesk import wire
from jobdesk.http.responses import json_response
from jobdesk.http.schemas import JobOut
from jobdesk.models import Job, Waiting, WaitReason
from tests.unit.test_wire import JOBS

PARIS = timezone(timedelta(hours=1))


def _variants() -> list[Job]:
    """The wire tests' jobs, and some with a wait, a structured error and times off UTC."""
    base = JOBS[0]
    return [
        *JOBS,
        dataclasses.replace(
            base,
            waiting=Waiting(
                WaitReason.BACKOFF, until=datetime(2026, 3, 1, 13, 0, 0, 250000, tzinfo=PARIS)
            ),
            error={"message": "boom", "code": "E1", "details": {"é": [1, 2.5, None]}},
        ),
        dataclasses.replace(
            base,
            waiting=Waiting(WaitReason.QUEUED, ahead=3),
            created_at=datetime(2026, 3, 1, 13, 0, tzinfo=PARIS),
            run_at=datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
            input={"text": "line\u2028break \U0001f600", "big": 10**30, "small": 1e-9},
        ),
    ]


@pytest.mark.parametrize("job", _variants(), ids=lambda job: f"{job.status}-{job.attempt}")
def test_a_hot_route_writes_the_wires_document_and_the_models(job: Job) -> None:
    written = json.loads(bytes(json_response(wire.job_values(job)).body))
    assert written == wire.encode_job(job)
    assert written == JobOut.of(job).model_dump(mode="json")


@pytest.mark.parametrize("job", _variants(), ids=lambda job: f"{job.status}-{job.attempt}")
def test_a_job_written_by_a_hot_route_reads_back_unchanged(job: Job) -> None:
    written = json.loads(bytes(json_response(wire.job_values(job)).body))
    # Times compare as instants: one written off UTC reads back as the same moment.
    assert wire.decode_job(written) == job


def test_its_response_is_json_with_the_status_asked_for() -> None:
    response = json_response({"at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC)}, status_code=201)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert bytes(response.body) == b'{"at":"2026-03-01T12:00:00Z"}'
