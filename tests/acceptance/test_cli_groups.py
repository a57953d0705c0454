"""``jobdesk groups`` in a subprocess: a group's life from the command line, on each store."""

from __future__ import annotations

import json
from pathlib import Path

from jobdesk.sync import JobDesk as SyncJobDesk
from tests.acceptance.test_cli import MISSING_ID, jobdesk, json_of, one_error_line


def test_a_groups_life_from_the_command_line(store_url: str, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"type": "episode", "input": {"n": n}} for n in range(3)]))
    created = json_of(
        jobdesk(
            "groups", "create", "-u", "alice", "--jobs", f"@{jobs}", "--name", "book",
            "--on-complete", "merge", "--json", db=store_url,
        )
    )  # fmt: skip
    assert (created["status"], created["size"], created["name"]) == ("pending", 3, "book")
    group_id = created["id"]
    listed = json_of(jobdesk("groups", "list", "-u", "alice", "--json", db=store_url))
    assert [item["id"] for item in listed["items"]] == [group_id]
    shown = json_of(jobdesk("groups", "show", group_id, "-u", "alice", "--json", db=store_url))
    assert [job["input"] for job in shown["jobs"]] == [{"n": n} for n in range(3)]
    table = jobdesk("groups", "show", group_id, "-u", "alice", db=store_url)
    assert table.returncode == 0, table.stderr
    assert group_id in table.stdout
    with SyncJobDesk.open(store_url) as desk:
        worker = desk.verify_worker_token(desk.create_worker_token("w1"))
        [first] = desk.claim_jobs(worker)
        desk.fail_job(worker, first.id, "no", retryable=False, attempt=first.attempt)
    cancelled = json_of(
        jobdesk("groups", "cancel", group_id, "-u", "alice", "--json", db=store_url)
    )
    assert (cancelled["status"], cancelled["counts"]["failed"]) == ("cancelled", 1)
    watched = jobdesk("groups", "watch", group_id, "-u", "alice", db=store_url)
    assert watched.returncode == 9, watched.stderr
    retried = json_of(jobdesk("groups", "retry", group_id, "-u", "alice", "--json", db=store_url))
    assert (retried["status"], retried["counts"]["pending"]) == ("running", 1)


def test_group_errors_are_one_line_with_their_exit_codes(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'jobdesk.db'}"
    SyncJobDesk.open(sqlite_url).close()
    missing = jobdesk("groups", "show", MISSING_ID, "-u", "alice", db=sqlite_url)
    assert missing.returncode == 3
    assert "not found" in one_error_line(missing)
    bad = jobdesk(
        "groups", "create", "-u", "alice", "--jobs", '[{"type": "ok"}, {"input": 1}]',
        db=sqlite_url,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "jobs[1]" in one_error_line(bad)
    empty = jobdesk("groups", "create", "-u", "alice", "--jobs", "[]", db=sqlite_url)
    assert empty.returncode == 2
    assert "jobs" in one_error_line(empty)
