"""jobdesk.sync offers every operation of the async desk (but the async-only feed)."""

from __future__ import annotations

import inspect

from jobdesk import JobDesk
from jobdesk.sync import JobDesk as SyncJobDesk

#: async-only: the change feed (an async iterator), the desk's own life cycle, and the
#: webhook sender that runs until cancelled (a task beside a server or a worker)
ASYNC_ONLY = {"subscribe", "start", "open", "close", "send_webhooks"}


def test_every_operation_of_the_async_desk_has_a_blocking_twin() -> None:
    operations = {
        name
        for name, member in inspect.getmembers(JobDesk)
        if not name.startswith("_") and callable(member) and name not in ASYNC_ONLY
    }
    missing = sorted(name for name in operations if not hasattr(SyncJobDesk, name))
    assert missing == []
