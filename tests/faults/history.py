"""What a fault-injection run leaves behind, as plain records for the checker.

What the clients saw (:class:`CreateOp`), what the handlers recorded
(:class:`Execution`), what the nemesis did (:class:`Fault`), and what the
database holds after the drain (:class:`Observed`: :class:`StoredJob` and
:class:`Event`). No I/O here: the experiment makes these, the tests make them up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = ["CreateOp", "Event", "Execution", "Fault", "Observed", "Outcome", "StoredJob"]

Outcome = Literal["ok", "refused", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class CreateOp:
    """One create a client attempted, and what it learned.

    ``ok``: acknowledged (``job_id`` set); ``refused``: a limit said no; ``failed``:
    certainly not applied (the request never left, was invalid, or the store said
    nothing was applied); ``unknown``: no answer (a timeout, a broken connection, a
    crash, a commit cut off): it may have been applied. ``sent`` and ``at`` are when
    the request left and when its answer came (epoch seconds).
    """

    key: str
    user_id: str
    via: str
    outcome: Outcome
    job_id: str | None = None
    detail: str = ""
    sent: float = 0.0
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Execution:
    """A handler started on a job (recorded by the handler itself, ``started`` in epoch s)."""

    job_id: str
    attempt: int
    worker: str
    started: float | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault the nemesis injected, with when it started and ended (epoch seconds)."""

    kind: str
    target: str
    started: float
    ended: float
    #: jobs a killed or paused worker held when the fault began
    held: tuple[str, ...] = ()
    #: held jobs another attempt took over before a paused worker came back
    superseded: tuple[str, ...] = ()
    #: connections ``pg_terminate_backend`` ended
    connections: int = 0
    #: what went wrong at the fault itself (checked by the nemesis); empty when nothing
    failure: str = ""
    #: when the target was down for sure (the process reaped, the server stopped):
    #: evidence of recovery counts from then on; 0 means from ``started``
    down: float = 0.0

    @property
    def label(self) -> str:
        """The kind, with which side of the system a killed or paused worker was on."""
        if self.kind in ("kill_worker", "pause_worker") and "-" in self.target:
            return f"{self.kind} ({self.target.split('-', 1)[0]})"
        return self.kind


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job as the database holds it after the drain (``finished_at`` in epoch seconds)."""

    id: str
    user_id: str
    status: str
    attempt: int
    idempotency_key: str | None
    result: Any
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the history of status changes (ordered by ``seq``)."""

    seq: int
    job_id: str
    user_id: str
    status: str
    attempt: int
    at: datetime
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class Observed:
    """What the database holds after the drain."""

    jobs: Sequence[StoredJob]
    events: Sequence[Event]
