"""jobdesk's own processes freeze what start-up made, out of the collector's walks."""

from __future__ import annotations

import subprocess
import sys


def test_objects_alive_at_start_up_are_frozen_and_garbage_is_collected_first() -> None:
    script = """
import gc
from jobdesk.heap import freeze_startup_heap

class Node:
    pass

kept = [Node() for _ in range(1000)]
cycle = Node(); cycle.me = cycle; del cycle   # garbage, only a collection frees it
collected = []
gc.callbacks.append(lambda phase, info: phase == "stop" and collected.append(info["collected"]))
freeze_startup_heap()
print(gc.get_freeze_count() >= 1000, sum(collected) >= 1)
"""
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert answer.stdout.split() == ["True", "True"]
