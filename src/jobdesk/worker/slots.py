"""Slots: how many jobs a worker runs at once, and the line of jobs claimed ahead.

A worker runs at most ``concurrency`` handlers at once, one per slot. It may
claim more than its free slots (prefetch), so that a slot that frees up starts
its next job at once; those jobs wait here, in claim order, under the lease of
their claim. This module counts the slots, sizes each claim, keeps the line,
and takes out of it the jobs that waited too long to be started safely. Starting
a job and handing one back are the runtime's (:mod:`jobdesk.worker.runtime`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math

from jobdesk.models import Job
from jobdesk.worker.context import lease_seconds

__all__ = ["MAX_CLAIM", "PREFETCH_CLAIMS", "PREFETCH_HORIZON", "WAITING_LEASE_SHARE", "Slots"]

_log = logging.getLogger("jobdesk.worker")

#: the most jobs one claim asks for (``claim_jobs`` allows 100)
MAX_CLAIM = 100
#: automatic prefetch holds as many jobs as the slots run in the time of this many claims
#: (going by how long claims and handlers took recently): enough that a slot that frees up
#: finds its next job here while the claim for the one after is on its way, and no more,
#: since every job held here was taken from the fair order before anyone else's next job
PREFETCH_CLAIMS = 2.0
#: ... but never more than this many seconds of work (so a waiting job waits this long, at most)
PREFETCH_HORIZON = 0.1
#: weight of the latest handler or claim time in their averages
_RUN_TIME_WEIGHT = 0.1
#: a prefetched job that waited this part of its lease for a slot is handed back, not
#: started: the lease was granted at the claim, and a heartbeat must come well inside it
WAITING_LEASE_SHARE = 1 / 3


class Slots:
    """The slots of one worker and its line of claimed jobs waiting for one."""

    def __init__(self, concurrency: int, prefetch: int | None) -> None:
        #: how many handlers run at once
        self.concurrency = concurrency
        #: how many claimed jobs may wait for a slot; None decides by handler times
        self.prefetch = prefetch
        #: jobs whose handler has not stopped yet (each holds a slot)
        self.busy = 0
        #: claimed jobs waiting for a slot (prefetched), with the loop time of their claim
        self._waiting: collections.deque[tuple[Job, float]] = collections.deque()
        #: waiting jobs taken out of the line to be handed back (they waited too long)
        self._stale: list[Job] = []
        #: jobs asked for by claims on their way
        self._claiming = 0
        #: the average time handlers took, recently (None before the first)
        self._run_time: float | None = None
        #: the average time a claim took to come back, recently (None before the first)
        self._claim_time: float | None = None
        #: the latest claim answered: when it was sent, and whether it came back short
        #: (the queue had no more due jobs for this worker then)
        self._last_claim: tuple[float, bool] | None = None
        #: loop time a slot last freed up
        self._freed_at = -math.inf

    @property
    def nothing_waiting(self) -> bool:
        """Whether no claimed job waits, to start or to be handed back."""
        return not self._waiting and not self._stale

    def prefetch_now(self) -> int:
        """How many jobs may wait for a slot now."""
        if self.prefetch is not None:
            return self.prefetch
        if self._run_time is None or self._claim_time is None:
            return 0
        horizon = min(PREFETCH_CLAIMS * self._claim_time, PREFETCH_HORIZON)
        slots_get_through = self.concurrency * horizon / max(self._run_time, 1e-6)
        return int(min(slots_get_through, MAX_CLAIM))

    def reserve(self) -> int:
        """Room for one claim (at most ``MAX_CLAIM``): free slots and prefetch, less
        what is held or on its way; taken until :meth:`settle` gives it back."""
        held = self.busy + len(self._waiting) + self._claiming
        reserved = max(0, min(self.concurrency + self.prefetch_now() - held, MAX_CLAIM))
        self._claiming += reserved
        return reserved

    def settle(
        self, claimed: list[Job], reserved: int, asked_at: float, *, answered: bool = True
    ) -> None:
        """A claim of ``reserved`` sent at ``asked_at`` came back with ``claimed``: they
        join the line, and the line's stale head is set aside to be handed back.
        ``answered`` is False when the claim failed (nothing is known of the queue)."""
        self._claiming -= reserved
        if answered and reserved and (self._last_claim is None or asked_at >= self._last_claim[0]):
            self._last_claim = (asked_at, len(claimed) < reserved)
        if reserved:  # a claim was sent: how long it took counts
            took = asyncio.get_running_loop().time() - asked_at
            self._claim_time = _averaged(self._claim_time, took)
        for job in claimed:
            self._waiting.append((job, asked_at))
        self.set_aside_stale()

    def seen_empty(self, work_at: float) -> bool:
        """Whether the latest claim came back short after ``work_at`` (the latest sign
        of new work) and after the latest slot freed up: a claim now would find what it
        found, nothing more."""
        if self._last_claim is None:
            return False
        sent_at, short = self._last_claim
        return short and sent_at >= work_at and sent_at >= self._freed_at

    def next_to_start(self) -> tuple[Job, float] | None:
        """The head of the line, with the loop time of its claim, taking a free slot for it;
        None when no job waits or no slot is free."""
        if not self._waiting or self.busy >= self.concurrency:
            return None
        self.busy += 1
        return self._waiting.popleft()

    def handler_stopped(self, run_time: float) -> None:
        """A handler stopped after ``run_time`` seconds: its slot is free."""
        self.busy -= 1
        self._run_time = _averaged(self._run_time, run_time)
        self._freed_at = asyncio.get_running_loop().time()

    def set_aside_stale(self) -> None:
        """Take the jobs that waited too long out of the line, to be handed back."""
        self._stale.extend(self._take_stale())

    def take_stale(self) -> list[Job]:
        """The jobs to hand back because they waited too long (they leave the line)."""
        self.set_aside_stale()
        stale, self._stale = self._stale, []
        return stale

    def take_all(self) -> list[Job]:
        """Every job that has not started: the line empties (the worker is stopping)."""
        waiting = [*self._stale, *(job for job, _ in self._waiting)]
        self._waiting.clear()
        self._stale = []
        return waiting

    def _take_stale(self) -> list[Job]:
        """Take out of the waiting line the jobs that waited too long to start now.

        The line is in claim order and one store grants one lease length, so the
        stale jobs are at its head: this looks no further than the first fresh one.
        """
        now = asyncio.get_running_loop().time()
        stale: list[Job] = []
        while self._waiting:
            job, claimed_at = self._waiting[0]
            if now - claimed_at < lease_seconds(job) * WAITING_LEASE_SHARE:
                break
            stale.append(self._waiting.popleft()[0])
        if stale:
            _log.info(
                "%d prefetched job(s) waited %d%% of their lease for a slot; handing them back",
                len(stale),
                round(100 * WAITING_LEASE_SHARE),
            )
        return stale


def _averaged(average: float | None, latest: float) -> float:
    """``average`` moved toward ``latest`` (``latest`` itself if there was none)."""
    return latest if average is None else average + _RUN_TIME_WEIGHT * (latest - average)
