"""ScheduleOperations: jobs made on a cron schedule, for operators and the host app.

``schedule(name, cron, type, input, user_id=...)`` stores a schedule; every tick
of it then creates one job of ``type`` for ``user_id``, as ``create_job`` would
(the user's admission limits apply). Ticks are fired by whoever runs
:meth:`ScheduleOperations.run_due_schedules`: ``jobdesk serve`` and every worker
on the database do, every second or so; any number of them may, at once. The
rule (next tick, missed ticks) is :mod:`jobdesk.schedules`'. None of it is scoped
to a user: schedules are an operator's (or the host application's) to manage.
"""

from __future__ import annotations

import json

from jobdesk import schedules, validation
from jobdesk.desk_base import DeskBase
from jobdesk.errors import ScheduleNotFound
from jobdesk.models import JSONValue
from jobdesk.schedules import Missed, NewSchedule, Schedule
from jobdesk.store import ScheduleChange

__all__ = ["ScheduleOperations"]

#: how many due schedules one transaction fires
_FIRE_BATCH = 100
#: at most this many schedules are listed
MAX_SCHEDULES = 1000


class ScheduleOperations(DeskBase):
    """The schedule operations of :class:`jobdesk.JobDesk`."""

    async def schedule(
        self,
        name: str,
        cron: str,
        type: str,  # noqa: A002 - the jobs' own word for it
        input: JSONValue,  # noqa: A002 - create_job's name for it
        *,
        user_id: str,
        project_id: str | None = None,
        timezone: str = "UTC",
        missed: Missed | str = Missed.ONCE,
    ) -> Schedule:
        """Create a job of ``type`` with ``input`` for ``user_id`` at every tick of ``cron``.

        ``cron`` has five fields (``*/15 * * * *``) or is an alias (``@daily``), read
        in ``timezone`` (an IANA name). ``missed`` says what happens to ticks that
        fell due while no process ran schedules: ``"once"`` (one job for them all) or
        ``"skip"`` (none for a tick more than a minute late). The name must be new.
        Every argument is checked first (:class:`~jobdesk.errors.InvalidInput` names
        it); nothing is written unless all are good.
        """
        spec = self._new_schedule(
            name,
            cron,
            type,
            input,
            user_id=user_id,
            project_id=project_id,
            timezone=timezone,
            missed=missed,
        )
        return await self.store.insert_schedule(spec)

    def _new_schedule(
        self,
        name: str,
        cron: str,
        type: str,  # noqa: A002
        input: JSONValue,  # noqa: A002
        *,
        user_id: str,
        project_id: str | None,
        timezone: str,
        missed: Missed | str,
    ) -> NewSchedule:
        input_json = validation.json_document(
            "input", input, self.limits.max_input_bytes, self.limits.max_input_depth
        )
        return NewSchedule(
            name=schedules.schedule_name(name),
            cron=schedules.cron_expression(cron),
            timezone=schedules.time_zone(timezone),
            missed=schedules.missed_policy(missed),
            type=validation.job_type(type, self.types),
            input=json.loads(input_json),
            input_json=input_json,
            user_id=validation.principal_id("user_id", user_id),
            project_id=validation.optional_principal_id("project_id", project_id),
        )

    async def get_schedule(self, name: str) -> Schedule:
        """One schedule; :class:`~jobdesk.errors.ScheduleNotFound` if there is none."""
        name = schedules.schedule_name(name)
        found = await self.store.get_schedule(name)
        if found is None:
            raise ScheduleNotFound(name)
        return found

    async def list_schedules(self, *, limit: int = MAX_SCHEDULES) -> list[Schedule]:
        """Every schedule (up to ``limit``), by name, with its next run time."""
        return await self.store.list_schedules(validation.integer("limit", limit, 1, MAX_SCHEDULES))

    async def delete_schedule(self, name: str) -> None:
        """Stop and forget a schedule; the jobs it made stay. ScheduleNotFound if none."""
        name = schedules.schedule_name(name)
        if not await self.store.delete_schedule(name):
            raise ScheduleNotFound(name)

    async def pause_schedule(self, name: str) -> Schedule:
        """Make no jobs until :meth:`resume_schedule`."""
        return await self._change(name, schedules.pause)

    async def resume_schedule(self, name: str) -> Schedule:
        """Make jobs again, from the first tick after now (none for the paused time)."""
        return await self._change(name, schedules.resume)

    async def _change(self, name: str, change: ScheduleChange) -> Schedule:
        name = schedules.schedule_name(name)
        found = await self.store.update_schedule(name, change)
        if found is None:
            raise ScheduleNotFound(name)
        return found

    async def run_due_schedules(self) -> int:
        """Fire every due schedule; how many jobs were made.

        Safe to run from any number of processes at once: each tick makes one job.
        ``jobdesk serve`` and workers on the database call it every second or so;
        call it yourself only if neither runs.
        """
        total = 0
        while True:
            fired, made = await self.store.run_due_schedules(self.limits, _FIRE_BATCH)
            total += len(made)
            if fired < _FIRE_BATCH:
                return total
