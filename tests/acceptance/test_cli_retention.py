"""``jobdesk retention ...`` in a subprocess, on each store: the policy shown, a dry run
that deletes nothing, a pass that deletes the expired jobs, and bad policies as one line
and exit code 2 with nothing deleted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from jobdesk import JobDesk
from jobdesk.cli.retention import policy_from, retaining
from jobdesk.errors import JobNotFound
from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.testing import ManualClock
from tests.acceptance.test_cli import jobdesk, json_of, one_error_line


def make_history(store_url: str) -> None:
    """Two jobs cancelled 40 days ago, one cancelled now, and one pending."""
    clock = ManualClock(datetime.now(UTC) - timedelta(days=40))
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        for n in range(2):
            desk.cancel_job(desk.create_job("alice", "render", {"n": n}).id, "alice")
    with SyncJobDesk.open(store_url) as desk:
        desk.cancel_job(desk.create_job("alice", "render", {}).id, "alice")
        desk.create_job("alice", "render", {})


def stored(store_url: str) -> int:
    with SyncJobDesk.open(store_url) as desk:
        return len(desk.get_user_jobs("alice").items)


def test_show_dry_run_and_run_from_the_command_line(store_url: str) -> None:
    make_history(store_url)
    shown = json_of(jobdesk("retention", "show", "--json", db=store_url))
    assert shown == {
        "policy": "completed=7d,failed=30d,cancelled=30d",
        "holder": None,
        "held_until": None,
        "last_run": None,
    }
    dry = json_of(jobdesk("retention", "run", "--dry-run", "--json", db=store_url))
    assert (dry["dry_run"], dry["total"], dry["deleted"]["cancelled"]) == (True, 2, 2)
    assert stored(store_url) == 4

    done = jobdesk("retention", "run", "--policy", "cancelled=1d", db=store_url)
    assert done.returncode == 0, done.stderr
    assert "2 deleted: completed 0, failed 0, cancelled 2" in done.stdout
    assert stored(store_url) == 2

    table = jobdesk("retention", "show", "--policy", "render.cancelled=forever", db=store_url)
    assert table.returncode == 0, table.stderr
    assert "forever" in table.stdout
    assert "last pass:" in table.stdout
    assert "2 deleted" in table.stdout


def test_bad_policies_are_one_line_naming_the_field_and_delete_nothing(store_url: str) -> None:
    make_history(store_url)
    for policy, field in (
        ("cancelled=-1d", "retention.cancelled"),
        ("cancelled=99999d", "retention.cancelled"),
        ("cancelled=0s", "retention.cancelled"),
        ("render.done=1d", "retention.types.render"),
        ("everything", "retention"),
    ):
        refused = jobdesk("retention", "run", "--policy", policy, db=store_url)
        assert refused.returncode == 2, refused.stderr
        assert one_error_line(refused).startswith(f"error: {field}: ")
    env_refused = jobdesk("retention", "run", db=store_url, JOBDESK_RETENTION="failed=1y")
    assert env_refused.returncode == 2
    assert one_error_line(env_refused).startswith("error: retention.failed: ")
    too_big = jobdesk("retention", "run", "--batch-size", "0", db=store_url)
    assert too_big.returncode == 2
    assert one_error_line(too_big).startswith("error: batch_size: ")
    assert stored(store_url) == 4


async def test_a_worker_on_the_database_runs_retention_beside_its_jobs(
    desk: JobDesk, clock: ManualClock
) -> None:
    old = await desk.cancel_job((await desk.create_job("alice", "render", {})).id, "alice")
    clock.advance(days=31)
    # What `jobdesk worker --db` wraps its runtime in (--retention-interval, --retention).
    async with retaining(desk, policy_from("cancelled=30d"), 0.01), asyncio.timeout(30):
        while (await desk.get_user_jobs("alice")).items:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    state = await desk.get_retention_state()
    assert state.holder is None
    assert state.last_run is not None
    with pytest.raises(JobNotFound):
        await desk.get_job_status(old.id, "alice")
