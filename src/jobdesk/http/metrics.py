"""Prometheus metrics of one API process, on a registry of its own.

Job counters and durations count what this process did (add them up across
processes); queue depth and the workers seen are read from the database at each
scrape (``JobDesk.get_queue_stats``), so every process reports the same, whole queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from jobdesk.desk import JobDesk
from jobdesk.models import Job, JobStatus
from jobdesk.retention import FINISHED, RetentionReport

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# The methods a request is counted under; any other is "other", so a client that
# invents methods cannot grow /metrics by one series per invention.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Jobs wait and run for anything from milliseconds to hours.
_JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class Metrics:
    """The counters, gauges and histograms of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.jobs_created = Counter(
            "jobdesk_jobs_created", "Jobs created through this process.", ["type"], registry=r
        )
        self.jobs_started = Counter(
            "jobdesk_jobs_started", "Attempts started (claims and starts).", ["type"], registry=r
        )
        self.jobs_completed = Counter(
            "jobdesk_jobs_completed", "Jobs completed.", ["type"], registry=r
        )
        self.jobs_failed = Counter(
            "jobdesk_jobs_failed",
            "Failure reports, by outcome: retry (back to the queue) or failed (final).",
            ["type", "outcome"],
            registry=r,
        )
        self.jobs_cancelled = Counter(
            "jobdesk_jobs_cancelled", "Jobs cancelled by their users.", ["type"], registry=r
        )
        self.queue_depth = Gauge(
            "jobdesk_queue_depth",
            "Active jobs in the database, by type and status (read at each scrape).",
            ["type", "status"],
            registry=r,
        )
        self.workers_seen = Gauge(
            "jobdesk_workers_seen",
            "Workers holding a job now or that finished one in the last 5 minutes "
            "(read at each scrape).",
            registry=r,
        )
        self.wait_seconds = Histogram(
            "jobdesk_job_wait_seconds",
            "From creation to the start of the first attempt.",
            ["type"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.run_seconds = Histogram(
            "jobdesk_job_run_seconds",
            "From the start of an attempt to its completion or failure.",
            ["type", "outcome"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.http_duration = Histogram(
            "jobdesk_http_request_duration_seconds",
            "HTTP requests by route template (event streams: how long they stayed open).",
            ["method", "route", "status"],
            registry=r,
        )
        self.event_streams = Gauge(
            "jobdesk_event_streams", "Server-Sent Event streams open now.", registry=r
        )
        self.retention_deleted = Counter(
            "jobdesk_retention_deleted",
            "Finished jobs this process's retention passes deleted, by status.",
            ["status"],
            registry=r,
        )
        self.retention_runs = Counter(
            "jobdesk_retention_runs",
            "This process's retention passes, by outcome: ran, skipped (another process "
            "held the retention lease) or failed.",
            ["outcome"],
            registry=r,
        )
        self.retention_last_run = Gauge(
            "jobdesk_retention_last_run_timestamp_seconds",
            "When the deployment's last retention pass ended (any process; read at each "
            "scrape); 0 before the first.",
            registry=r,
        )
        self.retention_last_duration = Gauge(
            "jobdesk_retention_last_run_duration_seconds",
            "How long the deployment's last retention pass took (read at each scrape).",
            registry=r,
        )
        self.retention_last_deleted = Gauge(
            "jobdesk_retention_last_run_deleted",
            "Jobs the deployment's last retention pass deleted, by status (read at each scrape).",
            ["status"],
            registry=r,
        )
        self.retention_held = Gauge(
            "jobdesk_retention_lease_held",
            "1 while some process holds the retention lease, running a pass (read at each scrape).",
            registry=r,
        )
        for status in FINISHED:
            self.retention_deleted.labels(status.value)
        for outcome in ("ran", "skipped", "failed"):
            self.retention_runs.labels(outcome)

    # -- what routes report ----------------------------------------------------------------

    def created(self, job: Job) -> None:
        """A job was created (or an idempotent create replayed)."""
        self.jobs_created.labels(job.type).inc()

    def started(self, jobs: Iterable[Job]) -> None:
        """Attempts started; the first attempt of a job also observes its wait."""
        for job in jobs:
            self.jobs_started.labels(job.type).inc()
            if job.attempt == 1 and job.started_at is not None:
                self.wait_seconds.labels(job.type).observe(_seconds(job.created_at, job.started_at))

    def ended(self, job: Job) -> None:
        """A worker reported the end of an attempt: completed, or failed (retry or final)."""
        if job.status is JobStatus.COMPLETED:
            outcome = "completed"
            self.jobs_completed.labels(job.type).inc()
        else:
            outcome = "failed" if job.status is JobStatus.FAILED else "retry"
            self.jobs_failed.labels(job.type, outcome).inc()
        if job.started_at is not None:
            self.run_seconds.labels(job.type, outcome).observe(
                _seconds(job.started_at, job.updated_at)
            )

    def cancelled(self, job: Job) -> None:
        """A user cancelled a job."""
        self.jobs_cancelled.labels(job.type).inc()

    def retention(self, report: RetentionReport) -> None:
        """This process ran a retention pass (or found another process running one)."""
        self.retention_runs.labels("ran" if report.ran else "skipped").inc()
        for status, count in report.deleted.items():
            self.retention_deleted.labels(status.value).inc(count)

    def retention_failed(self) -> None:
        """This process's retention pass failed (the database was unreachable, say)."""
        self.retention_runs.labels("failed").inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request (the request context middleware reports every one).

        ``route`` is a route's template (or ``unmatched``), never the raw path; a
        method outside :data:`KNOWN_METHODS` counts as ``other``.
        """
        method = method.upper() if method.upper() in KNOWN_METHODS else "other"
        self.http_duration.labels(method, route, str(status)).observe(seconds)

    # -- scrape ----------------------------------------------------------------------------

    async def render(self, desk: JobDesk) -> bytes:
        """The text exposition, with the queue depth read from the database now."""
        stats = await desk.get_queue_stats()
        self.queue_depth.clear()
        for count in stats.counts:
            if count.status.is_active:
                self.queue_depth.labels(count.type, count.status.value).set(count.count)
        self.workers_seen.set(len(stats.workers))
        state = await desk.get_retention_state()
        self.retention_held.set(0 if state.holder is None else 1)
        last = state.last_run
        self.retention_last_run.set(0 if last is None else last.finished_at.timestamp())
        self.retention_last_duration.set(
            0 if last is None else _seconds(last.started_at, last.finished_at)
        )
        for status in FINISHED:
            self.retention_last_deleted.labels(status.value).set(
                0 if last is None else last.deleted.get(status, 0)
            )
        return generate_latest(self.registry)


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
