"""The experiment's clients: creates through the library and over HTTP, each outcome recorded.

An outcome is what the client can know, from what it was told:

- acknowledged (``ok``): the job's id came back;
- ``refused``: a limit said no (``RateLimited``, HTTP 429);
- ``failed``, certainly not applied: the request never left (no connection), the
  input or the token was refused, or a ``StoreUnavailable`` (or a 503 problem)
  with ``outcome_unknown`` false said nothing was applied;
- ``unknown``: anything else: a timeout or broken connection after the request
  left, a ``StoreUnavailable`` with ``outcome_unknown`` (a commit cut off), a 503
  whose problem says ``"outcome_unknown": true``, and other HTTP 5xx answers
  (``internal-error``, a proxy's), which do not say whether anything was applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from typing import Any

import httpx

from jobdesk import JobDesk
from jobdesk.errors import JobdeskError, RateLimited, StoreUnavailable
from tests.faults.app import JOB_TYPE, SLOW_TYPE
from tests.faults.checker import CreateOp, Outcome

__all__ = ["PROBLEM_PREFIX", "Clients", "classify_http", "classify_library"]

PROBLEM_PREFIX = "urn:jobdesk:problem:"
#: problem types that say the request was refused before anything was written
_NOT_APPLIED = frozenset({"invalid-input", "unauthorized", "job-not-found"})


def classify_library(exc: JobdeskError) -> tuple[Outcome, str]:
    """The outcome of a library create that raised ``exc``, and a detail to keep."""
    if isinstance(exc, RateLimited):
        return "refused", exc.limit
    if isinstance(exc, StoreUnavailable) and exc.outcome_unknown:
        return "unknown", str(exc)[:200]
    return "failed", f"{type(exc).__name__}: {str(exc)[:200]}"


def classify_http(status: int, document: Any) -> tuple[Outcome, str]:
    """The outcome of an HTTP create answered ``status`` with the body ``document``."""
    slug = ""
    if isinstance(document, dict):
        slug = str(document.get("type", "")).removeprefix(PROBLEM_PREFIX)
    if status in (200, 201):
        return "ok", ""
    if status == 429 or slug == "rate-limited":
        limit = document.get("limit", "") if isinstance(document, dict) else ""
        return "refused", str(limit)
    if slug in _NOT_APPLIED or 400 <= status < 500:
        return "failed", f"{status} {slug}"
    # The server's 503 says whether the write may have been applied.
    unknown = isinstance(document, dict) and document.get("outcome_unknown") is not False
    if slug == "store-unavailable" and not unknown:
        return "failed", f"{status} {slug}"
    return "unknown", f"{status} {slug or 'no problem document'}"


class Clients:
    """Client tasks creating jobs until stopped, at about ``rate`` creates a second.

    A share of the creates are slow jobs; the nemesis asks for one more (with
    :attr:`slow_wanted`) when it is about to pause a worker in the middle of one.
    """

    def __init__(
        self,
        desk: JobDesk,
        base: str,
        tokens: dict[str, str],
        *,
        rate: float,
        clients: int,
        slow_share: float,
        seed: int,
    ) -> None:
        self.desk = desk
        self.base = base
        self.tokens = tokens
        self.pause = clients / rate
        self.slow_share = slow_share
        self.seed = seed
        self.creates: list[CreateOp] = []
        self.stop = asyncio.Event()
        #: set (from the nemesis's thread) to have the next create be a slow job
        self.slow_wanted = threading.Event()

    async def run(self, number: int) -> None:
        """One client: create, sometimes cancel what it created, wait, until stopped."""
        rng = random.Random(self.seed * 1000 + number)
        async with httpx.AsyncClient(base_url=self.base, timeout=5) as http:
            while not self.stop.is_set():
                user = rng.choice(sorted(self.tokens))
                if rng.random() < self.slow_share or self.slow_wanted.is_set():
                    kind, payload = SLOW_TYPE, {}
                else:
                    payload = {"seconds": rng.uniform(0.02, 0.3), "fail_first": rng.random() < 0.1}
                    kind = JOB_TYPE
                key = uuid.uuid4().hex
                if rng.random() < 0.5:
                    op = await self._library(user, key, kind, payload)
                else:
                    op = await self._http(http, user, key, kind, payload)
                self.creates.append(op)
                if kind == SLOW_TYPE and op.outcome == "ok":
                    self.slow_wanted.clear()
                if op.outcome == "ok" and kind == JOB_TYPE and rng.random() < 0.05:
                    with contextlib.suppress(JobdeskError):
                        assert op.job_id is not None
                        await self.desk.cancel_job(op.job_id, user)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), rng.uniform(0.5, 1.5) * self.pause)

    async def _library(self, user: str, key: str, kind: str, payload: dict[str, Any]) -> CreateOp:
        sent = time.time()
        try:
            job = await self.desk.create_job(
                user, kind, payload, max_attempts=8, idempotency_key=key
            )
        except JobdeskError as exc:
            outcome, detail = classify_library(exc)
            return CreateOp(key, user, "library", outcome, None, detail, sent, time.time())
        return CreateOp(key, user, "library", "ok", job.id, "", sent, time.time())

    async def _http(
        self, http: httpx.AsyncClient, user: str, key: str, kind: str, payload: dict[str, Any]
    ) -> CreateOp:
        body = {"type": kind, "input": payload, "max_attempts": 8, "idempotency_key": key}
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        sent = time.time()
        try:
            answer = await http.post("/api/v1/jobs", json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
            return CreateOp(
                key, user, "http", "failed", None, type(exc).__name__, sent, time.time()
            )
        except httpx.HTTPError as exc:
            return CreateOp(
                key, user, "http", "unknown", None, type(exc).__name__, sent, time.time()
            )
        at = time.time()
        try:
            document = answer.json()
        except ValueError:
            document = None
        outcome, detail = classify_http(answer.status_code, document)
        job_id = document["id"] if outcome == "ok" and isinstance(document, dict) else None
        return CreateOp(key, user, "http", outcome, job_id, detail, sent, at)
