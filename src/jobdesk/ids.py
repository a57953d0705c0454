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

# every pair of digits, by the ten bits they stand for
_PAIRS = [high + low for high in CROCKFORD for low in CROCKFORD]
_PAIR_SHIFTS = tuple(range(120, -1, -10))

_lock = threading.Lock()
_last = [0]  # the last id made, as an int; a list so it can change without "global"
# Random bytes drawn from the OS a page at a time (one getrandom call per 227 ids, not one
# per id: under load each call cost more than the rest of the id), used once each, under
# _lock. A forked child must not reuse its parent's: it starts with none.
_random = bytearray()
_RANDOM_PAGE = 4086  # 227 ids of 18 bytes
os.register_at_fork(after_in_child=_random.clear)


def new_job_id() -> str:
    """A new id, greater than every id this process made before."""
    now = time.time_ns() // 1_000_000
    with _lock:
        if not _random:
            _random.extend(os.urandom(_RANDOM_PAGE))
        noise = int.from_bytes(_random[-18:], "big")  # 80 bits for the id, 64 for a step
        del _random[-18:]
        candidate = now << 80 | noise >> 64
        # Same millisecond (or a clock step back): step up from the last id by a random
        # amount. 80 random bits leave room for 2**16 such steps in one millisecond
        # before one spills into the next millisecond, which only makes it look later.
        step = 1 + (noise & 0xFFFF_FFFF_FFFF_FFFF)
        value = candidate if candidate > _last[0] else _last[0] + step
        _last[0] = value
    return encode(value)


def encode(value: int) -> str:
    """A 130-bit number (an id's 128, two leading zero bits) as 26 Crockford digits."""
    # Two digits per lookup, most significant first: 13 steps instead of 26 (ids are made
    # for every job of a bulk create, where this loop was a tenth of the client's time).
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


def first_id_at(at: datetime) -> str:
    """The smallest id made at or after ``at``: a keyset bound for "created since"."""
    return encode(int(at.timestamp() * 1000) << 80)
