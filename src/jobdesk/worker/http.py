"""The worker runtime's :class:`~jobdesk.worker.Transport` over jobdesk's HTTP API.

A remote worker needs nothing but the server's URL and a worker token: it
claims, reports and completes through ``/api/v1/worker/...``, and wakes on the
server's ``/api/v1/worker/events`` stream (a hint; it keeps polling). Each
method raises the same :mod:`jobdesk.errors` as the :class:`~jobdesk.JobDesk`
operation it stands for, rebuilt from the server's problem document, so that
handlers and the runtime never know which transport runs them::

    async with HttpTransport.connect("https://jobs.example.com", token) as transport:
        await WorkerRuntime(registry, transport, concurrency=10).run()

A request the server never answered (refused connection, timeout, a proxy's
502) raises :class:`~jobdesk.errors.StoreUnavailable`. A connection that could
not be opened is tried once more (nothing was sent); a request sent without an
answer is not repeated, since the server may have applied it: the lease then
runs out and the job comes back, as after a crash.

Expired leases are requeued by the server (``JOBDESK_REAP_INTERVAL_SECONDS``):
a remote worker has no reaper of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from jobdesk import validation, wire
from jobdesk.errors import InvalidInput, JobdeskError, StoreUnavailable
from jobdesk.models import Completion, Job, JSONValue, ProgressReply
from jobdesk.wire import error_from_problem
from jobdesk.worker.http_events import WorkFeed

__all__ = ["HttpTransport", "error_from_problem"]

_log = logging.getLogger("jobdesk.worker.http")
_PREFIX = "/api/v1/worker"
#: the server's default request body limit (``JOBDESK_MAX_BODY_BYTES``)
DEFAULT_MAX_BODY = 1024 * 1024
#: how long an idle connection to the server is kept for the next request, in seconds
_KEEPALIVE_SECONDS = 2.0


def _completions_body(chunk: list[tuple[str, bytes]]) -> bytes:
    """``{"completions": [...]}`` from encoded items."""
    return b'{"completions":[' + b",".join(item for _, item in chunk) + b"]}"


def _outcomes(
    chunk: list[tuple[str, bytes]], answers: list[Any]
) -> list[Job | JobdeskError | None]:
    """The server's outcome of each completion of ``chunk``: the job, the error, or None
    (completed, the job not sent back: the request said ``return_jobs: false``)."""
    outcomes: list[Job | JobdeskError | None] = []
    for (job_id, _), outcome in zip(chunk, answers, strict=True):
        problem = outcome.get("problem")
        if problem is not None:
            status = int(problem.get("status", 500))
            outcomes.append(error_from_problem(status, problem, job_id=job_id))
        elif outcome.get("job") is not None:
            outcomes.append(wire.decode_job(outcome["job"]))
        else:
            outcomes.append(None)
    return outcomes


def _with_jobs(
    completions: Sequence[Completion], outcomes: list[Job | JobdeskError | None]
) -> list[Job | JobdeskError]:
    """Outcomes asked for with their jobs: one with neither a job nor a problem is the
    server's error."""
    return [
        error_from_problem(500, {}, job_id=completion.job_id) if outcome is None else outcome
        for completion, outcome in zip(completions, outcomes, strict=True)
    ]


def _brief(outcomes: Sequence[Job | JobdeskError | None]) -> list[JobdeskError | None]:
    """Outcomes without their jobs (a server that sent them anyway is not wrong)."""
    return [outcome if isinstance(outcome, JobdeskError) else None for outcome in outcomes]


