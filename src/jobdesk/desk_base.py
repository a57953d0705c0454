"""DeskBase: what every family of desk operations shares.

:class:`jobdesk.JobDesk` is put together from one class per concept
(:mod:`jobdesk.user_operations`, :mod:`jobdesk.worker_operations`,
:mod:`jobdesk.operator_queries`, :mod:`jobdesk.token_operations`); each of them
builds on this one: the store, the limits, the registered types, the
deployment's secret, and the one way a single job is changed.
"""

from __future__ import annotations

import hashlib
import hmac

from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.limits import Limits
from jobdesk.models import Job
from jobdesk.store import Change, Store

__all__ = ["DeskBase"]


class DeskBase:
    """The state :class:`jobdesk.JobDesk` sets up and every operation reads."""

    #: the database every operation runs against
    store: Store
    #: the default limits this desk enforces
    limits: Limits
    #: the registered job types; None accepts any well-formed type
    types: frozenset[str] | None
    #: the deployment's secret (from the store), which cursors and worker proofs are signed with
    _secret: bytes

    def signing_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` (``"csrf"``, say), derived from the deployment's secret.

        Faces sign what they hand out (forms, sessions) with it; each purpose gets its
        own key, so a signature made for one is worthless for another.
        """
        if not isinstance(purpose, str) or not purpose:
            raise InvalidInput("purpose", "must be a non-empty string")
        return hmac.new(self._secret, b"purpose\x1f" + purpose.encode(), hashlib.sha256).digest()

    async def _update(self, job_id: str, change: Change, user_id: str | None = None) -> Job:
        """Apply ``change`` to one job; raise what refused it."""
        [outcome] = await self.store.update_jobs([(job_id, change)], self.limits, user_id=user_id)
        if isinstance(outcome, JobdeskError):
            raise outcome
        return outcome
