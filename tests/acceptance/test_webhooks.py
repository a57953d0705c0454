"""Webhooks end to end, on each store: the outbox written with the transition, delivered
signed to a real receiver (the documented FastAPI example), in order per job, retried,
dead, redelivered, and at least once across a sender that died."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from examples.webhook_receiver import create_receiver

from jobdesk import JobDesk, JobSpec, Worker
from jobdesk.errors import InvalidInput
from jobdesk.testing import ManualClock
from jobdesk.webhooks import BACKOFF_SECONDS, Outcome, new_secret
from tests.acceptance.conftest import MakeApp, bearer, running, served
from tests.conftest import OpenDesk

SECRET = new_secret()


@dataclass
class Receiver:
    """The example receiver, served; ``failing`` makes it answer 500, ``delay`` slow."""

    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    failing: bool = False
    #: seconds before each answer
    delay: float = 0.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver("")

    async def handle(event: dict[str, Any]) -> None:
        await asyncio.sleep(state.delay)
        if state.failing:
            raise RuntimeError("the receiver is down")
        state.events.append(event)

    app = create_receiver(SECRET, handle)
    async with served(app) as url:
        state.url = f"{url}/jobdesk-webhook"
        yield state


async def hook(desk: JobDesk, receiver: Receiver, **owner: Any) -> None:
    await desk.set_webhook(
        receiver.url, secret=SECRET, allow_http=True, allow_private=True, **owner
    )


async def finish(desk: JobDesk, worker: Worker, job_id: str) -> None:
    job = await desk.start_job(worker, job_id)
    await desk.complete_job(worker, job.id, {"ok": True}, attempt=job.attempt)


async def test_transitions_are_delivered_signed_in_order(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, user_id="alice")
    job = await desk.create_job("alice", "extract", {})
    await finish(desk, worker, job.id)
    await desk.create_job("bob", "extract", {})  # no webhook of bob's: nothing to send
    assert await desk.deliver_webhooks() == 3
    assert [event["type"] for event in receiver.events] == [
        "job.pending",
        "job.processing",
        "job.completed",
    ]
    last = receiver.events[-1]["data"]
    assert (last["job_id"], last["status"], last["job"]["result"]) == (
        job.id,
        "completed",
        {"ok": True},
    )
    delivered = await desk.get_webhook_deliveries(state="delivered")
    assert len(delivered) == 3
    assert all(d.last_status == 200 and d.tries == 1 for d in delivered)
    assert await desk.deliver_webhooks() == 0


async def test_nothing_reaches_the_outbox_without_a_webhook(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    before = await desk.create_job("alice", "extract", {})
    await finish(desk, worker, before.id)
    await hook(desk, receiver, project_id="book")
    await desk.create_job("alice", "extract", {})  # not in the project
    group = await desk.create_group(
        "alice", [JobSpec("extract", {"n": n}) for n in range(3)], project_id="book"
    )
    assert group.size == 3
    assert await desk.deliver_webhooks() == 3
    assert {event["data"]["job"]["project_id"] for event in receiver.events} == {"book"}
    [webhook] = await desk.get_webhooks()
    assert await desk.remove_webhook(webhook.id)
    await desk.create_job("alice", "extract", {}, "book")
    assert await desk.get_webhook_deliveries() == []


async def test_a_failing_receiver_gets_retries_in_order_then_the_rest(
    desk: JobDesk, worker: Worker, receiver: Receiver, clock: ManualClock
) -> None:
    await hook(desk, receiver, user_id="alice")
    job = await desk.create_job("alice", "extract", {})
    await finish(desk, worker, job.id)
    receiver.failing = True
    assert await desk.deliver_webhooks() == 1  # the job's first fails: the rest wait
    pending = await desk.get_webhook_deliveries(state="pending")
    assert [(d.status.value, d.tries, d.last_status) for d in reversed(pending)] == [
        ("pending", 1, 500),
        ("processing", 0, None),
        ("completed", 0, None),
    ]
    assert await desk.deliver_webhooks() == 0  # backing off, and the rest behind it
    receiver.failing = False
    clock.advance(BACKOFF_SECONDS[0])
    assert await desk.deliver_webhooks() == 3
    assert [event["type"] for event in receiver.events] == [
        "job.pending",
        "job.processing",
        "job.completed",
    ]


async def test_a_delivery_dies_after_a_day_of_retries_and_can_be_redelivered(
    desk: JobDesk, receiver: Receiver, clock: ManualClock
) -> None:
    await hook(desk, receiver, user_id="alice")
    await desk.create_job("alice", "extract", {})
    receiver.failing = True
    for delay in (*BACKOFF_SECONDS, 0):
        assert await desk.deliver_webhooks() == 1
        clock.advance(delay)
    assert sum(BACKOFF_SECONDS) > 24 * 3600
    [dead] = await desk.get_webhook_deliveries(state="dead")
    assert (dead.tries, dead.last_status) == (len(BACKOFF_SECONDS) + 1, 500)
    assert "Internal Server Error" in (dead.last_response or "")
    assert await desk.deliver_webhooks() == 0
    receiver.failing = False
    assert await desk.redeliver_webhook(dead.id)
    assert await desk.deliver_webhooks() == 1
    assert [event["type"] for event in receiver.events] == ["job.pending"]


async def test_a_sender_that_dies_leaves_its_deliveries_to_the_next(
    desk: JobDesk, receiver: Receiver, clock: ManualClock
) -> None:
    await hook(desk, receiver, user_id="alice")
    await desk.create_job("alice", "extract", {})
    claimed = await desk.store.claim_deliveries(10, 60.0)  # a sender claims, then is killed
    assert len(claimed) == 1
    assert await desk.deliver_webhooks() == 0  # still its own for the lease
    clock.advance(61)
    assert await desk.deliver_webhooks() == 1
    [delivered] = await desk.get_webhook_deliveries(state="delivered")
    # Sent again (say the killed sender had sent it after all): the receiver dedupes.
    assert await desk.redeliver_webhook(delivered.id)
    assert await desk.deliver_webhooks() == 1
    assert len(receiver.events) == 1


@pytest.mark.parametrize(
    ("url", "options", "field"),
    [
        ("http://example.com/hook", {"user_id": "alice"}, "url"),
        ("https://127.0.0.1/hook", {"user_id": "alice"}, "url"),
        ("https://localhost/hook", {"user_id": "alice"}, "url"),
        ("https://10.1.2.3/hook", {"user_id": "alice"}, "url"),
        ("https://169.254.169.254/latest", {"user_id": "alice"}, "url"),
        ("https://[::1]/hook", {"user_id": "alice"}, "url"),
        ("https://user:pw@example.com/hook", {"user_id": "alice"}, "url"),
        ("https://93.184.215.14/hook", {"user_id": "alice", "secret": "whsec_c2hvcnQ="}, "secret"),
        ("https://93.184.215.14/hook", {"user_id": "alice", "secret": "hunter2"}, "secret"),
        ("https://93.184.215.14/hook", {}, "user_id"),
        ("https://93.184.215.14/hook", {"user_id": "a", "project_id": "b"}, "user_id"),
        ("https://93.184.215.14/hook", {"user_id": "alice", "events": ["job.done"]}, "events"),
    ],
)
async def test_bad_webhooks_are_refused_naming_the_field(
    desk: JobDesk, url: str, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await desk.set_webhook(url, **options)
    assert caught.value.field == field
    assert await desk.get_webhooks() == []


async def test_a_public_https_endpoint_is_accepted_with_a_made_secret(desk: JobDesk) -> None:
    webhook = await desk.set_webhook(
        "https://93.184.215.14/hook", project_id="book", events=["job.completed"]
    )
    assert webhook.secret.startswith("whsec_")
    assert {status.value for status in webhook.statuses} == {"completed"}
    again = await desk.set_webhook("https://93.184.215.14/other", project_id="book")
    assert (again.id, again.url) == (webhook.id, "https://93.184.215.14/other")
    assert len(await desk.get_webhooks()) == 1


async def test_serve_sends_by_itself_and_operators_see_and_redeliver(
    desk: JobDesk, make_app: MakeApp, receiver: Receiver
) -> None:
    admin = bearer(await desk.create_admin_token("ops"))
    app = make_app(webhook_interval_seconds=0.05)
    async with running(app) as client:
        refused = await client.put(
            "/api/v1/admin/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "user_id": "alice"},
            headers=admin,
        )
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "url"
        response = await client.put(
            "/api/v1/admin/webhooks",
            json={
                "url": receiver.url,
                "user_id": "alice",
                "secret": SECRET,
                "events": ["job.pending"],
                "allow_http": True,
                "allow_private": True,
            },
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert response.json()["secret"] == SECRET
        listed = (await client.get("/api/v1/admin/webhooks", headers=admin)).json()
        assert [(item["user_id"], item["secret"]) for item in listed] == [("alice", None)]
        user = bearer(await desk.create_user_token("alice"))
        assert (
            await client.post("/api/v1/jobs", json={"type": "x", "input": 1}, headers=user)
        ).status_code == 201
        async with asyncio.timeout(10):
            # The server's own sender, not this request, sends it (and then records it).
            while not (await desk.get_webhook_deliveries(state="delivered")):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert len(receiver.events) == 1
        deliveries = (
            await client.get(
                "/api/v1/admin/webhooks/deliveries", params={"state": "delivered"}, headers=admin
            )
        ).json()
        assert [(d["event"], d["last_status"]) for d in deliveries] == [("job.pending", 200)]
        again = await client.post(
            f"/api/v1/admin/webhooks/deliveries/{deliveries[0]['id']}/redeliver", headers=admin
        )
        assert again.status_code == 204
        async with asyncio.timeout(10):
            while not (await desk.get_webhook_deliveries(state="delivered")):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        [resent] = await desk.get_webhook_deliveries(state="delivered")
        assert resent.tries == 1  # sent again after the redeliver reset it
        missing = await client.post(
            "/api/v1/admin/webhooks/deliveries/999999/redeliver", headers=admin
        )
        assert missing.status_code == 404
        user_try = await client.get("/api/v1/admin/webhooks", headers=user)
        assert user_try.status_code == 401
        removed = await client.delete(f"/api/v1/admin/webhooks/{listed[0]['id']}", headers=admin)
        assert removed.status_code == 204
    assert len(receiver.events) == 1  # the redelivery was deduplicated by webhook-id


async def test_a_running_sender_keeps_each_job_s_events_in_order_across_its_batches(
    desk: JobDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, user_id="alice")
    jobs = [await desk.create_job("alice", "extract", {"n": n}) for n in range(12)]
    for job in jobs:
        await finish(desk, worker, job.id)
    # Batches of 5 split the jobs' three events between batches: a job's later event
    # must wait for its earlier ones, claimed by an earlier batch.
    sender = asyncio.create_task(desk.send_webhooks(interval=0.02, limit=5, concurrency=4))
    try:
        async with asyncio.timeout(30):
            while await desk.get_webhook_deliveries(state="pending", limit=1):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
    assert len(receiver.events) == 3 * len(jobs)
    for job in jobs:
        mine = [e["type"] for e in receiver.events if e["data"]["job_id"] == job.id]
        assert mine == ["job.pending", "job.processing", "job.completed"]
    delivered = await desk.get_webhook_deliveries(state="delivered", limit=1000)
    assert len(delivered) == 3 * len(jobs)
    assert all(d.tries == 1 for d in delivered)


async def test_a_send_that_could_outlast_its_lease_is_not_begun(
    desk: JobDesk, receiver: Receiver, clock: ManualClock
) -> None:
    await hook(desk, receiver, user_id="alice")
    first = await desk.create_job("alice", "extract", {})
    second = await desk.create_job("alice", "extract", {})
    receiver.delay = 0.4
    # One send at a time, each answered in 0.4 s, under a 1 s lease: the second would be
    # begun 0.4 s in and could end 0.7 s later, after the lease (another sender's by then).
    sent = await desk.deliver_webhooks(concurrency=1, send_timeout=0.7, lease_seconds=1.0)
    assert sent == 1
    assert [e["data"]["job_id"] for e in receiver.events] == [first.id]
    [waiting] = await desk.get_webhook_deliveries(state="pending")
    assert (waiting.job_id, waiting.tries, waiting.last_status) == (second.id, 0, None)
    receiver.delay = 0.0
    assert await desk.deliver_webhooks() == 0  # still claimed: due when the lease ends
    clock.advance(1.0)
    assert await desk.deliver_webhooks() == 1
    assert [e["data"]["job_id"] for e in receiver.events] == [first.id, second.id]


async def test_claims_at_once_never_split_one_job_s_deliveries(
    desk: JobDesk, open_desk: OpenDesk, worker: Worker, receiver: Receiver
) -> None:
    await hook(desk, receiver, user_id="alice")
    await desk.set_user_limits("alice", max_running=100)
    async with open_desk() as other, open_desk() as third:
        for _ in range(15):
            job = await desk.create_job("alice", "extract", {})
            await desk.start_job(worker, job.id)  # two deliveries: pending, processing
            # Senders claiming one delivery each at the same moment: the job's second is
            # not due while its first is claimed, whoever claimed it.
            claims = await asyncio.gather(
                *(
                    sender.store.claim_deliveries(1, 60.0)
                    for sender in (desk, other, third, desk, other, third)
                )
            )
            taken = [delivery.status.value for claim in claims for delivery, _ in claim]
            assert taken == ["pending"], taken
            await desk.store.record_deliveries(
                [Outcome(d.id, "delivered", 0.0, 200, "") for claim in claims for d, _ in claim]
            )
            [rest] = await desk.store.claim_deliveries(10, 60.0)
            await desk.store.record_deliveries([Outcome(rest[0].id, "delivered", 0.0, 200, "")])
