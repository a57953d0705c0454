"""Registry: which function handles which job type, with its timeout and attempt budget.

::

    registry = Registry()

    @registry.handler("character_extraction", timeout=600, max_attempts=3)
    async def extract(ctx: JobContext, input: dict) -> dict:
        ...

A handler is an ``async def`` (run on the worker's event loop) or a plain ``def``
(run in a thread of its own, with a :class:`~jobdesk.worker.SyncJobContext`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from jobdesk import validation
from jobdesk.errors import InvalidInput

__all__ = ["Handler", "Registry"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Handler:
    """One registered handler and how the runtime runs it."""

    #: the job type it handles
    type: str
    #: ``(ctx, input) -> result``; async or not
    function: Callable[..., Any]
    #: whether ``function`` is a coroutine function (else it runs in a thread)
    is_async: bool
    #: seconds one attempt may run before it is cancelled and failed (None: no limit)
    timeout: float | None = None
    #: attempts (of the job's current budget) after which a failure is final, even if
    #: the job itself allows more; None leaves it to the job's ``max_attempts``
    max_attempts: int | None = None

    def gives_up_after(self, attempts_made: int) -> bool:
        """Whether a failure of attempt number ``attempts_made`` (in the budget) is final here."""
        return self.max_attempts is not None and attempts_made >= self.max_attempts


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    # A callable object with an ``async def __call__``.
    return inspect.iscoroutinefunction(getattr(function, "__call__", None))  # noqa: B004 - the method itself is inspected


def _timeout(value: object) -> float | None:
    if value is None:
        return None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInput("timeout", "must be a positive, finite number of seconds, or None")
    return float(value)


class Registry:
    """The handlers a worker can run, one per job type."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def handler(
        self,
        type: str,  # noqa: A002 - a job's "type", as everywhere in jobdesk
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of ``type``.

        ``timeout`` bounds one attempt in seconds: past it the handler is cancelled
        and the attempt fails (retryably). ``max_attempts`` makes a failure final
        after that many attempts even when the job allows more. The function is
        returned unchanged.
        """

        def register(function: F) -> F:
            self.add(type, function, timeout=timeout, max_attempts=max_attempts)
            return function

        return register

    def add(
        self,
        type: str,  # noqa: A002 - a job's "type", as everywhere in jobdesk
        function: Callable[..., Any],
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
    ) -> Handler:
        """Register ``function`` for ``type`` without a decorator; the :class:`Handler`."""
        job_type = validation.job_type(type)
        if job_type in self._handlers:
            raise InvalidInput("type", f"a handler for {job_type!r} is already registered")
        if not callable(function):
            raise InvalidInput("handler", "must be a function taking (ctx, input)")
        handler = Handler(
            type=job_type,
            function=function,
            is_async=_is_async(function),
            timeout=_timeout(timeout),
            max_attempts=(
                None
                if max_attempts is None
                else validation.integer("max_attempts", max_attempts, 1, validation.MAX_ATTEMPTS)
            ),
        )
        self._handlers[job_type] = handler
        return handler

    @property
    def types(self) -> frozenset[str]:
        """Every registered job type (pass it to ``JobDesk.open(types=...)`` in the app)."""
        return frozenset(self._handlers)

    def get(self, job_type: str) -> Handler:
        """The handler of ``job_type``; :class:`KeyError` if there is none."""
        return self._handlers[job_type]

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._handlers

    def __iter__(self) -> Iterator[Handler]:
        return iter(self._handlers.values())

    def __len__(self) -> int:
        return len(self._handlers)
