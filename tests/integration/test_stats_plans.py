"""The queries behind the dashboard's pages and ``jobdesk stats`` read through indexes.

A desk that has run for a while holds far more finished jobs than live ones: here 30,000
jobs of 500 users that finished three days ago, next to a few pending, processing and
recently finished ones. Every query that a page (the operator's or a user's) or
``get_queue_stats`` runs must find its rows through an index, never by reading the
whole ``jobs`` table (or ``job_events``, or ``users``): the plans are checked with
``EXPLAIN``, both before any ``ANALYZE`` (the planner guesses) and after it (the planner
knows how few jobs are live and how many finished long ago).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobdesk import JobDesk
from jobdesk.ids import first_id_at, new_job_id
from jobdesk.store import load_queries

HISTORY = 30_000
HISTORY_USERS = 500
#: the tables a page must never read whole
TABLES = ("jobs", "job_events", "users")

#: query name -> the pages that run it
PAGE_QUERIES = {
    # /admin, and jobdesk stats (get_queue_stats)
    "stats_counts": "/admin, jobdesk stats",
    "stats_workers": "/admin, jobdesk stats",
    "throughput": "/admin",
    "oldest_pending": "/admin",
    "failed_jobs": "/admin",
    "top_users": "/admin",
    # /admin/jobs/<id>, /admin/users/<id>
    "select_job": "/admin/jobs/<id>",
    "select_events": "/admin/jobs/<id>, /jobs/<id>",
    "select_user": "/, /admin/users/<id>",
    "count_running": "/, /admin/users/<id>",
    "list_user_jobs": "/, /rows, /admin/users/<id>",
    # a user's pages
    "select_user_job": "/jobs/<id>",
    "list_user_jobs_changed_since": "/events (resync)",
    "select_token": "every page (the session's token)",
}
SQLITE_ONLY = {"list_user_jobs_by_status": "/?status=..."}
#: the plans are checked twice: on tables never analysed (autovacuum off, or not yet run
#: since the jobs came in: the planner guesses) and after ANALYZE (it knows)
ANALYZED = "after ANALYZE"
STAGES = ("before any ANALYZE", ANALYZED)


def _rows(now: datetime) -> Iterator[dict[str, Any]]:
    """The old history, then a few live and recently finished jobs."""
    old = now - timedelta(days=3)
    for number in range(HISTORY):
        at = old + timedelta(milliseconds=number * 7)
        yield {
            "id": first_id_at(at),  # ids carry their creation time
            "user_id": f"old-{number % HISTORY_USERS}",
            "type": ("transcription", "thumbnail", "extraction")[number % 3],
            "status": "failed" if number % 50 == 0 else "completed",
            "attempt": 1,
            "created_at": at,
            "started_at": at,
            "finished_at": at + timedelta(seconds=2),
            "worker_id": f"old-worker-{number % 7}",
            "lease_expires_at": None,
        }
    for number in range(30):
        status = ("pending", "processing", "completed")[number % 3]
        at = now - timedelta(minutes=30 - number)
        yield {
            "id": new_job_id(),
            "user_id": f"live-{number % 3}",
            "type": "transcription",
            "status": status,
            "attempt": 0 if status == "pending" else 1,
            "created_at": at,
            "started_at": None if status == "pending" else at,
            "finished_at": at if status == "completed" else None,
            "worker_id": None if status == "pending" else "live-worker",
            "lease_expires_at": now + timedelta(minutes=5) if status == "processing" else None,
        }


def _params(now: datetime, job_id: str, *, text_times: bool) -> dict[str, Any]:
    def time(value: datetime) -> Any:
        return value.astimezone(UTC).isoformat(timespec="microseconds") if text_times else value

    since = now - timedelta(hours=1)
    return {
        "now": time(now),
        "since": time(since),
        "since_id": first_id_at(since),
        "id": job_id,
        "job_id": job_id,
        "user_id": "old-1",
        "before_id": "8",
        "limit": 25,
        "types": None,
        "project_id": None,
        "statuses": None,
        "status_1": "failed",
        "status_2": None,
        "status_3": None,
        "status_4": None,
        "status_5": None,
        "day": now.date().isoformat() if text_times else now.date(),
        "kind": "user",
        "key_id": "missing",
    }


def _filled(now: datetime) -> list[dict[str, Any]]:
    rows = list(_rows(now))
    for row in rows:
        row["updated_at"] = row["finished_at"] or row["started_at"] or row["created_at"]
    return rows


_COLUMNS = (
    "id, user_id, type, status, input, attempt, max_attempts, created_at, run_at, started_at,"
    " finished_at, updated_at, worker_id, lease_expires_at"
)


@pytest.fixture
async def migrated(store_url: str) -> str:
    """The test's empty database, migrated."""
    async with JobDesk.open(store_url):
        pass
    return store_url


