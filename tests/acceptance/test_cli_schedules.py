"""``jobdesk schedules ...`` in a subprocess, on each store: a schedule's life, bad input
as one line and exit code 2 with nothing written, a missing one as exit code 3."""

from __future__ import annotations

from jobdesk.sync import JobDesk as SyncJobDesk
from tests.acceptance.test_cli import jobdesk, json_of, one_error_line


def test_a_schedules_life_from_the_command_line(store_url: str) -> None:
    made = json_of(
        jobdesk(
            "schedules", "create", "nightly", "0 3 * * *", "report", "--user", "alice",
            "--input", '{"depth": 2}', "--tz", "Europe/Paris", "--missed", "skip", "--json",
            db=store_url,
        )
    )  # fmt: skip
    assert (made["name"], made["timezone"], made["missed"]) == ("nightly", "Europe/Paris", "skip")
    assert made["input"] == {"depth": 2}
    assert made["next_run_at"].endswith(":00:00Z")
    assert json_of(jobdesk("schedules", "list", "--json", db=store_url)) == [made]
    assert json_of(jobdesk("schedules", "pause", "nightly", "--json", db=store_url))["paused"]
    shown = json_of(jobdesk("schedules", "show", "nightly", "--json", db=store_url))
    assert shown["paused"] is True
    resumed = json_of(jobdesk("schedules", "resume", "nightly", "--json", db=store_url))
    assert resumed["paused"] is False
    assert json_of(jobdesk("schedules", "run", "--json", db=store_url)) == {"jobs_made": 0}
    table = jobdesk("schedules", "list", db=store_url)
    assert table.returncode == 0
    assert "nightly" in table.stdout
    assert "Europe/Paris" in table.stdout
    deleted = jobdesk("schedules", "delete", "nightly", db=store_url)
    assert deleted.returncode == 0
    assert "deleted schedule nightly" in deleted.stdout
    missing = jobdesk("schedules", "show", "nightly", db=store_url)
    assert missing.returncode == 3
    assert one_error_line(missing) == "error: schedule 'nightly' not found"


def test_bad_schedules_are_one_line_naming_the_field_and_write_nothing(store_url: str) -> None:
    first = jobdesk("schedules", "create", "nightly", "@daily", "report", "-u", "a", db=store_url)
    assert first.returncode == 0, first.stderr
    for arguments, field in (
        (["other", "61 * * * *", "report"], "cron"),
        (["other", "0 3 * * *", "report", "--tz", "Atlantis/Capital"], "timezone"),
        (["nightly", "0 4 * * *", "report"], "name"),
        (["other", "0 3 * * *", "report", "--missed", "never"], "missed"),
        (["other", "0 3 * * *", "report", "--input", "{not json"], "--input"),
    ):
        refused = jobdesk("schedules", "create", *arguments, "--user", "alice", db=store_url)
        assert refused.returncode == 2, refused.stderr
        assert one_error_line(refused).startswith(f"error: {field}: ")
    with SyncJobDesk.open(store_url) as desk:
        assert [each.name for each in desk.list_schedules()] == ["nightly"]
