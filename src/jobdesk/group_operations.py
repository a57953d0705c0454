"""GroupOperations: a user's groups of jobs, made at once and followed as one.

``create_group`` makes a group and all its jobs in one transaction, admitted as one
batch (all or nothing; :class:`~jobdesk.errors.RateLimited` says how many would
fit). A group's status and progress are derived from its jobs by
:func:`jobdesk.groups.summarize`. Every operation names the acting ``user_id``; another
user's group is reported as one that does not exist (:class:`GroupNotFound`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from jobdesk import cursors, lifecycle, validation
from jobdesk.errors import GroupNotFound, InvalidInput, JobdeskError, RateLimited
from jobdesk.groups import (
    MAX_GROUP_JOBS,
    FanIn,
    Group,
    GroupPage,
    NewGroup,
    fan_in_key,
)
from jobdesk.ids import new_job_id
from jobdesk.limits import check_daily, check_waiting
from jobdesk.models import Job, JobSpec, JobStatus, JSONValue, NewJob
from jobdesk.user_operations import UserOperations

__all__ = ["GroupOperations"]

#: the longest group name
MAX_GROUP_NAME = 200
#: the most jobs ``get_group_jobs`` returns at once
MAX_GROUP_PAGE = 1000
_FINISH_BATCH = 100
_log = logging.getLogger("jobdesk.groups")


def _cursor_owner(user_id: str) -> str:
    # Group cursors are signed for "groups of user_id": a jobs cursor is no group cursor.
    return f"groups\x1f{user_id}"


class GroupOperations(UserOperations):
    """The group operations of :class:`jobdesk.JobDesk` (with the user operations)."""

    async def create_group(
        self,
        user_id: str,
        jobs: Sequence[JobSpec],
        *,
        project_id: str | None = None,
        name: str | None = None,
        on_complete: FanIn | None = None,
    ) -> Group:
        """Make a group of ``pending`` jobs for ``user_id``: all of them, or none.

        ``jobs``: 1 to 10,000 :class:`~jobdesk.JobSpec` (a job without a
        ``project_id`` takes the group's). The user's limits hold for the whole group:
        if it does not fit (jobs created today, pending jobs held),
        :class:`~jobdesk.errors.RateLimited` (``fits``: how many would) and nothing is
        stored. One bad job refuses the group, naming it (``jobs[17].input``).
        ``on_complete``: a :class:`~jobdesk.groups.FanIn` job made once every job of
        the group has finished, with the group's results in its input (made by the
        housekeeping that workers and ``jobdesk serve`` run, see ``finish_groups``).
        """
        user_id = validation.principal_id("user_id", user_id)
        project_id = validation.optional_principal_id("project_id", project_id)
        if (
            not isinstance(jobs, Sequence)
            or isinstance(jobs, str | bytes)
            or not 1 <= len(jobs) <= MAX_GROUP_JOBS
        ):
            raise InvalidInput("jobs", f"must be a list of 1-{MAX_GROUP_JOBS} JobSpec")
        if name is not None:
            if not isinstance(name, str) or not 1 <= len(name) <= MAX_GROUP_NAME:
                raise InvalidInput("name", f"must be a string of 1-{MAX_GROUP_NAME} characters")
            name = validation.storable_text("name", name)
        fan_in = self._fan_in(on_complete)
        specs: list[NewJob] = []
        for index, item in enumerate(jobs):
            if not isinstance(item, JobSpec):
                raise InvalidInput(f"jobs[{index}]", "must be a jobdesk.JobSpec")
            try:
                specs.append(
                    self._new_job(
                        user_id,
                        item.type,
                        item.input,
                        project_id if item.project_id is None else item.project_id,
                        priority=item.priority,
                        run_at=item.run_at,
                        max_attempts=item.max_attempts,
                    )
                )
            except InvalidInput as bad:
                raise InvalidInput(f"jobs[{index}].{bad.field}", bad.rule) from None
        group = NewGroup(
            id=new_job_id(), user_id=user_id, project_id=project_id, name=name, on_complete=fan_in
        )
        made, _ = await self.store.insert_group(group, specs, self.limits)
        return made

    def _fan_in(self, on_complete: object) -> FanIn | None:
        if on_complete is None:
            return None
        if not isinstance(on_complete, FanIn):
            raise InvalidInput("on_complete", "must be a jobdesk.FanIn (a job type and input)")
        try:
            type_ = validation.job_type(on_complete.type, self.types)
            text = validation.json_document(
                "input",
                on_complete.input,
                self.limits.max_input_bytes // 2,
                self.limits.max_input_depth - 2,
            )
        except InvalidInput as bad:
            raise InvalidInput(f"on_complete.{bad.field}", bad.rule) from None
        return FanIn(type_, json.loads(text))

    async def get_group(self, group_id: str, user_id: str) -> Group:
        """One of the user's groups with its status, counts and progress;
        :class:`~jobdesk.errors.GroupNotFound` for any other id."""
        group_id = validation.job_id(group_id, field="group_id")
        user_id = validation.principal_id("user_id", user_id)
        group = await self.store.get_group(group_id, user_id)
        if group is None:
            raise GroupNotFound(group_id)
        return group

    async def get_user_groups(
        self,
        user_id: str,
        *,
        project_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> GroupPage:
        """The user's groups, newest first, one page at a time (as ``get_user_jobs``)."""
        user_id = validation.principal_id("user_id", user_id)
        limit = validation.page_limit(limit)
        owner = _cursor_owner(user_id)
        before_id = None if cursor is None else cursors.decode(self._secret, owner, cursor)
        groups = await self.store.list_groups(
            user_id,
            project_id=validation.optional_principal_id("project_id", project_id),
            before_id=before_id,
            limit=limit + 1,
        )
        if len(groups) <= limit:
            return GroupPage(groups, None)
        items = groups[:limit]
        return GroupPage(items, cursors.encode(self._secret, owner, items[-1].id))

    async def get_group_jobs(
        self, group_id: str, user_id: str, *, offset: int = 0, limit: int = 100
    ) -> list[Job]:
        """The group's jobs in the order they were given, ``limit`` (1-1000) from ``offset``."""
        group = await self.get_group(group_id, user_id)
        offset = validation.integer("offset", offset, 0, MAX_GROUP_JOBS)
        limit = validation.integer("limit", limit, 1, MAX_GROUP_PAGE)
        return await self.store.list_group_jobs(group.id, after=offset, limit=limit)

    async def cancel_group(self, group_id: str, user_id: str) -> Group:
        """Cancel every pending and processing job of the group; the group is ``cancelled``
        once none is active. Finished jobs keep their outcome; no fan-in job is made."""
        group = await self.get_group(group_id, user_id)
        await self.store.set_group_cancelled(group.id, True)
        active = await self.store.group_job_ids(group.id, (JobStatus.PENDING, JobStatus.PROCESSING))
        if active:
            # A job that finished meanwhile is refused (InvalidTransition): it keeps its end.
            await self.store.update_jobs(
                [(job_id, lifecycle.cancel) for job_id in active],
                self.limits,
                user_id=group.user_id,
            )
        return await self.get_group(group.id, group.user_id)

    async def retry_group(self, group_id: str, user_id: str) -> Group:
        """Put the group's failed jobs back to ``pending`` (its other jobs are left alone).

        They count against the user's limits as new jobs would, all together:
        :class:`~jobdesk.errors.RateLimited` (``fits``) before anything is changed if
        they would not fit. A cancelled group is no longer cancelled.
        """
        group = await self.get_group(group_id, user_id)
        failed = await self.store.group_job_ids(group.id, (JobStatus.FAILED,))
        if failed:
            usage = await self.store.user_usage(group.user_id, self.limits)
            now = await self.store.now()
            check_daily(usage.created_today, usage.max_daily, now, len(failed))
            check_waiting(usage.waiting, usage.max_waiting, len(failed))
        outcomes = (
            await self.store.update_jobs(
                [(job_id, lifecycle.retry) for job_id in failed], self.limits, user_id=group.user_id
            )
            if failed
            else []
        )
        # Cleared after the retries: the group goes from cancelled straight to running
        # (a group.* webhook sees no failed in between), not through its finished status.
        await self.store.set_group_cancelled(group.id, False)
        refused = [outcome for outcome in outcomes if isinstance(outcome, RateLimited)]
        if refused:
            # Another create took the room between the check and the retries.
            raise refused[0]
        return await self.get_group(group.id, group.user_id)

    async def finish_groups(self) -> int:
        """Make the fan-in job of every group that has one due (housekeeping); how many.

        Safe to run from many processes at once: a group's fan-in job carries an
        idempotency key (:func:`jobdesk.groups.fan_in_key`), so it is made once. It is
        admitted as a create; a user at a limit gets it once there is room again.
        """
        made = 0
        for group in await self.store.groups_to_finish(_FINISH_BATCH):
            assert group.on_complete is not None
            try:
                job = await self._make_fan_in(group, group.on_complete)
            except JobdeskError as exc:
                _log.warning("the fan-in job of group %s waits: %s", group.id, exc)
                continue
            await self.store.set_fan_in(group.id, job.id)
            made += 1
        return made

    async def _make_fan_in(self, group: Group, fan_in: FanIn) -> Job:
        members: list[Job] = []
        while True:
            page = await self.store.list_group_jobs(
                group.id, after=len(members), limit=MAX_GROUP_PAGE
            )
            members.extend(page)
            if len(page) < MAX_GROUP_PAGE:
                break
        document: dict[str, JSONValue] = {
            "group_id": group.id,
            "input": fan_in.input,
            "jobs": [
                {"id": job.id, "status": job.status.value, "result": job.result} for job in members
            ],
        }
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) > self.limits.max_input_bytes:
            document["jobs"] = [{"id": job.id, "status": job.status.value} for job in members]
            document["results_omitted"] = True
            text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
            if len(text.encode()) > self.limits.max_input_bytes:
                document.pop("jobs")
                text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        spec = NewJob(
            id=new_job_id(),
            user_id=group.user_id,
            type=fan_in.type,
            input=json.loads(text),
            input_json=text,
            max_attempts=self.limits.max_attempts,
            project_id=group.project_id,
            idempotency_key=fan_in_key(group.id),
        )
        job, _ = await self.store.insert_job(spec, self.limits)
        return job
