"""What one app holds while it runs: its desk, settings, metrics and change broadcaster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from jobdesk.desk import JobDesk
from jobdesk.errors import StoreUnavailable
from jobdesk.http.broadcast import Broadcaster
from jobdesk.http.metrics import Metrics
from jobdesk.http.settings import Settings

if TYPE_CHECKING:
    from jobdesk.http.sse_groups import GroupFeeds

__all__ = ["Runtime", "RuntimeDep", "get_runtime", "runtime_of"]


@dataclass(slots=True)
class Runtime:
    """The state of one app, at ``app.state.jobdesk``."""

    settings: Settings
    metrics: Metrics
    #: None until the lifespan opens it (when the app was given a URL)
    desk: JobDesk | None = None
    _broadcaster: Broadcaster | None = field(default=None, repr=False)
    _group_feeds: GroupFeeds | None = field(default=None, repr=False)

    def require_desk(self) -> JobDesk:
        """The open desk, or :class:`StoreUnavailable` before the lifespan opened it."""
        if self.desk is None:
            raise StoreUnavailable(
                "the desk is not open: serve the app with its lifespan (uvicorn does), "
                "or pass an open JobDesk to create_app"
            )
        return self.desk

    @property
    def broadcaster(self) -> Broadcaster:
        """The app's one subscription to the change feed, made on first use."""
        if self._broadcaster is None:
            self._broadcaster = Broadcaster(self.require_desk())
        return self._broadcaster

    @property
    def group_feeds(self) -> GroupFeeds:
        """The feeds of the groups followed here, one per group, fed by the broadcaster."""
        if self._group_feeds is None:
            # Imported here: the streams' module reads credentials (auth), which reads this.
            from jobdesk.http.sse_groups import GroupFeeds  # noqa: PLC0415

            self._group_feeds = GroupFeeds(self.require_desk(), self.broadcaster, self.settings)
        return self._group_feeds

    async def close_broadcaster(self) -> None:
        """Stop the change feed and the group feeds on it (the lifespan does, at shutdown)."""
        if self._group_feeds is not None:
            await self._group_feeds.close()
            self._group_feeds = None
        if self._broadcaster is not None:
            await self._broadcaster.close()
            self._broadcaster = None


def runtime_of(request: Request) -> Runtime:
    """The :class:`Runtime` of the app serving ``request``."""
    runtime: Runtime = request.app.state.jobdesk
    return runtime


async def get_runtime(request: Request) -> Runtime:
    """Dependency: the app's :class:`Runtime`.

    ``async`` on purpose: FastAPI runs a plain function dependency in a thread pool,
    a thread hop on every request for nothing.
    """
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
