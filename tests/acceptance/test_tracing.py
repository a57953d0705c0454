"""Tracing with OpenTelemetry's in-memory exporter: one trace from an HTTP create to the
worker's completion of the job, on each store; spans named and tagged by the messaging
conventions; failures settled under their attempt."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from jobdesk import JobStatus, tracing
from jobdesk.errors import InvalidInput
from jobdesk.worker import DeskTransport, Fail, JobContext, Registry, WorkerRuntime
from tests.acceptance.conftest import Api


@pytest.fixture
def spans() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    """Tracing on, into memory, for one test; off again after it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter, provider
    finally:
        tracing.disable()
        provider.shutdown()


def named(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [span for span in finished if span.name == name]
    return span


def registry(provider: TracerProvider) -> Registry:
    handlers = Registry()

    @handlers.handler("extract")
    async def extract(ctx: JobContext, payload: dict[str, object]) -> str:
        with provider.get_tracer("the-handler").start_as_current_span("handler's own work"):
            return "done"

    @handlers.handler("doomed")
    async def doomed(ctx: JobContext, payload: object) -> None:
        raise Fail("no such episode")

    return handlers


async def run_worker(api: Api, provider: TracerProvider) -> None:
    token = await api.desk.create_worker_token("gpu-1")
    transport = await DeskTransport.connect(api.desk, token)
    handlers = registry(provider)
    await WorkerRuntime(handlers, transport, schedule_interval=None).run(until_empty=True)


async def test_one_trace_runs_from_the_http_create_to_the_workers_completion(
    api: Api, spans: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, provider = spans
    with provider.get_tracer("the-client").start_as_current_span("client request") as client:
        header = tracing.traceparent(client)
    assert header is not None
    created = await api.client.post(
        "/api/v1/jobs",
        json={"type": "extract", "input": {"episode": 1}},
        headers={**await api.user("alice"), "traceparent": header},
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    await run_worker(api, provider)
    assert (await api.desk.get_job_status(job_id, "alice")).status is JobStatus.COMPLETED

    finished = exporter.get_finished_spans()
    trace_id = client.get_span_context().trace_id
    create = named(finished, "create extract")
    claim = next(span for span in finished if span.name == "claim" and span.links)
    process = named(finished, "process extract")
    own = named(finished, "handler's own work")
    complete = named(finished, "complete extract")

    # One trace: the client's request, the create, each attempt, its work and its completion.
    for span in (create, process, own, complete):
        assert span.context.trace_id == trace_id, span.name
    assert create.parent is not None
    assert create.parent.span_id == client.get_span_context().span_id
    assert process.parent is not None
    assert process.parent.span_id == create.context.span_id
    assert [link.context.span_id for link in process.links] == [create.context.span_id]
    assert own.parent is not None
    assert own.parent.span_id == process.context.span_id
    assert complete.parent is not None
    assert complete.parent.span_id == process.context.span_id
    # The claim is the worker's, linked to the job's creator.
    assert [link.context.span_id for link in claim.links] == [create.context.span_id]

    # The messaging conventions.
    assert (create.kind, process.kind, claim.kind, complete.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CLIENT,
        SpanKind.CLIENT,
    )
    assert create.attributes is not None
    assert dict(create.attributes) == {
        "messaging.system": "jobdesk",
        "messaging.operation.name": "create",
        "messaging.operation.type": "send",
        "messaging.destination.name": "extract",
        "messaging.message.id": job_id,
    }
    assert process.attributes is not None
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.message.id"] == job_id
    assert process.attributes["jobdesk.attempt"] == 1
    assert complete.attributes is not None
    assert complete.attributes["messaging.operation.type"] == "settle"
    assert claim.attributes is not None
    assert claim.attributes["messaging.batch.message_count"] == 1

    # The job keeps its creator's trace context.
    stored = await api.desk.get_job_status(job_id, "alice")
    assert stored.traceparent == tracing.traceparent(_span_of(create))


def _span_of(span: ReadableSpan) -> trace.Span:
    return trace.NonRecordingSpan(span.context)


async def test_a_failed_attempt_is_settled_as_a_failure_under_its_attempt(
    api: Api, spans: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, provider = spans
    job = await api.desk.create_job("alice", "doomed", {})  # the library's create: a root
    await run_worker(api, provider)
    assert (await api.desk.get_job_status(job.id, "alice")).status is JobStatus.FAILED
    finished = exporter.get_finished_spans()
    create = named(finished, "create doomed")
    process = named(finished, "process doomed")
    fail = named(finished, "fail doomed")
    assert create.parent is None
    assert process.context.trace_id == create.context.trace_id
    assert fail.parent is not None
    assert fail.parent.span_id == process.context.span_id
    assert fail.attributes is not None
    assert fail.attributes["messaging.operation.name"] == "fail"


async def test_a_batch_create_is_one_span_and_its_jobs_share_its_trace(
    api: Api, spans: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, _ = spans
    body = {"jobs": [{"type": "extract", "input": {"n": n}} for n in range(3)]}
    answer = await api.client.post("/api/v1/jobs/batch", json=body, headers=await api.user("bo"))
    assert answer.status_code == 201, answer.text
    create = named(exporter.get_finished_spans(), "create extract")
    assert create.attributes is not None
    assert create.attributes["messaging.operation.type"] == "create"
    assert create.attributes["messaging.batch.message_count"] == 3
    for item in answer.json():
        stored = await api.desk.get_job_status(item["id"], "bo")
        assert stored.traceparent is not None
        assert stored.traceparent.split("-")[1] == f"{create.context.trace_id:032x}"


def test_tracing_is_switched_by_the_environment_and_refuses_a_typo() -> None:
    try:
        assert tracing.enable_from_environment({}) is False
        assert tracing.enable_from_environment({"JOBDESK_TRACING": "on"}) is True
        tracing.disable()
        with pytest.raises(InvalidInput, match="JOBDESK_TRACING"):
            tracing.enable_from_environment({"JOBDESK_TRACING": "maybe"})
    finally:
        tracing.disable()
