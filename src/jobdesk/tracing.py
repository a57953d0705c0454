"""Tracing with OpenTelemetry: off by default, and free when off.

:func:`enable` turns it on (``pip install 'jobdesk[otel]'``; ``jobdesk serve`` and
``jobdesk worker`` call it when ``JOBDESK_TRACING=on``). Until then nothing here
imports OpenTelemetry, and every helper is one check of a module global.

When on, jobdesk makes spans named and tagged by OpenTelemetry's messaging
semantic conventions (``messaging.system = "jobdesk"``, the job type as the
destination, the job id as the message id):

- ``create <type>`` (PRODUCER, operation type ``send``; ``create`` for a batch)
  around each create, a child of the caller's span: an HTTP request's ``traceparent`` header, or the
  host application's own span. The W3C ``traceparent`` of this span is stored with
  the job;
- ``claim`` (CLIENT, operation type ``receive``) around each claim, linked to the
  claimed jobs' creators;
- ``process <type>`` (CONSUMER) around each attempt in a worker, continuing the
  creating trace (its parent is the stored ``traceparent``) and linked to it;
  a handler's own spans nest under it;
- ``complete <type>`` or ``fail <type>`` (CLIENT, operation type ``settle``) around
  the write that ends the attempt, under ``process``.

So one trace runs from the request that created a job to the worker's completion
of it, one ``process`` span per attempt.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jobdesk.errors import InvalidInput

if TYPE_CHECKING:  # only for the type checker: tracing off imports nothing
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "SYSTEM",
    "disable",
    "enable",
    "enable_from_environment",
    "enabled",
    "message_id",
    "process",
    "receive",
    "received",
    "remote_parent",
    "send",
    "settle",
    "traceparent",
]

#: ``messaging.system`` on every span
SYSTEM = "jobdesk"
#: ``on`` (or 1, true, yes, otel) turns tracing on in ``jobdesk serve`` and ``jobdesk worker``
ENVIRONMENT_VARIABLE = "JOBDESK_TRACING"
_ON = {"1", "true", "yes", "on", "otel"}


class _State:
    """The tracer while tracing is on; None when off (the default)."""

    tracer: Tracer | None = None


_state = _State()


def enable(tracer_provider: Any = None) -> None:
    """Turn tracing on, with ``tracer_provider`` or OpenTelemetry's global one.

    Configure the SDK (exporters, sampling) as for the rest of your application;
    jobdesk only makes spans. :class:`~jobdesk.errors.InvalidInput` if
    OpenTelemetry is not installed.
    """
    try:
        from opentelemetry import trace  # noqa: PLC0415 - tracing off must not import it
    except ImportError:
        raise InvalidInput("tracing", "needs OpenTelemetry: pip install 'jobdesk[otel]'") from None
    _state.tracer = trace.get_tracer("jobdesk", tracer_provider=tracer_provider)


def disable() -> None:
    """Turn tracing off again (spans already started end as usual)."""
    _state.tracer = None


def enabled() -> bool:
    """Whether jobdesk makes spans."""
    return _state.tracer is not None


def enable_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on if ``JOBDESK_TRACING`` says so; whether it is on."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if value in _ON:
        enable()
    elif value not in {"", "0", "false", "no", "off"}:
        raise InvalidInput(ENVIRONMENT_VARIABLE, "must be on or off")
    return enabled()


def _attributes(operation: str, kind: str, job_type: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
    }
    if job_type is not None:
        attributes["messaging.destination.name"] = job_type
    return attributes


def traceparent(span: Span | None) -> str | None:
    """The W3C ``traceparent`` of ``span`` (None when tracing is off or it is not
    recorded), to store with the job it created."""
    if span is None:
        return None
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _context_of(parent: str | None) -> Any:
    """The OpenTelemetry context a stored ``traceparent`` stands for (None if none)."""
    if not parent:
        return None
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    return TraceContextTextMapPropagator().extract({"traceparent": parent})


def _link_to(parent: str | None) -> Any:
    from opentelemetry import trace  # noqa: PLC0415

    context = _context_of(parent)
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None


@contextlib.contextmanager
def remote_parent(header: str | None) -> Iterator[None]:
    """Within the block, a caller's W3C ``traceparent`` header is the current context
    (unless a span is current already: an instrumented web framework's)."""
    if _state.tracer is None or not header:
        yield
        return
    from opentelemetry import context, trace  # noqa: PLC0415

    if trace.get_current_span().get_span_context().is_valid:
        yield
        return
    token = context.attach(_context_of(header))
    try:
        yield
    finally:
        context.detach(token)


@contextlib.contextmanager
def send(job_type: str, count: int = 1) -> Iterator[Span | None]:
    """The span of a create (``count`` jobs of ``job_type``); None when tracing is off."""
    if _state.tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    attributes = _attributes("create", "send" if count == 1 else "create", job_type)
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    with _state.tracer.start_as_current_span(
        f"create {job_type}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


def message_id(span: Span | None, job_id: str) -> None:
    """Tag ``span`` with the id of the job it is about."""
    if span is not None:
        span.set_attribute("messaging.message.id", job_id)


@contextlib.contextmanager
def receive(worker: str) -> Iterator[Span | None]:
    """The span of a claim by ``worker``; :func:`received` adds what it claimed."""
    if _state.tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    attributes = _attributes("claim", "receive", None)
    attributes["messaging.consumer.group.name"] = worker
    with _state.tracer.start_as_current_span(
        "claim", kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        yield span


def received(span: Span | None, parents: Sequence[tuple[str, str | None]]) -> None:
    """Add the claimed jobs (id, stored ``traceparent``) to a claim's span: their count,
    and a link to each job's creator."""
    if span is None:
        return
    span.set_attribute("messaging.batch.message_count", len(parents))
    for job_id, parent in parents:
        link = _link_to(parent)
        if link is not None:
            span.add_link(link.context, {"messaging.message.id": job_id})


@contextlib.contextmanager
def process(job_type: str, job_id: str, attempt: int, parent: str | None) -> Iterator[None]:
    """The span of one attempt, continuing the trace that created the job (``parent``,
    its stored ``traceparent``) and linked to it."""
    if _state.tracer is None:
        yield
        return
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    attributes = _attributes("process", "process", job_type)
    attributes["messaging.message.id"] = job_id
    attributes["jobdesk.attempt"] = attempt
    link = _link_to(parent)
    with _state.tracer.start_as_current_span(
        f"process {job_type}",
        context=_context_of(parent),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=None if link is None else [link],
    ):
        yield


@contextlib.contextmanager
def settle(job_type: str, job_id: str, outcome: str) -> Iterator[None]:
    """The span of the write that ends an attempt: ``outcome`` is complete or fail."""
    if _state.tracer is None:
        yield
        return
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    attributes = _attributes(outcome, "settle", job_type)
    attributes["messaging.message.id"] = job_id
    with _state.tracer.start_as_current_span(
        f"{outcome} {job_type}", kind=SpanKind.CLIENT, attributes=attributes
    ):
        yield
