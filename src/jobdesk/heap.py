"""What jobdesk's own processes do with their heap once they have started.

A process's full garbage collection walks every object that lives long enough to reach
the oldest generation: in ``jobdesk serve`` ~100,000 of them right after start (FastAPI's
routes and models, the modules, the connection pool), ~15 ms a walk on a small VM, in
the middle of whatever requests were in flight. Objects alive once start-up is done
stay alive for the life of the process: frozen (``gc.freeze``), the collector never
walks them again. Only the composition roots do it (``jobdesk serve``, ``jobdesk
worker``): a host application that embeds jobdesk decides for its own process.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> None:
    """Collect what start-up left behind, then keep every surviving object out of the
    garbage collector's walks for the rest of the process."""
    gc.collect()
    gc.freeze()
