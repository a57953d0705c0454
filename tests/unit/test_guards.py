"""One task checks the credentials of every open stream: what it ends, what it shares,
what it survives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from jobdesk.errors import StoreUnavailable, Unauthorized
from jobdesk.http.auth import Credential
from jobdesk.http.guards import Guards

EVERY = 0.05


class Token:
    """A credential's check that counts its calls and fails as told."""

    def __init__(self) -> None:
        self.calls = 0
        self.fails_with: Exception | None = None
        self.hangs = False

    async def check(self) -> None:
        self.calls += 1
        if self.hangs:
            await asyncio.sleep(3600)
        if self.fails_with is not None:
            raise self.fails_with

    def credential(self, key: str | None, expires_at: float | None = None) -> Credential:
        return Credential("user:alice", expires_at, self.check, key)


class Ends:
    """The end callbacks of some streams: who ended, and why."""

    def __init__(self) -> None:
        self.reasons: dict[int, list[str]] = {}
        self.first = asyncio.Event()

    def of(self, stream: int) -> Callable[[str, str], None]:
        def end(reason: str, detail: str) -> None:
            assert detail
            self.reasons.setdefault(stream, []).append(reason)
            self.first.set()

        return end


async def test_streams_of_one_token_share_one_check_a_round_and_end_together() -> None:
    guards, token, ends = Guards(), Token(), Ends()
    for stream in range(100):
        guards.watch(token.credential("tok-1"), EVERY, ends.of(stream))
    await asyncio.sleep(EVERY * 4.5)
    assert not ends.reasons
    # Watched together, the hundred are due together: a handful of checks, not hundreds.
    assert 1 <= token.calls <= 10
    token.fails_with = Unauthorized("the token was revoked")
    await asyncio.sleep(EVERY * 3)
    assert ends.reasons == {stream: ["unauthorized"] for stream in range(100)}
    await guards.close()


async def test_credentials_without_a_key_are_checked_one_by_one() -> None:
    guards, token, ends = Guards(), Token(), Ends()
    for stream in range(10):
        guards.watch(token.credential(None), EVERY, ends.of(stream))
    await asyncio.sleep(EVERY * 1.6)
    assert token.calls >= 10
    await guards.close()


async def test_a_closed_watch_is_never_checked_nor_ended() -> None:
    guards, token, ends = Guards(), Token(), Ends()
    watch = guards.watch(token.credential("tok-1"), EVERY, ends.of(0))
    watch.close()
    token.fails_with = Unauthorized("revoked")
    await asyncio.sleep(EVERY * 3)
    assert token.calls == 0
    assert not ends.reasons
    assert guards.watched == 0
    await guards.close()


async def test_an_expiry_ends_its_stream_at_that_moment_without_a_check() -> None:
    guards, token, ends = Guards(), Token(), Ends()
    expires_at = time.time() + 0.3
    guards.watch(token.credential("jwt", expires_at), 60.0, ends.of(0))
    guards.watch(token.credential("other"), 60.0, ends.of(1))
    await asyncio.wait_for(ends.first.wait(), 2)
    assert ends.reasons == {0: ["expired"]}
    assert expires_at <= time.time() < expires_at + 0.5
    assert token.calls == 0
    await guards.close()


async def test_a_store_that_is_away_keeps_the_streams_open() -> None:
    guards, token, ends = Guards(), Token(), Ends()
    token.fails_with = StoreUnavailable("the database is restarting")
    guards.watch(token.credential("tok-1"), EVERY, ends.of(0))
    await asyncio.sleep(EVERY * 4)
    assert token.calls >= 2  # asked again each period
    assert not ends.reasons
    token.fails_with = Unauthorized("revoked")
    await asyncio.sleep(EVERY * 3)
    assert ends.reasons == {0: ["unauthorized"]}
    await guards.close()


async def test_a_check_that_hangs_gives_up_after_a_period_and_the_others_go_on() -> None:
    guards, stuck, fine, ends = Guards(), Token(), Token(), Ends()
    stuck.hangs = True
    guards.watch(stuck.credential("stuck"), EVERY, ends.of(0))
    guards.watch(fine.credential("fine"), EVERY, ends.of(1))
    fine.fails_with = Unauthorized("revoked")
    await asyncio.sleep(EVERY * 6)
    assert ends.reasons == {1: ["unauthorized"]}  # the stuck check held it up one period
    assert stuck.calls >= 2  # and was asked again, not dropped
    await guards.close()


async def test_the_task_stops_with_no_stream_and_starts_with_the_next() -> None:
    guards, token, ends = Guards(), Token(), Ends()
    guards.watch(token.credential("tok-1"), EVERY, ends.of(0)).close()
    await asyncio.sleep(EVERY * 3)
    assert guards.watched == 0
    token.fails_with = Unauthorized("revoked")
    guards.watch(token.credential("tok-1"), EVERY, ends.of(1))
    await asyncio.sleep(EVERY * 3)
    assert ends.reasons == {1: ["unauthorized"]}
    await guards.close()


async def test_a_check_that_breaks_ends_its_stream_and_the_others_are_checked_on() -> None:
    guards, broken, fine, ends = Guards(), Token(), Token(), Ends()
    broken.fails_with = RuntimeError("a bug in the check")
    guards.watch(broken.credential("broken"), EVERY, ends.of(0))
    guards.watch(fine.credential("fine"), EVERY, ends.of(1))
    await asyncio.sleep(EVERY * 3)
    assert ends.reasons == {0: ["unauthorized"]}
    assert fine.calls >= 2
    await guards.close()
