"""Retention in a running server: its own passes, /metrics, the operator dashboard, and
JOBDESK_RETENTION read and refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from jobdesk import JobDesk, JobStatus, RetentionPolicy
from jobdesk.errors import InvalidInput
from jobdesk.http import Settings
from jobdesk.testing import ManualClock
from tests.acceptance.conftest import MakeApp, running
from tests.acceptance.test_dashboard_http import signed_in


async def test_the_server_applies_retention_by_itself_and_reports_it(
    desk: JobDesk, clock: ManualClock, make_app: MakeApp
) -> None:
    old = [await desk.create_job("alice", "render", {"n": n}) for n in range(3)]
    for job in old:
        await desk.cancel_job(job.id, "alice")
    clock.advance(days=3)
    recent = await desk.cancel_job((await desk.create_job("alice", "render", {})).id, "alice")
    kept = await desk.create_job("alice", "render", {})  # pending: never deleted
    policy = RetentionPolicy(cancelled=timedelta(days=2))
    app = make_app(retention_interval_seconds=0.01, retention=policy)
    async with running(app) as client:
        async with asyncio.timeout(30):
            while (await desk.get_retention_state()).last_run is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        metrics = set((await client.get("/metrics")).text.splitlines())
        await signed_in(client, await desk.create_admin_token("ops"))
        overview = (await client.get("/admin")).text
    remaining = {job.id for job in (await desk.get_user_jobs("alice")).items}
    assert remaining == {recent.id, kept.id}
    assert 'jobdesk_retention_deleted_total{status="cancelled"} 3.0' in metrics
    # The last pass may be a later one that found nothing left: its gauges are there.
    assert any(line.startswith("jobdesk_retention_last_run_deleted{") for line in metrics)
    assert 'jobdesk_retention_runs_total{outcome="ran"}' in " ".join(metrics)
    assert (
        "jobdesk_retention_lease_held 0.0" in metrics
        or "jobdesk_retention_lease_held 1.0" in metrics
    )
    section = overview[overview.index('id="retention-title"') :]
    assert "2d" in section  # the policy's cancelled period
    assert "Last pass ended" in section
    state = await desk.get_retention_state()
    assert state.last_run is not None
    assert state.last_run.deleted in ({JobStatus.CANCELLED: 3}, {})


def test_the_policy_comes_from_jobdesk_retention() -> None:
    settings = Settings.from_env(
        {
            "JOBDESK_RETENTION": "completed=1d,render.failed=forever",
            "JOBDESK_RETENTION_INTERVAL_SECONDS": "60",
        }
    )
    assert settings.retention == RetentionPolicy(
        completed=timedelta(days=1), types={"render": {JobStatus.FAILED: None}}
    )
    assert settings.retention_interval_seconds == 60.0
    assert Settings.from_env({}).retention == RetentionPolicy()


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"JOBDESK_RETENTION": "completed=-7d"}, "retention.completed"),
        ({"JOBDESK_RETENTION": "failed=100000d"}, "retention.failed"),
        ({"JOBDESK_RETENTION": "render.finished=1d"}, "retention.types.render"),
        ({"JOBDESK_RETENTION": "completed"}, "retention"),
        ({"JOBDESK_RETENTION_INTERVAL_SECONDS": "-5"}, "retention_interval_seconds"),
    ],
)
def test_bad_retention_settings_are_refused_naming_the_field(
    environ: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env(environ)
    assert caught.value.field == field
