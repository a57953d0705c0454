"""The jobdesk adapter on ``?synchronous=normal`` (a crash of the process loses nothing,
a power cut may lose the last commits): ``bench.py jobdesk_normal ...``.

File from ``BENCH_JOBDESK_NORMAL_URL`` (default
``sqlite:////tmp/jobdesk-bench/jobdesk-normal.db?synchronous=normal``).
"""

from __future__ import annotations

import os

import lib_jobdesk

URL = os.environ.get(
    "BENCH_JOBDESK_NORMAL_URL", "sqlite:////tmp/jobdesk-bench/jobdesk-normal.db?synchronous=normal"
)


class Producer(lib_jobdesk.Producer):
    """The jobdesk producer on this adapter's URL."""

    url = URL


_ADAPTER = lib_jobdesk.Adapter(URL, lib_jobdesk.NOTES.replace("(default full)", "(here: normal)"))
setup = _ADAPTER.setup
reset = _ADAPTER.reset
worker_cmds = _ADAPTER.worker_cmds
VARIANTS = lib_jobdesk.VARIANTS
NOTES = _ADAPTER.notes
