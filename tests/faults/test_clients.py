"""How the experiment's clients classify what they were told (no I/O)."""

from __future__ import annotations

import pytest

from jobdesk.errors import InvalidInput, RateLimited, StoreUnavailable
from tests.faults.clients import PROBLEM_PREFIX, classify_http, classify_library


def problem(slug: str, status: int, **extra: object) -> dict[str, object]:
    return {"type": PROBLEM_PREFIX + slug, "status": status, "detail": "...", **extra}


def test_a_store_that_says_nothing_was_applied_is_a_failed_create_not_an_unknown_one() -> None:
    busy = StoreUnavailable("SQLite database 'x.db': database is locked")
    assert classify_library(busy)[0] == "failed"
    unreachable = StoreUnavailable("PostgreSQL is unreachable: connection refused")
    assert classify_library(unreachable)[0] == "failed"


def test_a_commit_cut_off_is_unknown() -> None:
    cut = StoreUnavailable("the connection broke while committing", outcome_unknown=True)
    assert classify_library(cut)[0] == "unknown"


def test_limits_and_invalid_input_are_refused_and_failed() -> None:
    assert classify_library(RateLimited("waiting", 4)) == ("refused", "waiting")
    assert classify_library(InvalidInput("type", "unknown"))[0] == "failed"


@pytest.mark.parametrize(
    ("status", "document", "outcome"),
    [
        (201, {"id": "j"}, "ok"),
        (429, problem("rate-limited", 429, limit="daily"), "refused"),
        (422, problem("invalid-input", 422), "failed"),
        (401, problem("unauthorized", 401), "failed"),
        (413, None, "failed"),
        # The server's 503 says whether the store's write may have been applied.
        (503, problem("store-unavailable", 503, outcome_unknown=False), "failed"),
        (503, problem("store-unavailable", 503, outcome_unknown=True), "unknown"),
        (503, problem("store-unavailable", 503), "unknown"),  # an older server
        (500, problem("internal-error", 500), "unknown"),
        (502, None, "unknown"),
    ],
)
def test_http_answers_are_classified_by_their_problem_type(
    status: int, document: object, outcome: str
) -> None:
    assert classify_http(status, document)[0] == outcome
