"""``jobdesk`` in a subprocess: outputs for people and for scripts, errors and exit codes."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobdesk import JobStatus
from jobdesk.sync import JobDesk as SyncJobDesk
from tests.processes import free_port

REPOSITORY = Path(__file__).resolve().parents[2]
MISSING_ID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
DEADLINE = 30.0


def jobdesk(
    *args: str,
    db: str | None = None,
    stdin: str | None = None,
    cwd: Path | str = REPOSITORY,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jobdesk ARGS`` in ``cwd`` with ``JOBDESK_DB=db``; its exit code, outputs."""
    environment = {**os.environ, "COLUMNS": "200", **env}
    environment.pop("JOBDESK_DB", None)
    environment.pop("JOBDESK_DEBUG", None)
    if db is not None:
        environment["JOBDESK_DB"] = db
    return subprocess.run(
        [sys.executable, "-m", "jobdesk", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE * 2,
        cwd=cwd,
        env=environment,
        check=False,
    )


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error a command printed: exactly one line on stderr, no traceback."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite database: only some commands may start one."""
    url = f"sqlite:///{tmp_path / 'jobdesk.db'}"
    with SyncJobDesk.open(url):
        pass
    return url


def test_a_job_s_life_from_the_command_line_in_json(store_url: str) -> None:
    created = json_of(
        jobdesk("jobs", "create", "render", "--user", "alice", "--input", '{"frames": 3}',
                "--project", "pilot", "--priority", "5", "--json", db=store_url)
    )  # fmt: skip
    assert (created["status"], created["input"], created["priority"]) == (
        "pending",
        {"frames": 3},
        5,
    )
    job_id = created["id"]

    page = json_of(
        jobdesk("jobs", "list", "-u", "alice", "--status", "pending", "--json", db=store_url)
    )
    assert [item["id"] for item in page["items"]] == [job_id]
    assert page["next_cursor"] is None
    assert json_of(jobdesk("jobs", "list", "-u", "bob", "--json", db=store_url))["items"] == []

    cancelled = json_of(jobdesk("jobs", "cancel", job_id, "-u", "alice", "--json", db=store_url))
    assert cancelled["status"] == "cancelled"
    retried = json_of(jobdesk("jobs", "retry", job_id, "-u", "alice", "--json", db=store_url))
    assert retried["status"] == "pending"

    shown = json_of(jobdesk("jobs", "show", job_id, "-u", "alice", "--json", db=store_url))
    assert shown["job"]["project_id"] == "pilot"
    assert [event["status"] for event in shown["history"]] == ["pending", "cancelled", "pending"]
    # Another user's job looks exactly like a missing one.
    refused = jobdesk("jobs", "show", job_id, "-u", "bob", db=store_url)
    assert refused.returncode == 3
    assert one_error_line(refused) == f"error: job {job_id!r} not found"


def test_create_prints_only_the_id_on_stdout_and_reads_input_from_a_file_or_stdin(
    sqlite_url: str, tmp_path: Path
) -> None:
    document = tmp_path / "input.json"
    document.write_text('{"episode_ids": ["ep-1"]}', encoding="utf-8")
    from_file = jobdesk(
        "jobs", "create", "extract", "-u", "alice", "-i", f"@{document}", db=sqlite_url
    )
    from_stdin = jobdesk(
        "jobs", "create", "extract", "-u", "alice", "-i", "-", db=sqlite_url, stdin="[1, 2]"
    )

    ids = [from_file.stdout.strip(), from_stdin.stdout.strip()]
    assert all(len(job_id) == 26 for job_id in ids)
    assert f"created extract job {ids[0]} for alice (pending)" in from_file.stderr
    with SyncJobDesk.open(sqlite_url) as desk:
        assert desk.get_job_status(ids[0], "alice").input == {"episode_ids": ["ep-1"]}
        assert desk.get_job_status(ids[1], "alice").input == [1, 2]


ERRORS = [
    (["jobs", "show", MISSING_ID, "-u", "alice"], 3, f"error: job {MISSING_ID!r} not found"),
    (["jobs", "show", "not-an-id", "-u", "alice"], 2, "error: job_id: must be a job id"),
    (["jobs", "create", "Bad Type", "-u", "alice"], 2, "error: type: must match"),
    (["jobs", "create", "x", "-u", "alice", "-i", "{oops"], 2, "error: --input: must be JSON"),
    (["jobs", "create", "x", "-u", "a", "--run-at", "2030-01-01T00:00"], 2, "error: --run-at:"),
    (["jobs", "list", "-u", "alice", "--limit", "500"], 2, "error: limit: must be between 1"),
    (["tokens", "revoke", "nobody"], 3, "error: no live worker token named 'nobody'"),
    (["limits", "user", "x" * 200], 2, "error: user_id: must be 1-128 characters long"),
    # Usage errors too are one line, with Click's exit code 2 and where to find help.
    (
        ["jobs", "list"],
        2,
        "error: Missing option '--user' / '-u'. (see 'jobdesk jobs list --help')",
    ),
    (["jobs", "list", "-u", "alice", "--limit", "x"], 2, "error: Invalid value for '--limit':"),
    (["jobs", "frob"], 2, "error: No such command 'frob'. (see 'jobdesk jobs --help')"),
    (["--db", "postgresql://x@[bad/db", "stats"], 2, "error: --db: must be a database URL"),
    (["stats", "--db", "mysql://localhost/jobs"], 2, "error: --db: must start with sqlite:///"),
]


@pytest.mark.parametrize(("args", "code", "message"), ERRORS)
def test_an_error_is_one_readable_line_and_its_exit_code(
    sqlite_url: str, args: list[str], code: int, message: str
) -> None:
    result = jobdesk(*args, db=sqlite_url)
    assert result.returncode == code
    assert one_error_line(result).startswith(message)
    assert result.stdout == ""


def test_refusals_by_the_rules_have_their_own_exit_codes(sqlite_url: str) -> None:
    job_id = jobdesk("jobs", "create", "render", "-u", "alice", db=sqlite_url).stdout.strip()
    retried = jobdesk("jobs", "retry", job_id, "-u", "alice", db=sqlite_url)
    assert retried.returncode == 6
    assert one_error_line(retried) == f"error: job {job_id!r}: a pending job cannot be retried"

    usage = json_of(
        jobdesk("limits", "user", "alice", "--max-waiting", "1", "--json", db=sqlite_url)
    )
    assert (usage["waiting"], usage["max_waiting"], usage["max_daily"]) == (1, 1, 1000)
    limited = jobdesk("jobs", "create", "render", "-u", "alice", "--json", db=sqlite_url)
    assert limited.returncode == 4
    error = json.loads(one_error_line(limited))["error"]
    assert (error["type"], error["limit"], error["exit_code"]) == ("RateLimited", "waiting", 4)

    unreachable = jobdesk("migrate", db="sqlite:////no/such/directory/jobdesk.db")
    assert unreachable.returncode == 7
    assert one_error_line(unreachable).startswith("error: cannot open SQLite database")


def test_a_file_that_is_not_a_database_is_a_bad_db_not_an_outage(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, and long enough for SQLite to tell\n" * 4, encoding="utf-8")
    url = f"sqlite:///{notes}"
    for args in (["migrate"], ["jobs", "list", "-u", "alice"]):
        result = jobdesk(*args, db=url)
        assert result.returncode == 2  # not 7, "try again": trying again will not help
        assert one_error_line(result) == (
            f"error: --db: {url} is not an SQLite database (file is not a database)"
        )


@pytest.mark.parametrize(
    "args",
    [["stats"], ["jobs", "list", "-u", "alice"], ["jobs", "show", MISSING_ID, "-u", "alice"],
     ["tokens", "list"], ["limits", "user", "alice"]],
)  # fmt: skip
def test_commands_that_read_refuse_a_missing_database_rather_than_create_it(
    tmp_path: Path, args: list[str]
) -> None:
    result = jobdesk(*args, cwd=tmp_path)  # no --db, no JOBDESK_DB: ./jobdesk.db
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"error: --db: no database at {tmp_path / 'jobdesk.db'}: give --db or set "
        "JOBDESK_DB (`jobdesk migrate` creates a new one)"
    )
    assert list(tmp_path.iterdir()) == []


def test_commands_that_create_may_start_a_new_database(tmp_path: Path) -> None:
    token = jobdesk("tokens", "create-worker", "gpu-1", cwd=tmp_path)
    assert token.returncode == 0, token.stderr
    assert (tmp_path / "jobdesk.db").exists()
    assert json_of(jobdesk("tokens", "list", "--json", cwd=tmp_path))[0]["name"] == "gpu-1"


def test_json_errors_name_the_field_and_the_rule(sqlite_url: str) -> None:
    result = jobdesk("jobs", "list", "-u", "alice", "--status", "done", "--json", db=sqlite_url)
    assert result.returncode == 2
    error = json.loads(one_error_line(result))["error"]
    assert (error["type"], error["field"]) == ("InvalidInput", "status")
    assert error["rule"].startswith("must be one of: pending, processing")


def test_an_unexpected_error_shows_its_traceback_only_with_debug(
    sqlite_url: str, tmp_path: Path
) -> None:
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('bad config')\n", encoding="utf-8")
    args = ["worker", "--app", "broken_app:registry", "--app-dir", str(tmp_path)]

    quiet = jobdesk(*args, db=sqlite_url, JOBDESK_WORKER_TOKEN="jdw_unused")
    assert quiet.returncode == 1
    assert one_error_line(quiet) == (
        "error: unexpected RuntimeError: bad config (run again with --debug for the traceback)"
    )
    for loud in (
        jobdesk("--debug", *args, db=sqlite_url, JOBDESK_WORKER_TOKEN="jdw_unused"),
        jobdesk(*args, "--debug", db=sqlite_url, JOBDESK_WORKER_TOKEN="jdw_unused"),
    ):
        assert loud.returncode == 1
        assert "Traceback" in loud.stderr
        assert "RuntimeError: bad config" in loud.stderr


def test_tokens_are_created_listed_and_revoked(sqlite_url: str) -> None:
    token = jobdesk("tokens", "create-worker", "gpu-1", "--types", "render,extract", db=sqlite_url)
    assert token.stdout.startswith("jdw_")
    assert "shown once" in token.stderr
    user_token = json_of(jobdesk("tokens", "create-user", "alice", "--json", db=sqlite_url))
    assert user_token["token"].startswith("jdu_")

    [listed] = json_of(jobdesk("tokens", "list", "--json", db=sqlite_url))
    assert (listed["name"], listed["types"], listed["revoked_at"]) == (
        "gpu-1",
        ["extract", "render"],
        None,
    )
    revoked = json_of(jobdesk("tokens", "revoke", "gpu-1", "--json", db=sqlite_url))
    assert revoked == {"name": "gpu-1", "revoked": 1}
    [after] = json_of(jobdesk("tokens", "list", "--json", db=sqlite_url))
    assert after["revoked_at"] is not None

    refused = jobdesk("worker", "--app", "examples.character_extraction.jobs:registry",
                      db=sqlite_url, JOBDESK_WORKER_TOKEN=token.stdout.strip())  # fmt: skip
    assert refused.returncode == 5
    assert one_error_line(refused) == "error: this worker token was revoked"


def test_limits_are_set_and_shown(sqlite_url: str) -> None:
    text = jobdesk(
        "limits", "user", "alice", "--max-running", "2", "--max-daily", "50", "--weight", "3",
        db=sqlite_url,
    )  # fmt: skip
    assert text.stdout.startswith("alice: 0/2 running, 0/1000 waiting, 0/50 created today")
    assert text.stdout.rstrip().endswith("weight 3")
    shown = json_of(jobdesk("limits", "user", "alice", "--json", db=sqlite_url))
    assert (shown["max_running"], shown["max_daily"], shown["weight"]) == (2, 50, 3.0)
    defaults = json_of(
        jobdesk("limits", "user", "alice", "--max-waiting", "7", "--json", db=sqlite_url)
    )
    assert (defaults["max_running"], defaults["max_waiting"], defaults["weight"]) == (10, 7, 1.0)


def test_the_old_limits_commands_still_work_and_say_they_are_deprecated(sqlite_url: str) -> None:
    old = jobdesk("limits", "set", "alice", "--max-active", "2", "--json", db=sqlite_url)
    assert json_of(old)["max_running"] == 2
    assert "deprecated" in old.stderr
    shown = jobdesk("limits", "show", "alice", "--json", db=sqlite_url)
    assert json_of(shown)["max_running"] == 2
    assert "deprecated" in shown.stderr


def test_a_types_pool_and_rate_are_set_listed_and_cleared(sqlite_url: str) -> None:
    assert jobdesk("limits", "types", db=sqlite_url).stdout.strip() == (
        "no job type has a pool or a rate"
    )
    set_ = jobdesk("limits", "type", "gpu", "--max-running", "4", "--rate", "60/min",
                   "--json", db=sqlite_url)  # fmt: skip
    assert json_of(set_) == [{"type": "gpu", "max_running": 4, "rate": "60/min"}]
    listed = jobdesk("limits", "types", db=sqlite_url).stdout
    assert listed.strip() == "gpu: at most 4 running, rate 60/min"
    bad = jobdesk("limits", "type", "gpu", "--rate", "5/fortnight", db=sqlite_url)
    assert bad.returncode == 2
    assert "rate" in one_error_line(bad)
    jobdesk("limits", "type", "gpu", "--clear", db=sqlite_url)
    assert json_of(jobdesk("limits", "types", "--json", db=sqlite_url)) == []


def test_migrate_prepares_a_new_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert json_of(jobdesk("migrate", "--json", db=url)) == {"db": url, "migrated": True}
    assert (tmp_path / "new.db").exists()


def test_the_version_and_the_help(sqlite_url: str) -> None:
    assert jobdesk("--version").stdout.strip() == "jobdesk 0.1.0"
    help_text = jobdesk("--help").stdout
    for command in ("migrate", "worker", "jobs", "tokens", "limits", "Exit codes"):
        assert command in help_text
    assert jobdesk().returncode == 2  # no command: the help, as a usage error


@pytest.mark.parametrize(("ending", "code"), [(JobStatus.FAILED, 8), (JobStatus.CANCELLED, 9)])
def test_watch_of_an_ended_job_returns_at_once_with_its_exit_code(
    sqlite_url: str, ending: JobStatus, code: int
) -> None:
    with SyncJobDesk.open(sqlite_url) as desk:
        job = desk.create_job("alice", "render", {})
        if ending is JobStatus.CANCELLED:
            desk.cancel_job(job.id, "alice")
        else:
            worker = desk.verify_worker_token(desk.create_worker_token("w"))
            [held] = desk.claim_jobs(worker)
            desk.fail_job(worker, job.id, "out of memory", retryable=False, attempt=held.attempt)

    result = jobdesk("jobs", "watch", job.id, "-u", "alice", db=sqlite_url)
    assert result.returncode == code
    assert result.stderr.strip().startswith(f"job {job.id} {ending.value}")


def read_lines(process: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The lines ``process`` prints, as they come, and the thread that reads them."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def next_state(lines: queue.Queue[str], wanted: dict[str, Any]) -> dict[str, Any]:
    """The next printed job whose fields include ``wanted``."""
    deadline = time.monotonic() + DEADLINE
    while True:
        job: dict[str, Any] = json.loads(lines.get(timeout=deadline - time.monotonic()))
        if all(job[key] == value for key, value in wanted.items()):
            return job


def test_watch_follows_a_running_job_live_until_it_completes(store_url: str) -> None:
    with SyncJobDesk.open(store_url) as desk:
        job = desk.create_job("alice", "render", {})
        watch = subprocess.Popen(
            [sys.executable, "-m", "jobdesk", "jobs", "watch", job.id, "-u", "alice",
             "--json", "--interval", "0.1", "--db", store_url],
            cwd=REPOSITORY, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        lines, reader = read_lines(watch)
        try:
            next_state(lines, {"status": "pending"})
            worker = desk.verify_worker_token(desk.create_worker_token("w"))
            [held] = desk.claim_jobs(worker)
            desk.update_job_progress(worker, job.id, 40, "frame 2 of 5", attempt=held.attempt)
            seen = next_state(lines, {"progress": 40})
            assert (seen["status"], seen["progress_message"]) == ("processing", "frame 2 of 5")
            desk.complete_job(worker, job.id, {"frames": 5}, attempt=held.attempt)
            done = next_state(lines, {"status": "completed"})
            assert done["result"] == {"frames": 5}
            assert watch.wait(timeout=DEADLINE) == 0
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
            reader.join(timeout=DEADLINE)
            assert watch.stdout is not None
            watch.stdout.close()


def test_the_worker_command_drains_the_queue_with_the_example_app(store_url: str) -> None:
    with SyncJobDesk.open(store_url) as desk:
        token = desk.create_worker_token("drainer")
        jobs = [
            desk.create_job("alice", "character_extraction",
                            {"episode_ids": ["s01e01", "s01e02"], "seconds_per_episode": 0.01}),
            desk.create_job("bob", "episode_summary",
                            {"episode_ids": ["s01e01"], "seconds_per_episode": 0.01}),
            desk.create_job("bob", "character_extraction", {"episode_ids": "not a list"}),
        ]  # fmt: skip
        result = jobdesk(
            "worker", "--app", "examples.character_extraction.jobs:registry", "--until-empty",
            "--concurrency", "3", db=store_url, JOBDESK_WORKER_TOKEN=token,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        done = [desk.get_job_status(job.id, job.user_id) for job in jobs]

    assert [job.status for job in done] == [
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
    ]
    assert done[0].result["characters"]
    assert done[1].result == {"summary": ["s01e01: things happen"]}
    assert done[2].error == {
        "message": "input.episode_ids must be a list of episode ids",
        "code": "bad_input",
    }
    [summary] = [line for line in result.stderr.splitlines() if "worker drainer stopped" in line]
    assert "'completed': 2" in summary
    assert "'failed': 1" in summary


EXAMPLE = "examples.character_extraction.jobs"
SETUP_ERRORS = [
    ([f"{EXAMPLE}:registry"], {}, "error: --token: a worker token is required"),
    (["no_such_module:registry"], {"JOBDESK_WORKER_TOKEN": "x"}, "error: --app: cannot import"),
    ([f"{EXAMPLE}:CAST"], {"JOBDESK_WORKER_TOKEN": "x"}, f"error: --app: {EXAMPLE}:CAST is not"),
    ([EXAMPLE], {"JOBDESK_WORKER_TOKEN": "x"}, "error: --app: must look like"),
]


@pytest.mark.parametrize(("args", "env", "message"), SETUP_ERRORS)
def test_the_worker_command_explains_a_bad_setup(
    sqlite_url: str, args: list[str], env: dict[str, str], message: str
) -> None:
    result = jobdesk("worker", "--app", *args, db=sqlite_url, **env)
    assert result.returncode == 2
    assert one_error_line(result).startswith(message)


@pytest.fixture
def server(sqlite_url: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jobdesk", "serve", "--port", str(port), "--db", sqlite_url],
        cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    yield process, port
    if process.poll() is None:
        process.kill()
        process.wait()
    assert process.stderr is not None
    process.stderr.close()


def wait_until_answering(port: int) -> None:
    """Return once the server on ``port`` answers ``/healthz``."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
                assert reply.status == 200
                return
        except OSError:
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.1)


def test_serve_answers_until_sigterm(server: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = server
    wait_until_answering(port)
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down cleanly, then ends by the signal it was sent, as it should.
    assert process.wait(timeout=DEADLINE) in {0, -signal.SIGTERM}
    assert process.stderr is not None
    said = process.stderr.read().decode()
    # Before its logs: where the dashboard is and how to sign in.
    assert f"dashboard: http://127.0.0.1:{port}/ : sign in with a user token" in said
    assert "jobdesk tokens create-user USER_ID" in said
    assert f"operators: http://127.0.0.1:{port}/admin" in said


def test_a_worker_over_http_logs_its_jobs_not_every_request(
    sqlite_url: str, server: tuple[subprocess.Popen[bytes], int]
) -> None:
    _, port = server
    with SyncJobDesk.open(sqlite_url) as desk:
        token = desk.create_worker_token("remote")
        job = desk.create_job(
            "alice", "character_extraction", {"episode_ids": ["e1"], "seconds_per_episode": 0.01}
        )
    wait_until_answering(port)
    args = ["worker", "--app", f"{EXAMPLE}:registry", "--until-empty"]
    args += ["--server", f"http://127.0.0.1:{port}", "--token", token]
    result = jobdesk(*args)
    assert result.returncode == 0, result.stderr
    assert "worker remote stopped" in result.stderr
    assert "HTTP Request" not in result.stderr  # httpx's line for each request
    with SyncJobDesk.open(sqlite_url) as desk:
        assert desk.get_job_status(job.id, "alice").status is JobStatus.COMPLETED


def test_stats_show_the_queue_the_workers_and_the_throughput(sqlite_url: str) -> None:
    with SyncJobDesk.open(sqlite_url) as desk:
        worker = desk.verify_worker_token(desk.create_worker_token("gpu-1"))
        for n in range(3):
            desk.create_job("alice", "render", {"n": n})
        [done, _running] = desk.claim_jobs(worker, limit=2)
        desk.complete_job(worker, done.id, "ok", attempt=done.attempt)

    snapshot = json_of(jobdesk("stats", "--json", db=sqlite_url))
    assert snapshot["counts"] == [
        {"type": "render", "status": "completed", "count": 1},
        {"type": "render", "status": "pending", "count": 1},
        {"type": "render", "status": "processing", "count": 1},
    ]
    assert [(seen["name"], seen["processing"]) for seen in snapshot["workers"]] == [("gpu-1", 1)]
    assert snapshot["throughput"] == {"completed": 1, "failed": 0, "per_minute": 0.2}
    text = jobdesk("stats", db=sqlite_url).stdout
    assert "throughput: 1 completed, 0 failed in the last 5 min (0.2/min)" in text


def test_the_job_list_shows_the_attempts_used_and_never_cuts_the_status(sqlite_url: str) -> None:
    with SyncJobDesk.open(sqlite_url) as desk:
        job = desk.create_job("alice", "character_extraction", {})
        worker = desk.verify_worker_token(desk.create_worker_token("w"))
        for _ in range(2):  # two attempts handed back unfinished: neither is used up
            [held] = desk.claim_jobs(worker)
            desk.release_job(worker, job.id, attempt=held.attempt)
        [held] = desk.claim_jobs(worker)
        desk.update_job_progress(worker, job.id, 40, "episode 2 of 5", attempt=held.attempt)
    assert held.attempt == 3

    narrow = jobdesk("jobs", "list", "-u", "alice", db=sqlite_url, COLUMNS="80")
    assert narrow.returncode == 0, narrow.stderr
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    [row] = [line for line in narrow.stdout.splitlines() if job.id in line]
    cells = re.split(r"\s{2,}", row.strip())
    assert cells[1:4] == ["processing", "40%", "1 of 3"]  # the first attempt of a budget of 3

    shown = jobdesk("jobs", "show", job.id, "-u", "alice", db=sqlite_url).stdout
    assert "attempt: 3" in shown
    assert "attempts_left: 2" in shown


def test_the_job_list_fits_the_terminal_one_job_a_line_and_json_keeps_it_all(
    sqlite_url: str,
) -> None:
    long_type = "a_very_long_job_type_name_for_the_extraction_of_characters"
    with SyncJobDesk.open(sqlite_url) as desk:
        jobs = [desk.create_job("alice", long_type, {}) for _ in range(3)]
        worker = desk.verify_worker_token(desk.create_worker_token("w"))
        [held] = desk.claim_jobs(worker)
        desk.update_job_progress(worker, held.id, 14.4444, "x" * 300, attempt=held.attempt)

    for width in (60, 80, 100, 160):
        listed = jobdesk("jobs", "list", "-u", "alice", db=sqlite_url, COLUMNS=str(width))
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert max(len(line) for line in lines) <= width, (width, listed.stdout)
        for job in jobs:  # one line each, the id whole
            assert len([line for line in lines if job.id in line]) == 1, (width, listed.stdout)
        header = lines[0].split()
        assert header[:3] == ["id", "status", "progress"]
        if width >= 80:
            assert "type" in header
            assert "attempts" in header
            assert long_type not in listed.stdout
            assert "…" in listed.stdout  # cut with an ellipsis, not folded onto more lines
    wide = jobdesk("jobs", "list", "-u", "alice", db=sqlite_url, COLUMNS="160").stdout
    assert "14%" in wide  # rounded
    assert "message" in wide.splitlines()[0]

    page = json_of(jobdesk("jobs", "list", "-u", "alice", "--json", db=sqlite_url))
    assert {item["type"] for item in page["items"]} == {long_type}
    assert "x" * 300 in {item["progress_message"] for item in page["items"]}


def test_json_times_are_written_as_the_http_api_writes_them(sqlite_url: str) -> None:
    with SyncJobDesk.open(sqlite_url) as desk:
        job = desk.create_job("alice", "render", {})
    outputs = [
        jobdesk("jobs", "list", "-u", "alice", "--json", db=sqlite_url),
        jobdesk("jobs", "show", job.id, "-u", "alice", "--json", db=sqlite_url),
        jobdesk("limits", "user", "alice", "--json", db=sqlite_url),
    ]
    stamps = [
        stamp
        for output in outputs
        for stamp in re.findall(r'"(\d{4}-\d\d-\d\dT[^"]*)"', output.stdout)
    ]
    assert len(stamps) >= 8, [output.stdout for output in outputs]
    assert all(stamp.endswith("Z") and "+00:00" not in stamp for stamp in stamps), stamps
    text = jobdesk("limits", "user", "alice", db=sqlite_url).stdout
    assert "+00:00" not in text
    assert "Z)" in text