def _server_url(server: object) -> str:
    if not isinstance(server, str) or not server.strip():
        raise InvalidInput("server", "must be the jobdesk server's URL, e.g. http://host:8000")
    parts = urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("server", "must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise InvalidInput("server", "must not have a query or a fragment")
    return server.strip().rstrip("/")


class HttpTransport:
    """The :class:`~jobdesk.worker.Transport` over a remote jobdesk server's HTTP API.

    Open it with :meth:`connect`, which checks the token with the server.
    """

    #: two completion batches may be on their way at once: while one request travels
    #: and the server and its database work on it, the jobs that finish meanwhile go
    #: in the next, instead of the worker, the server and the database taking turns
    commits_in_flight = 2

    def __init__(
        self,
        client: httpx.AsyncClient,
        name: str,
        types: frozenset[str] | None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._client = client
        self._name = name
        #: the job types the token allows (None: any)
        self.token_types = types
        self._max_body = max_body_bytes
        #: whether completions ask for answers without the completed jobs (until a server
        #: that does not know ``return_jobs`` refuses it)
        self._brief_answers = True

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        server: str,
        token: str,
        *,
        request_timeout: float = 30.0,
        max_body_bytes: int = DEFAULT_MAX_BODY,
    ) -> AsyncIterator[HttpTransport]:
        """A transport to ``server`` as the worker ``token`` stands for, for the block.

        Raises :class:`~jobdesk.errors.Unauthorized` if the server refuses the token
        and :class:`~jobdesk.errors.StoreUnavailable` if it cannot be reached.
        """
        base = _server_url(server)
        if not isinstance(token, str) or not token.strip():
            raise InvalidInput("token", "must be a worker token (jdw_...)")
        seconds = validation.seconds("request_timeout", request_timeout, 3600.0)
        if not seconds:
            raise InvalidInput("request_timeout", "must be more than 0 seconds")
        limit = validation.integer("max_body_bytes", max_body_bytes, 1024, 1 << 30)
        client = httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {token.strip()}", "User-Agent": "jobdesk-worker"},
            timeout=httpx.Timeout(seconds),
            # retries=1: a connection that could not be opened carried nothing; try again.
            # Idle connections are dropped before the server's keep-alive timeout (5 s by
            # default) can close one under a request sent on it: that write's outcome
            # would be unknown.
            transport=httpx.AsyncHTTPTransport(
                retries=1,
                limits=httpx.Limits(
                    max_connections=100,  # httpx's defaults, but for the expiry
                    max_keepalive_connections=20,
                    keepalive_expiry=_KEEPALIVE_SECONDS,
                ),
            ),
        )
        async with client:
            me = await cls._request(client, "GET", "/me")
            types = me.get("types")
            transport = cls(
                client,
                str(me["name"]),
                None if types is None else frozenset(types),
                max_body_bytes=limit,
            )
            yield transport

    @property
    def worker_name(self) -> str:
        """The worker token's name, as the server knows it."""
        return self._name

    @staticmethod
    async def _request(
        client: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        body: object = None,
        content: bytes | None = None,
        job_id: str | None = None,
    ) -> Any:
        if content is None and body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await client.request(
                method, _PREFIX + path, content=content, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
            raise StoreUnavailable(
                f"cannot connect to the jobdesk server at {client.base_url} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        except httpx.HTTPError as exc:
            raise StoreUnavailable(
                f"no answer from the jobdesk server at {client.base_url} "
                f"({type(exc).__name__}: {exc}); if this was a write, it may have been applied",
                outcome_unknown=True,
            ) from exc
        if response.is_success:
            return response.json()
        try:
            document = response.json()
        except ValueError:
            document = {"detail": response.text[:200]}
        if not isinstance(document, dict):
            document = {}
        raise error_from_problem(response.status_code, document, job_id=job_id)

    async def _call(
        self, method: str, path: str, body: object = None, *, job_id: str | None = None
    ) -> Any:
        return await self._request(self._client, method, path, body=body, job_id=job_id)

    async def claim(self, types: frozenset[str], limit: int) -> list[Job]:
        """``POST /jobs/claim``: start up to ``limit`` due jobs of ``types``."""
        jobs = await self._call("POST", "/jobs/claim", {"types": sorted(types), "limit": limit})
        return [wire.decode_job(job) for job in jobs]

    async def report(
        self, job_id: str, attempt: int, progress: float | None, message: str | None
    ) -> ProgressReply:
        """``POST /jobs/{id}/progress``, or ``/heartbeat`` when ``progress`` is None."""
        body: dict[str, object]
        if progress is None:
            path, body = f"/jobs/{job_id}/heartbeat", {"attempt": attempt}
        else:
            path = f"/jobs/{job_id}/progress"
            body = {"progress": float(progress), "message": message, "attempt": attempt}
        reply = await self._call("POST", path, body, job_id=job_id)
        return wire.decode_progress_reply(reply)

    async def complete(self, completions: Sequence[Completion]) -> list[Job | JobdeskError]:
        """``POST /jobs/complete``: one transaction per request body.

        A batch whose body would pass the server's size limit goes as several
        requests (each its own transaction); a result too large by itself is
        refused with :class:`~jobdesk.errors.InvalidInput`.
        """
        outcomes = await self._complete_chunks(self._chunks(completions), return_jobs=True)
        return _with_jobs(completions, outcomes)

    async def complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        """``POST /jobs/complete-and-claim``: the cycle in one request and one transaction.

        Completions that do not fit one request body go ahead through
        ``/jobs/complete``; the last of them travel with the claim.
        """
        outcomes, claimed = await self._cycle(completions, types, limit, return_jobs=True)
        return _with_jobs(completions, outcomes), claimed

    async def complete_briefly(
        self, completions: Sequence[Completion]
    ) -> list[JobdeskError | None]:
        """As :meth:`complete`, without the completed jobs in the answer (None for each)."""
        if not self._brief_answers:
            return _brief(await self.complete(completions))
        chunks = self._chunks(completions)
        try:
            return _brief(await self._complete_chunks(chunks, return_jobs=False))
        except InvalidInput as refused:
            if self._server_knows_brief(refused):
                raise
            return _brief(await self.complete(completions))

    async def complete_and_claim_briefly(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[JobdeskError | None], list[Job]]:
        """As :meth:`complete_and_claim`, without the completed jobs in the answer."""
        if self._brief_answers:
            try:
                outcomes, claimed = await self._cycle(completions, types, limit, return_jobs=False)
                return _brief(outcomes), claimed
            except InvalidInput as refused:
                if self._server_knows_brief(refused):
                    raise
        full, claimed = await self.complete_and_claim(completions, types, limit)
        return _brief(full), claimed

    def _server_knows_brief(self, refused: InvalidInput) -> bool:
        """Whether ``refused`` is not a server's refusal of ``return_jobs`` (a server
        older than the field): after one, this transport asks for the jobs again."""
        if "return_jobs" not in str(refused):
            return True
        _log.warning("the server does not know return_jobs; completions bring their jobs back")
        self._brief_answers = False
        return False

    async def _cycle(
        self,
        completions: Sequence[Completion],
        types: frozenset[str],
        limit: int,
        *,
        return_jobs: bool,
    ) -> tuple[list[Job | JobdeskError | None], list[Job]]:
        fields = {"types": sorted(types), "limit": limit}
        if not return_jobs:
            fields["return_jobs"] = False
        claim = json.dumps(fields, separators=(",", ":")).encode()
        chunks = self._chunks(completions, envelope=len(claim))
        last = chunks.pop() if chunks else []
        outcomes = await self._complete_chunks(chunks, return_jobs=return_jobs)
        body = _completions_body(last)[:-1] + b"," + claim[1:]
        answer = await self._request(self._client, "POST", "/jobs/complete-and-claim", content=body)
        outcomes.extend(_outcomes(last, answer["outcomes"]))
        return outcomes, [wire.decode_job(job) for job in answer["claimed"]]

    async def _complete_chunks(
        self, chunks: list[list[tuple[str, bytes]]], *, return_jobs: bool
    ) -> list[Job | JobdeskError | None]:
        outcomes: list[Job | JobdeskError | None] = []
        tail = b"}" if return_jobs else b',"return_jobs":false}'
        for chunk in chunks:
            body = _completions_body(chunk)[:-1] + tail
            answer = await self._request(self._client, "POST", "/jobs/complete", content=body)
            outcomes.extend(_outcomes(chunk, answer["outcomes"]))
        return outcomes

    def _chunks(
        self, completions: Sequence[Completion], *, envelope: int = 0
    ) -> list[list[tuple[str, bytes]]]:
        """The completions, encoded, in runs whose request bodies fit the server's limit
        (with ``envelope`` more bytes around the items)."""
        room = self._max_body - 64 - envelope  # the envelope around the items
        chunks: list[list[tuple[str, bytes]]] = [[]]
        size = 0
        for completion in completions:
            item = json.dumps(
                {
                    "job_id": completion.job_id,
                    "attempt": completion.attempt,
                    "result": completion.result,
                },
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
            if chunks[-1] and size + len(item) + 1 > room:
                chunks.append([])
                size = 0
            chunks[-1].append((completion.job_id, item))
            size += len(item) + 1
        return [chunk for chunk in chunks if chunk]

    async def fail(
        self,
        job_id: str,
        attempt: int,
        error: dict[str, JSONValue],
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> Job:
        """``POST /jobs/{id}/fail``."""
        body = {
            "error": error,
            "retryable": retryable,
            "retry_after": retry_after,
            "attempt": attempt,
        }
        return wire.decode_job(
            await self._call("POST", f"/jobs/{job_id}/fail", body, job_id=job_id)
        )

    async def release(self, job_id: str, attempt: int) -> Job:
        """``POST /jobs/{id}/release``: hand the job back, its attempt unspent."""
        body = {"attempt": attempt}
        return wire.decode_job(
            await self._call("POST", f"/jobs/{job_id}/release", body, job_id=job_id)
        )

    async def snooze(self, job_id: str, attempt: int, delay: float) -> Job:
        """``POST /jobs/{id}/snooze``: pending again after ``delay``, its attempt unspent."""
        body = {"attempt": attempt, "delay": delay}
        return wire.decode_job(
            await self._call("POST", f"/jobs/{job_id}/snooze", body, job_id=job_id)
        )

    async def verify(self) -> None:
        """``GET /me``: the server still takes the token."""
        await self._call("GET", "/me")

    async def reap(self) -> int:
        """Nothing: the server requeues expired leases itself. Always 0."""
        return 0

    async def run_schedules(self) -> int | None:
        """None: a remote worker has no database to fire schedules on; the server does."""
        return None

    @contextlib.asynccontextmanager
    async def changes(self) -> AsyncIterator[WorkFeed]:
        """The server's ``/events`` stream of work, reconnected as long as the block runs."""
        feed = WorkFeed(self._client, _PREFIX + "/events")
        task = asyncio.create_task(feed.follow(), name="jobdesk-work-events")
        try:
            yield feed
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
