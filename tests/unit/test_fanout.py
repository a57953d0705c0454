"""A follower of a feed: written at once while its client reads, a short backlog while
it does not, then the state as it stands; never holding up the task that writes."""

from __future__ import annotations

import asyncio

from starlette.types import Message

from jobdesk.http.fanout import BACKLOG, Follower


class Client:
    """An ASGI send whose connection can stop taking writes (as a server's does when
    its client does not read)."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.reading = asyncio.Event()
        self.reading.set()

    async def send(self, message: Message) -> None:
        await self.reading.wait()
        self.received.append(message["body"])


async def test_a_reading_client_is_written_at_once_without_a_task() -> None:
    client = Client()
    follower = Follower(client.send, lambda: b"now")
    tasks = len(asyncio.all_tasks())
    follower.write(b"a")
    follower.write(b"b")
    assert client.received == [b"a", b"b"]  # before any await: no task was woken
    assert len(asyncio.all_tasks()) == tasks
    follower.end()
    assert follower.done.done()


async def test_a_client_that_stops_reading_keeps_a_backlog_then_gets_the_state_as_it_stands() -> (
    None
):
    client = Client()
    state = [b"state-0"]
    follower = Follower(client.send, lambda: state[0])
    client.reading.clear()
    follower.write(b"first")  # waits for the client
    for n in range(BACKLOG):
        follower.write(f"kept-{n}".encode())
    await asyncio.sleep(0)
    assert client.received == []
    client.reading.set()
    await asyncio.sleep(0.01)
    assert client.received == [b"first", *(f"kept-{n}".encode() for n in range(BACKLOG))]

    client.reading.clear()
    follower.write(b"waits")
    for n in range(BACKLOG + 1):  # one more than it keeps: the backlog is dropped
        follower.write(f"dropped-{n}".encode())
    state[0] = b"state-now"
    follower.write(b"final")
    follower.end()
    assert not follower.done.done()  # what was written is not sent yet
    client.reading.set()
    async with asyncio.timeout(5):
        await follower.done
    assert client.received[-2:] == [b"waits", b"state-now"]
    assert not any(chunk.startswith(b"dropped") for chunk in client.received)


async def test_a_stuck_client_does_not_hold_up_the_others_and_can_be_cancelled() -> None:
    stuck, reading = Client(), Client()
    stuck.reading.clear()
    followers = [Follower(stuck.send, lambda: b""), Follower(reading.send, lambda: b"")]
    for n in range(3 * BACKLOG):
        for follower in followers:
            follower.write(str(n).encode())
    assert len(reading.received) == 3 * BACKLOG
    followers[0].cancel()
    assert followers[0].done.done()
    await asyncio.sleep(0)
    stuck.reading.set()
    await asyncio.sleep(0.01)
    assert stuck.received == []  # the abandoned write never completes
