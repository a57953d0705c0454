"""Blocking jobdesk for synchronous code: Django and Flask views, scripts, threads.

::

    from jobdesk.sync import JobDesk

    with JobDesk.open("sqlite:///jobdesk.db") as desk:
        job = desk.create_job("user-1", "character_extraction", {"episode_ids": ["ep-1"]})

Each method is the async method of :class:`jobdesk.JobDesk` run to completion on
an event loop that this object keeps in a background thread: one generic
wrapper, not a second implementation. A sync ``JobDesk`` may be shared by the
threads of one process; calls from several threads are served one at a time on
its loop, each in its own store transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Coroutine
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from anyio.from_thread import BlockingPortal, start_blocking_portal

from jobdesk.desk import DEFAULT_URL
from jobdesk.desk import JobDesk as AsyncJobDesk
from jobdesk.limits import Limits

__all__ = ["JobDesk"]

P = ParamSpec("P")
R = TypeVar("R")


class _Blocking(Generic[P, R]):
    """A descriptor turning an async ``JobDesk`` method into a blocking one, types intact."""

    def __init__(
        self, method: Callable[Concatenate[AsyncJobDesk, P], Coroutine[Any, Any, R]]
    ) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, instance: JobDesk, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, instance: JobDesk | None, owner: type[Any]) -> Self | Callable[P, R]:
        if instance is None:
            return self
        method, desk, portal = self._method, instance.desk, instance._portal

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            result: R = portal.call(functools.partial(method, desk, *args, **kwargs))
            return result

        return call


async def _open(
    url: str,
    limits: Limits | None,
    types: Collection[str] | None,
    clock: Callable[[], datetime] | None,
) -> AsyncJobDesk:
    return await AsyncJobDesk.open(url, limits=limits, types=types, clock=clock)


class JobDesk:
    """The blocking face of :class:`jobdesk.JobDesk`; open with :meth:`JobDesk.open`."""

    def __init__(
        self,
        desk: AsyncJobDesk,
        portal: BlockingPortal,
        portal_context: AbstractContextManager[BlockingPortal],
    ) -> None:
        #: the async desk underneath, running on this object's background loop
        self.desk = desk
        self._portal = portal
        self._portal_context = portal_context
        self._closed = False

    @classmethod
    def open(
        cls,
        url: str = DEFAULT_URL,
        *,
        limits: Limits | None = None,
        types: Collection[str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> JobDesk:
        """Open a desk (as :meth:`jobdesk.JobDesk.open`); close it, or use ``with``."""
        portal_context = start_blocking_portal()
        portal = portal_context.__enter__()
        try:
            desk = portal.call(_open, url, limits, types, clock)
        except BaseException as exc:
            portal_context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return cls(desk, portal, portal_context)

    @property
    def limits(self) -> Limits:
        """The default limits this desk enforces."""
        return self.desk.limits

    def close(self) -> None:
        """Close the store and stop the background loop."""
        if self._closed:
            return
        self._closed = True
        try:
            self._portal.call(self.desk.close)
        finally:
            self._portal_context.__exit__(None, None, None)

    def __enter__(self) -> JobDesk:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def signing_key(self, purpose: str) -> bytes:
        """A key for ``purpose``, as :meth:`jobdesk.JobDesk.signing_key` derives it."""
        # Pure computation over the secret read at open: no loop round trip needed.
        return self.desk.signing_key(purpose)

    now = _Blocking(AsyncJobDesk.now)
    create_job = _Blocking(AsyncJobDesk.create_job)
    create_jobs = _Blocking(AsyncJobDesk.create_jobs)
    get_job_status = _Blocking(AsyncJobDesk.get_job_status)
    get_user_jobs = _Blocking(AsyncJobDesk.get_user_jobs)
    get_user_jobs_changed_since = _Blocking(AsyncJobDesk.get_user_jobs_changed_since)
    get_job_history = _Blocking(AsyncJobDesk.get_job_history)
    cancel_job = _Blocking(AsyncJobDesk.cancel_job)
    retry_job = _Blocking(AsyncJobDesk.retry_job)
    create_group = _Blocking(AsyncJobDesk.create_group)
    get_group = _Blocking(AsyncJobDesk.get_group)
    get_user_groups = _Blocking(AsyncJobDesk.get_user_groups)
    get_group_jobs = _Blocking(AsyncJobDesk.get_group_jobs)
    cancel_group = _Blocking(AsyncJobDesk.cancel_group)
    retry_group = _Blocking(AsyncJobDesk.retry_group)
    finish_groups = _Blocking(AsyncJobDesk.finish_groups)
    create_view_token = _Blocking(AsyncJobDesk.create_view_token)
    verify_view_token = _Blocking(AsyncJobDesk.verify_view_token)
    set_webhook = _Blocking(AsyncJobDesk.set_webhook)
    remove_webhook = _Blocking(AsyncJobDesk.remove_webhook)
    get_webhooks = _Blocking(AsyncJobDesk.get_webhooks)
    get_webhook_deliveries = _Blocking(AsyncJobDesk.get_webhook_deliveries)
    redeliver_webhook = _Blocking(AsyncJobDesk.redeliver_webhook)
    deliver_webhooks = _Blocking(AsyncJobDesk.deliver_webhooks)
    get_user_usage = _Blocking(AsyncJobDesk.get_user_usage)
    set_user_limits = _Blocking(AsyncJobDesk.set_user_limits)
    verify_worker_token = _Blocking(AsyncJobDesk.verify_worker_token)
    get_pending_jobs = _Blocking(AsyncJobDesk.get_pending_jobs)
    start_job = _Blocking(AsyncJobDesk.start_job)
    claim_jobs = _Blocking(AsyncJobDesk.claim_jobs)
    update_job_progress = _Blocking(AsyncJobDesk.update_job_progress)
    heartbeat_job = _Blocking(AsyncJobDesk.heartbeat_job)
    complete_job = _Blocking(AsyncJobDesk.complete_job)
    complete_jobs = _Blocking(AsyncJobDesk.complete_jobs)
    complete_and_claim_jobs = _Blocking(AsyncJobDesk.complete_and_claim_jobs)
    fail_job = _Blocking(AsyncJobDesk.fail_job)
    release_job = _Blocking(AsyncJobDesk.release_job)
    snooze_job = _Blocking(AsyncJobDesk.snooze_job)
    set_type_limits = _Blocking(AsyncJobDesk.set_type_limits)
    get_type_limits = _Blocking(AsyncJobDesk.get_type_limits)
    requeue_expired = _Blocking(AsyncJobDesk.requeue_expired)
    get_queue_stats = _Blocking(AsyncJobDesk.get_queue_stats)
    prune_finished = _Blocking(AsyncJobDesk.prune_finished)
    apply_retention = _Blocking(AsyncJobDesk.apply_retention)
    get_retention_state = _Blocking(AsyncJobDesk.get_retention_state)
    ping = _Blocking(AsyncJobDesk.ping)
    create_worker_token = _Blocking(AsyncJobDesk.create_worker_token)
    revoke_worker_token = _Blocking(AsyncJobDesk.revoke_worker_token)
    list_worker_tokens = _Blocking(AsyncJobDesk.list_worker_tokens)
    create_user_token = _Blocking(AsyncJobDesk.create_user_token)
    verify_user_token = _Blocking(AsyncJobDesk.verify_user_token)
    revoke_user_tokens = _Blocking(AsyncJobDesk.revoke_user_tokens)
    create_admin_token = _Blocking(AsyncJobDesk.create_admin_token)
    verify_admin_token = _Blocking(AsyncJobDesk.verify_admin_token)
    revoke_admin_token = _Blocking(AsyncJobDesk.revoke_admin_token)
    get_throughput = _Blocking(AsyncJobDesk.get_throughput)
    get_oldest_pending = _Blocking(AsyncJobDesk.get_oldest_pending)
    get_failed_jobs = _Blocking(AsyncJobDesk.get_failed_jobs)
    get_top_users = _Blocking(AsyncJobDesk.get_top_users)
    find_job = _Blocking(AsyncJobDesk.find_job)
    schedule = _Blocking(AsyncJobDesk.schedule)
    get_schedule = _Blocking(AsyncJobDesk.get_schedule)
    list_schedules = _Blocking(AsyncJobDesk.list_schedules)
    delete_schedule = _Blocking(AsyncJobDesk.delete_schedule)
    pause_schedule = _Blocking(AsyncJobDesk.pause_schedule)
    resume_schedule = _Blocking(AsyncJobDesk.resume_schedule)
    run_due_schedules = _Blocking(AsyncJobDesk.run_due_schedules)
