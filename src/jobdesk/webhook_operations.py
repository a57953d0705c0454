"""WebhookOperations: the operator's webhooks, and the sender that delivers their outbox.

An operator sets a webhook per user or per project (``set_webhook``). From then on
every job transition of theirs that the webhook asked for is written to an outbox in
the transition's own transaction; ``deliver_webhooks`` (run by ``jobdesk serve`` and by
``jobdesk webhooks deliver``) sends what is due, signed as Standard Webhooks says, a
bounded number at once, in order per job, and records each outcome: delivered, tried
again later (:func:`jobdesk.webhooks.next_delay`: over 24 hours), or dead (the last
response kept, ``redeliver_webhook`` to send it again). Never by the request that made
the transition. None of this is scoped to a user: never call it on a user's behalf.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from jobdesk import validation, wire
from jobdesk.desk_base import DeskBase
from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.ids import new_job_id
from jobdesk.models import Job
from jobdesk.webhook_client import SendFailed, WebhookClient
from jobdesk.webhooks import (
    Delivery,
    Outcome,
    Webhook,
    check_address,
    check_url,
    new_secret,
    next_delay,
    parse_events,
    parse_secret,
    sign,
)

__all__ = ["WebhookOperations"]

#: how long a claimed delivery is kept from other senders (longer than any send)
_LEASE_SECONDS = 60.0
_RESPONSE_KEPT = 1000
_STATES = ("pending", "delivered", "dead")
_log = logging.getLogger("jobdesk.webhooks")


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in found})


async def _check_endpoint(url: str, *, allow_private: bool) -> list[str]:
    """The addresses ``url``'s host resolves to, all checked (SSRF); else InvalidInput."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    check_address(host, addresses, allow_private=allow_private)
    return addresses


@dataclass
class _Batch:
    """What the sends of one claimed batch share: its jobs (read at once), the gate,
    each endpoint's address check (once per URL), each secret's key, and the outcomes."""

    jobs: dict[str, Job]
    gate: asyncio.Semaphore
    send_timeout: float
    #: when the claim's lease ends (time.monotonic(), from before the claim)
    lease_ends: float
    outcomes: list[Outcome] = field(default_factory=list)
    #: failed sends by (URL, answer, what next): logged once per batch, not once each
    failures: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: each (URL, allow_private) checked so far: its addresses, or why it is refused
    checked: dict[tuple[str, bool], list[str] | InvalidInput] = field(default_factory=dict)
    #: each secret's key bytes
    keys: dict[str, bytes] = field(default_factory=dict)

    async def check_endpoint(self, webhook: Webhook) -> list[str]:
        """The SSRF check of ``webhook``'s URL, resolved once per batch: the addresses to
        connect to (only those); InvalidInput."""
        key = (webhook.url, webhook.allow_private)
        if key not in self.checked:
            try:
                self.checked[key] = await _check_endpoint(
                    webhook.url, allow_private=webhook.allow_private
                )
            except InvalidInput as exc:
                self.checked[key] = exc
        found = self.checked[key]
        if isinstance(found, InvalidInput):
            raise found
        return found

    def lease_running_out(self) -> bool:
        """Whether a send begun now could end after the lease (another sender's by then)."""
        return time.monotonic() + self.send_timeout > self.lease_ends

    def key(self, webhook: Webhook) -> bytes:
        """The key of ``webhook``'s secret (decoded once per batch)."""
        key = self.keys.get(webhook.secret)
        if key is None:
            key = self.keys[webhook.secret] = parse_secret(webhook.secret)
        return key


