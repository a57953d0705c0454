"""Time-ordered job ids: 48 bits of milliseconds, then 80 random bits (the ULID layout).

Sorting ids sorts jobs by creation time, so "newest first" and keyset
pagination need no second column. Within one process ids are strictly
increasing even inside one millisecond: the next id then steps up from the last
by a random amount (up to 2**64), not by one, so an id does not tell its
neighbours.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import datetime

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
JOB_ID_PATTERN = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")

_lock = threading.Lock()
_last = [0]  # the last id made, as an int; a list so it can change without "global"


def new_job_id() -> str:
    """A new id, greater than every id this process made before."""
    candidate = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    with _lock:
        # Same millisecond (or a clock step back): step up from the last id by a random
        # amount. 80 random bits leave room for 2**16 such steps in one millisecond
        # before one spills into the next millisecond, which only makes it look later.
        step = 1 + int.from_bytes(os.urandom(8), "big")
        value = candidate if candidate > _last[0] else _last[0] + step
        _last[0] = value
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def first_id_at(at: datetime) -> str:
    """The smallest id made at or after ``at``: a keyset bound for "created since"."""
    value = int(at.timestamp() * 1000) << 80
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
