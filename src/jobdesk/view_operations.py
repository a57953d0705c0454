"""ViewOperations: view tokens, so that a browser follows one job or group by itself.

See :mod:`jobdesk.view_tokens` for what a view token is and how it is checked.
"""

from __future__ import annotations

from datetime import timedelta

from jobdesk import validation, view_tokens
from jobdesk.errors import InvalidInput
from jobdesk.group_operations import GroupOperations
from jobdesk.view_tokens import MAX_VIEW_TTL, ViewGrant

__all__ = ["ViewOperations"]


class ViewOperations(GroupOperations):
    """The view-token operations of :class:`jobdesk.JobDesk`."""

    async def create_view_token(
        self,
        user_id: str,
        *,
        job_id: str | None = None,
        group_id: str | None = None,
        ttl: int = 300,
    ) -> str:
        """A short-lived, read-only token to follow one of the user's jobs or groups.

        Exactly one of ``job_id`` and ``group_id``; it must be the user's
        (:class:`~jobdesk.errors.JobNotFound` / ``GroupNotFound`` otherwise). ``ttl``:
        seconds it lives, 1 to 86,400. The token lets its bearer read that job's (or
        group's) state and follow its event stream, which ends when the token expires;
        nothing else, and no change. It is not stored and cannot be revoked: keep
        ``ttl`` short.
        """
        user_id = validation.principal_id("user_id", user_id)
        ttl = validation.integer("ttl", ttl, 1, MAX_VIEW_TTL)
        if (job_id is None) == (group_id is None):
            raise InvalidInput("job_id", "give exactly one of job_id and group_id")
        expires_at = await self.store.now() + timedelta(seconds=ttl)
        if job_id is not None:
            job = await self._own_job(job_id, user_id)
            grant = ViewGrant(user_id, "job", job.id, expires_at)
        else:
            group = await self.get_group(str(group_id), user_id)
            grant = ViewGrant(user_id, "group", group.id, expires_at)
        return view_tokens.sign_view(self.signing_key("view-token"), grant)

    async def verify_view_token(self, token: str) -> ViewGrant:
        """What a view token allows; :class:`~jobdesk.errors.Unauthorized` if it is not
        genuine or has expired."""
        return view_tokens.verify_view(
            self.signing_key("view-token"), token, await self.store.now()
        )