class WebhookOperations(DeskBase):
    """The webhook operations of :class:`jobdesk.JobDesk` (for operators)."""

    async def set_webhook(
        self,
        url: str,
        *,
        user_id: str | None = None,
        project_id: str | None = None,
        secret: str | None = None,
        events: Sequence[str] | None = None,
        allow_http: bool = False,
        allow_private: bool = False,
    ) -> Webhook:
        """Send the job transitions of one user (or one project) to ``url``.

        Exactly one of ``user_id`` and ``project_id``; one webhook each (a new call
        replaces it, keeping its undelivered deliveries). ``secret``: ``whsec_`` and at
        least 24 bytes in base64 (None makes one: read it from the returned webhook).
        ``events``: the ``job.<status>`` and ``group.<status>`` events to send (None:
        every one); a group event is sent when the group's status
        (:func:`jobdesk.groups.summarize`) changes, in the transaction of the job change
        (or cancel) that changed it. ``url`` must
        be https and must not resolve to a loopback, link-local or private address,
        unless ``allow_http`` / ``allow_private`` (an operator's choice, for a receiver
        inside the network).
        """
        if not isinstance(allow_http, bool) or not isinstance(allow_private, bool):
            raise InvalidInput("allow_http", "allow_http and allow_private must be true or false")
        url = check_url(url, allow_http=allow_http)
        if (user_id is None) == (project_id is None):
            raise InvalidInput("user_id", "give exactly one of user_id and project_id")
        user_id = validation.optional_principal_id("user_id", user_id)
        project_id = validation.optional_principal_id("project_id", project_id)
        secret = new_secret() if secret is None else secret
        parse_secret(secret)
        statuses, group_statuses = parse_events(events)
        await _check_endpoint(url, allow_private=allow_private)
        webhook = Webhook(
            id=new_job_id(),
            url=url,
            statuses=statuses,
            group_statuses=group_statuses,
            created_at=await self.store.now(),
            user_id=user_id,
            project_id=project_id,
            allow_http=allow_http,
            allow_private=allow_private,
            secret=secret,
        )
        return await self.store.set_webhook(webhook)

    async def remove_webhook(self, webhook_id: str) -> bool:
        """Forget a webhook and its undelivered deliveries; whether it existed."""
        return await self.store.remove_webhook(validation.job_id(webhook_id, field="webhook_id"))

    async def get_webhooks(self) -> list[Webhook]:
        """Every webhook (with its secret), oldest first."""
        return await self.store.list_webhooks()

    async def get_webhook_deliveries(
        self, *, state: str | None = None, webhook_id: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        """Deliveries, newest first: ``state`` pending, delivered or dead (None: all)."""
        if state is not None and state not in _STATES:
            raise InvalidInput("state", f"must be one of {list(_STATES)}")
        if webhook_id is not None:
            webhook_id = validation.job_id(webhook_id, field="webhook_id")
        limit = validation.integer("limit", limit, 1, 1000)
        return await self.store.list_deliveries(state=state, webhook_id=webhook_id, limit=limit)

    async def redeliver_webhook(self, delivery_id: str) -> bool:
        """Send a dead (or delivered) delivery again, now, with a fresh round of retries;
        whether there was one to send."""
        if not isinstance(delivery_id, str) or not delivery_id.isdigit() or len(delivery_id) > 18:
            raise InvalidInput("delivery_id", "must be a delivery's id (digits)")
        return await self.store.redeliver(delivery_id)

    async def deliver_webhooks(
        self,
        *,
        client: WebhookClient | None = None,
        limit: int = 100,
        concurrency: int = 16,
        send_timeout: float = 10.0,
        lease_seconds: float = _LEASE_SECONDS,
    ) -> int:
        """Send the due deliveries (at most ``limit``, ``concurrency`` at once); how many
        were sent (whatever the answer; one job's stop at its first failure).

        ``client``: the :class:`~jobdesk.webhook_client.WebhookClient` whose kept
        connections to use (None: one of this call's own).

        ``lease_seconds``: how long the deliveries it claims are kept from other senders
        (a sender killed mid-batch leaves them to the next after that); longer than
        ``send_timeout``, and better longer than a batch takes to send: a send that could
        end after the lease is not begun (its delivery, unsent and not counted, is due
        again when the lease ends), so that no two senders ever send one job's deliveries
        at once, out of order.

        A 2xx answer delivers; anything else (or no answer within ``timeout``) is tried
        again after :func:`jobdesk.webhooks.next_delay`, then is dead (``send_timeout``: seconds
        per send). Safe to run from
        many processes at once: each claims its own deliveries for a while, and a sender
        that dies leaves them to the next (at least once: a receiver dedupes on
        ``webhook-id``).
        """
        limit = validation.integer("limit", limit, 1, 1000)
        concurrency = validation.integer("concurrency", concurrency, 1, 256)
        lease_seconds = validation.seconds("lease_seconds", lease_seconds, 86400.0)
        send_timeout = validation.seconds("send_timeout", send_timeout, 3600.0)
        if lease_seconds <= send_timeout:
            raise InvalidInput("lease_seconds", "must be longer than send_timeout")
        claimed_at = time.monotonic()
        claimed = await self.store.claim_deliveries(limit, lease_seconds)
        if not claimed:
            return 0
        batch = _Batch(
            jobs={
                job.id: job
                for job in await self.store.get_jobs(
                    sorted({d.job_id for d, _ in claimed if d.subject == "job"})
                )
            },
            gate=asyncio.Semaphore(concurrency),
            send_timeout=send_timeout,
            lease_ends=claimed_at + lease_seconds,
        )
        owned = client is None
        sender = client or WebhookClient(connections=concurrency)
        # One job's deliveries go one after the other, in order, and stop at a failure
        # (the rest wait for it); different jobs' go side by side.
        chains: dict[tuple[str, str], list[tuple[Delivery, Webhook]]] = {}
        for delivery, webhook in sorted(claimed, key=lambda pair: int(pair[0].id)):
            chains.setdefault((delivery.webhook_id, delivery.job_id), []).append(
                (delivery, webhook)
            )
        try:
            async with asyncio.TaskGroup() as tasks:
                sends = [
                    tasks.create_task(self._send_chain(sender, batch, chain))
                    for chain in chains.values()
                ]
        finally:
            if owned:
                await sender.aclose()
            # Recorded together, once the batch is sent: one write for the batch; also
            # when the sender is stopped mid-batch (what was sent is not sent again).
            # A sender killed before this leaves the whole batch to the next after its
            # lease (sent again: at least once, deduplicable by webhook-id).
            await self.store.record_deliveries(batch.outcomes)
        for (url, answer, outcome), count in sorted(batch.failures.items()):
            _log.warning("%d webhook deliveries to %s failed (%s), %s", count, url, answer, outcome)
        return sum(send.result() for send in sends)

    async def send_webhooks(
        self,
        *,
        interval: float = 1.0,
        limit: int = 100,
        concurrency: int = 16,
        send_timeout: float = 10.0,
        lease_seconds: float = _LEASE_SECONDS,
    ) -> None:
        """Send due deliveries until cancelled: again at once while there were some, else
        after ``interval`` seconds (the sender of ``jobdesk serve`` and ``jobdesk worker``).

        At most ``concurrency`` sends at once (one HTTP connection pool of that size).
        A failure to reach the database is logged and tried again after ``interval``.
        Safe beside other senders (see :meth:`deliver_webhooks`).
        """
        interval = validation.seconds("interval", interval, 3600.0)
        if interval <= 0:
            raise InvalidInput("interval", "must be more than 0 seconds")
        concurrency = validation.integer("concurrency", concurrency, 1, 256)
        lease_seconds = validation.seconds("lease_seconds", lease_seconds, 86400.0)
        send_timeout = validation.seconds("send_timeout", send_timeout, 3600.0)
        if lease_seconds <= send_timeout:
            raise InvalidInput("lease_seconds", "must be longer than send_timeout")
        task = asyncio.current_task()
        client = WebhookClient(connections=concurrency)
        try:
            while True:
                try:
                    sent = await self.deliver_webhooks(
                        client=client,
                        limit=limit,
                        concurrency=concurrency,
                        send_timeout=send_timeout,
                        lease_seconds=lease_seconds,
                    )
                except JobdeskError as exc:
                    _log.warning("sending webhook deliveries failed: %s", exc)
                    sent = 0
                # A cancellation that arrived mid-query may have been absorbed below (the
                # driver's pool); the task still knows it is being stopped.
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
                if not sent:
                    await asyncio.sleep(interval)
        finally:
            await client.aclose()

    async def _send_chain(
        self, client: WebhookClient, batch: _Batch, chain: list[tuple[Delivery, Webhook]]
    ) -> int:
        for index, (delivery, webhook) in enumerate(chain):
            sent = await self._send(client, batch, delivery, webhook)
            if sent is None:
                # The lease ran out while it waited: it and those after it are left as
                # claimed, unrecorded, due again when the lease ends.
                return index
            if not sent:
                # Those after it were claimed too: due again now, behind it in order.
                batch.outcomes.extend(
                    Outcome(
                        later.id,
                        state="pending",
                        delay=0.0,
                        last_status=later.last_status,
                        last_response=later.last_response,
                        counted=False,
                    )
                    for later, _ in chain[index + 1 :]
                )
                return index + 1
        return len(chain)

    async def _send(
        self, client: WebhookClient, batch: _Batch, delivery: Delivery, webhook: Webhook
    ) -> bool | None:
        """Send one delivery: whether it was delivered; None: not sent (the lease ran out)."""
        async with batch.gate:
            if batch.lease_running_out():
                return None
            status: int | None = None
            try:
                body = await self._payload(delivery, batch)
                addresses = await batch.check_endpoint(webhook)
                # The send's own moment, on this machine's clock: the receiver judges
                # replays by its clock, not by the database's.
                stamp = int(time.time())
                message_id = f"msg_{delivery.id}"
                headers = (
                    ("content-type", "application/json"),
                    ("webhook-id", message_id),
                    ("webhook-timestamp", str(stamp)),
                    ("webhook-signature", sign(batch.key(webhook), message_id, stamp, body)),
                )
                response = await client.post(
                    webhook.url, addresses, headers, body, within=batch.send_timeout
                )
                status = response.status
                answer = response.body.decode("utf-8", "replace")[:_RESPONSE_KEPT]
            except (SendFailed, InvalidInput, OSError) as exc:
                answer = f"{type(exc).__name__}: {exc}"[:_RESPONSE_KEPT]
            delivered = status is not None and 200 <= status < 300
            delay = next_delay(delivery.tries + 1)
            state = "delivered" if delivered else ("pending" if delay is not None else "dead")
            if not delivered:
                outcome = "dead" if delay is None else f"next try in {delay:.0f} s"
                batch.failures[(webhook.url, str(status or answer)[:200], outcome)] += 1
            batch.outcomes.append(
                Outcome(
                    delivery.id,
                    state=state,
                    delay=0.0 if delivered else (delay or 0.0),
                    last_status=status,
                    last_response=answer,
                )
            )
        return delivered

    async def _payload(self, delivery: Delivery, batch: _Batch) -> bytes:
        if delivery.subject == "group":
            return await self._group_payload(delivery)
        job = batch.jobs.get(delivery.job_id)
        document = {
            "type": delivery.event,
            "timestamp": wire.timestamp(delivery.at),
            "data": {
                "job_id": delivery.job_id,
                "status": delivery.status.value,
                "attempt": delivery.attempt,
                "at": wire.timestamp(delivery.at),
                "job": None if job is None else wire.encode_job(job),
            },
        }
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    async def _group_payload(self, delivery: Delivery) -> bytes:
        group = await self.store.get_group(delivery.job_id)
        document = {
            "type": delivery.event,
            "timestamp": wire.timestamp(delivery.at),
            "data": {
                "group_id": delivery.job_id,
                "status": delivery.status.value,
                "at": wire.timestamp(delivery.at),
                "group": None if group is None else wire.encode_group(group),
            },
        }
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