def _sqlite_full_scans(path: str, now: datetime) -> dict[str, list[str]]:
    queries = load_queries("jobdesk.store", "sqlite.sql")
    rows = _filled(now)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.executemany(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES (:id, :user_id, :type, :status, '{{}}',"
            " :attempt, 3, :created_at, :created_at, :started_at, :finished_at, :updated_at,"
            " :worker_id, :lease_expires_at)",
            [
                {
                    name: value.isoformat(timespec="microseconds")
                    if isinstance(value, datetime)
                    else value
                    for name, value in row.items()
                }
                for row in rows
            ],
        )
        connection.executemany(
            "INSERT INTO job_events (job_id, at, status, attempt) VALUES (?, ?, ?, 1)",
            [(row["id"], row["updated_at"].isoformat(), row["status"]) for row in rows],
        )
        connection.executemany(
            "INSERT OR IGNORE INTO users (user_id, usage_day, created_on_day) VALUES (?, ?, 100)",
            [(row["user_id"], row["created_at"].date().isoformat()) for row in rows],
        )
        params = _params(now, rows[0]["id"], text_times=True)
        found: dict[str, list[str]] = {}
        for stage in STAGES:
            if stage == ANALYZED:
                connection.execute("ANALYZE")
            for name in {**PAGE_QUERIES, **SQLITE_ONLY}:
                plan = connection.execute("EXPLAIN QUERY PLAN " + queries[name], params)
                details = [detail for _, _, _, detail in plan.fetchall()]
                scans = [
                    detail
                    for detail in details
                    if re.fullmatch(rf"SCAN ({'|'.join(TABLES)})( AS \w+)?", detail)
                ]
                if scans:
                    found[f"{name}, {stage}"] = details
    return found


def _postgres_full_scans(url: str, now: datetime) -> dict[str, list[str]]:
    queries = load_queries("jobdesk.store", "postgres.sql")
    rows = _filled(now)
    with psycopg.connect(url, autocommit=True) as connection:
        with connection.cursor() as cursor:
            copy = f"COPY jobdesk.jobs ({_COLUMNS}) FROM STDIN"
            with cursor.copy(copy) as writer:
                for row in rows:
                    writer.write_row(
                        (
                            row["id"], row["user_id"], row["type"], row["status"], "{}",
                            row["attempt"], 3, row["created_at"], row["created_at"],
                            row["started_at"], row["finished_at"], row["updated_at"],
                            row["worker_id"], row["lease_expires_at"],
                        )
                    )  # fmt: skip
            copy = "COPY jobdesk.job_events (job_id, at, status, attempt) FROM STDIN"
            with cursor.copy(copy) as writer:
                for row in rows:
                    writer.write_row((row["id"], row["updated_at"], row["status"], 1))
        connection.execute(
            "INSERT INTO jobdesk.users (user_id, usage_day, created_on_day)"
            " SELECT DISTINCT user_id, created_at::date, 100 FROM jobdesk.jobs"
            " ON CONFLICT DO NOTHING"
        )
        params = _params(now, rows[0]["id"], text_times=False)
        found: dict[str, list[str]] = {}
        for stage in STAGES:
            if stage == ANALYZED:
                connection.execute("ANALYZE jobdesk.jobs, jobdesk.job_events, jobdesk.users")
            for name in PAGE_QUERIES:
                cursor = connection.execute("EXPLAIN (FORMAT JSON) " + queries[name], params)
                (document,) = cursor.fetchone()  # type: ignore[misc]
                plan = document if isinstance(document, list) else json.loads(document)
                nodes = list(_nodes(plan[0]["Plan"]))
                if any(
                    node["Node Type"] == "Seq Scan" and node.get("Relation Name") in TABLES
                    for node in nodes
                ):
                    found[f"{name}, {stage}"] = [
                        f"{node['Node Type']} {node.get('Relation Name', '')}" for node in nodes
                    ]
    return found


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def test_no_page_query_reads_the_whole_jobs_table(migrated: str) -> None:
    now = datetime.now(UTC)
    if migrated.startswith("sqlite:"):
        found = _sqlite_full_scans(migrated.removeprefix("sqlite:///"), now)
    else:
        found = _postgres_full_scans(migrated.split("?", 1)[0], now)
    assert found == {}, f"full table scans: {json.dumps(found, indent=1)}"
