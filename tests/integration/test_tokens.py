"""Worker and user tokens: issued once, stored hashed, verified, revoked, expired, typed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest

from jobdesk import JobDesk, JobStatus, Worker, WorkerTokenInfo
from jobdesk.errors import InvalidInput, JobNotFound, Unauthorized
from jobdesk.testing import ManualClock
from jobdesk.tokens import generate


async def test_a_worker_token_verifies_to_its_name_and_types(desk: JobDesk) -> None:
    token = await desk.create_worker_token("gpu-box-1", types=["extract", "render"])
    assert token.startswith("jdw_")
    worker = await desk.verify_worker_token(token)
    assert worker == Worker("gpu-box-1", frozenset({"extract", "render"}))
    anything = await desk.verify_worker_token(await desk.create_worker_token("cpu-box"))
    assert anything == Worker("cpu-box", None)
    one = await desk.verify_worker_token(await desk.create_worker_token("one", types="extract"))
    assert one.types == frozenset({"extract"})


async def test_each_token_is_new_and_secret(desk: JobDesk) -> None:
    first = await desk.create_worker_token("a")
    second = await desk.create_worker_token("b")
    assert first != second
    assert first[4:16] != second[4:16]


async def test_list_worker_tokens_never_exposes_secrets_or_hashes(
    desk: JobDesk, clock: ManualClock
) -> None:
    expires = clock() + timedelta(days=30)
    tokens = [
        await desk.create_worker_token("gpu-box-1", types=["extract"], expires_at=expires),
        await desk.create_worker_token("gpu-box-2"),
    ]
    listed = await desk.list_worker_tokens()
    assert {info.name for info in listed} == {"gpu-box-1", "gpu-box-2"}
    for info in listed:
        assert isinstance(info, WorkerTokenInfo)
        assert {field.name for field in dataclasses.fields(info)} == {
            "name",
            "types",
            "created_at",
            "expires_at",
            "revoked_at",
        }
        shown = repr(info) + str(dataclasses.asdict(info))
        for token in tokens:
            assert token not in shown
            assert token[4:] not in shown
            assert token[16:48] not in shown  # the secret part
    by_name = {info.name: info for info in listed}
    assert by_name["gpu-box-1"].types == frozenset({"extract"})
    assert by_name["gpu-box-1"].expires_at == expires
    assert by_name["gpu-box-2"].types is None
    assert by_name["gpu-box-2"].revoked_at is None


async def test_worker_tokens_are_listed_newest_first(desk: JobDesk, clock: ManualClock) -> None:
    for name in ("first", "second", "third"):
        await desk.create_worker_token(name)
        clock.advance(seconds=1)
    assert [info.name for info in await desk.list_worker_tokens()] == ["third", "second", "first"]


async def test_a_revoked_worker_token_is_unauthorized(desk: JobDesk, clock: ManualClock) -> None:
    token = await desk.create_worker_token("gpu-box-1")
    other = await desk.create_worker_token("gpu-box-2")
    assert await desk.revoke_worker_token("gpu-box-1") == 1
    with pytest.raises(Unauthorized):
        await desk.verify_worker_token(token)
    assert (await desk.verify_worker_token(other)).name == "gpu-box-2"
    assert await desk.revoke_worker_token("gpu-box-1") == 0
    assert await desk.revoke_worker_token("never-issued") == 0
    [info] = [info for info in await desk.list_worker_tokens() if info.name == "gpu-box-1"]
    assert info.revoked_at == clock()
    # The name is free again, and the new token works while the old one stays revoked.
    renewed = await desk.create_worker_token("gpu-box-1")
    assert (await desk.verify_worker_token(renewed)).name == "gpu-box-1"
    with pytest.raises(Unauthorized):
        await desk.verify_worker_token(token)


async def test_a_live_worker_token_name_is_unique(desk: JobDesk) -> None:
    await desk.create_worker_token("gpu-box-1")
    with pytest.raises(InvalidInput) as caught:
        await desk.create_worker_token("gpu-box-1", types=["extract"])
    assert caught.value.field == "name"
    assert len(await desk.list_worker_tokens()) == 1


async def test_an_expired_worker_token_is_unauthorized(desk: JobDesk, clock: ManualClock) -> None:
    token = await desk.create_worker_token("temp", expires_at=clock() + timedelta(hours=1))
    clock.advance(seconds=3599)
    assert (await desk.verify_worker_token(token)).name == "temp"
    clock.advance(seconds=1)
    with pytest.raises(Unauthorized):
        await desk.verify_worker_token(token)
    clock.advance(days=365)
    with pytest.raises(Unauthorized):
        await desk.verify_worker_token(token)


async def test_a_token_must_expire_in_the_future(desk: JobDesk, clock: ManualClock) -> None:
    for expires_at in (clock(), clock() - timedelta(seconds=1)):
        with pytest.raises(InvalidInput) as caught:
            await desk.create_worker_token("late", expires_at=expires_at)
        assert caught.value.field == "expires_at"
        with pytest.raises(InvalidInput) as caught:
            await desk.create_user_token("alice", expires_at=expires_at)
        assert caught.value.field == "expires_at"
    assert await desk.list_worker_tokens() == []


def swap_one_character(token: str, index: int) -> str:
    replacement = "A" if token[index] != "A" else "B"
    return token[:index] + replacement + token[index + 1 :]


MANGLINGS: dict[str, Callable[[str], str]] = {
    "empty": lambda token: "",
    "prefix only": lambda token: "jdw_",
    "truncated": lambda token: token[:-1],
    "extended": lambda token: token + "0",
    "key id typo": lambda token: swap_one_character(token, 5),
    "secret typo": lambda token: swap_one_character(token, 30),
    "checksum typo": lambda token: swap_one_character(token, len(token) - 1),
    "user prefix": lambda token: "jdu_" + token[4:],
    "no prefix": lambda token: token[4:],
    "bearer": lambda token: "Bearer " + token,
    "whitespace": lambda token: f" {token}\n",
    "upper case": lambda token: token.upper(),
    "punctuation": lambda token: token[:20] + "-" + token[21:],
    "non ascii": lambda token: token[:20] + "é" + token[21:],
    "sql": lambda token: token[:10] + "' OR 1=1 --",
}


async def test_a_malformed_or_mistyped_worker_token_is_unauthorized(desk: JobDesk) -> None:
    token = await desk.create_worker_token("gpu-box-1")
    for mangling, mangle in MANGLINGS.items():
        mangled = mangle(token)
        assert mangled != token, mangling
        with pytest.raises(Unauthorized):
            await desk.verify_worker_token(mangled)
    assert (await desk.verify_worker_token(token)).name == "gpu-box-1"


async def test_a_token_that_is_not_a_string_is_unauthorized(desk: JobDesk) -> None:
    for value in (None, 42, b"jdw_", ["jdw_"], {"token": "jdw_"}):
        with pytest.raises(Unauthorized):
            await desk.verify_worker_token(value)  # type: ignore[arg-type]
        with pytest.raises(Unauthorized):
            await desk.verify_user_token(value)  # type: ignore[arg-type]


async def test_a_well_formed_token_that_was_never_issued_is_unauthorized(desk: JobDesk) -> None:
    await desk.create_worker_token("gpu-box-1")
    await desk.create_user_token("alice")
    worker_token, _ = generate("worker")
    user_token, _ = generate("user")
    with pytest.raises(Unauthorized):
        await desk.verify_worker_token(worker_token)
    with pytest.raises(Unauthorized):
        await desk.verify_user_token(user_token)


async def test_worker_and_user_tokens_are_not_interchangeable(desk: JobDesk) -> None:
    worker_token = await desk.create_worker_token("gpu-box-1")
    user_token = await desk.create_user_token("alice")
    with pytest.raises(Unauthorized):
        await desk.verify_user_token(worker_token)
    with pytest.raises(Unauthorized):
        await desk.verify_worker_token(user_token)


async def test_a_type_limited_worker_sees_and_claims_only_its_types(
    desk: JobDesk, worker: Worker
) -> None:
    limited = await desk.verify_worker_token(
        await desk.create_worker_token("extractor", types=["extract"])
    )
    render = await desk.create_job("alice", "render", {}, priority=9)
    extracts = [await desk.create_job("alice", "extract", {"n": n}) for n in range(2)]

    assert [job.id for job in await desk.get_pending_jobs(limited)] == [j.id for j in extracts]
    assert await desk.get_pending_jobs(limited, types="render") == []
    assert await desk.get_pending_jobs(limited, types=["render", "other"]) == []
    assert await desk.claim_jobs(limited, types=["render"]) == []
    with pytest.raises(JobNotFound):
        await desk.start_job(limited, render.id)

    claimed = await desk.claim_jobs(limited, limit=10)
    assert [job.id for job in claimed] == [job.id for job in extracts]
    assert (await desk.get_job_status(render.id, "alice")).status is JobStatus.PENDING
    # A worker for every type still sees the render job.
    assert [job.id for job in await desk.get_pending_jobs(worker)] == [render.id]


async def test_a_type_limited_worker_cannot_report_on_other_types(
    desk: JobDesk, worker: Worker
) -> None:
    limited = await desk.verify_worker_token(
        await desk.create_worker_token("extractor", types=["extract"])
    )
    render = await desk.create_job("alice", "render", {})
    [claimed] = await desk.claim_jobs(worker)
    for call in (
        lambda: desk.heartbeat_job(limited, render.id, attempt=claimed.attempt),
        lambda: desk.complete_job(limited, render.id, "x", attempt=claimed.attempt),
    ):
        with pytest.raises(JobNotFound):
            await call()
    assert await desk.get_job_status(render.id, "alice") == claimed


async def test_user_tokens_verify_to_their_user_until_revoked(
    desk: JobDesk, clock: ManualClock
) -> None:
    alice_tokens = [await desk.create_user_token("alice") for _ in range(2)]
    bob_token = await desk.create_user_token("bob")
    assert all(token.startswith("jdu_") for token in alice_tokens)
    assert [await desk.verify_user_token(token) for token in alice_tokens] == ["alice", "alice"]
    assert await desk.verify_user_token(bob_token) == "bob"

    assert await desk.revoke_user_tokens("alice") == 2
    for token in alice_tokens:
        with pytest.raises(Unauthorized):
            await desk.verify_user_token(token)
    assert await desk.verify_user_token(bob_token) == "bob"
    assert await desk.revoke_user_tokens("alice") == 0
    fresh = await desk.create_user_token("alice")
    assert await desk.verify_user_token(fresh) == "alice"


async def test_an_expired_user_token_is_unauthorized(desk: JobDesk, clock: ManualClock) -> None:
    token = await desk.create_user_token("alice", expires_at=clock() + timedelta(minutes=5))
    assert await desk.verify_user_token(token) == "alice"
    clock.advance(minutes=5)
    with pytest.raises(Unauthorized):
        await desk.verify_user_token(token)


async def test_user_tokens_do_not_appear_among_worker_tokens(desk: JobDesk) -> None:
    await desk.create_user_token("alice")
    assert await desk.list_worker_tokens() == []
    assert await desk.revoke_worker_token("alice") == 0


async def test_a_worker_made_by_hand_is_refused(desk: JobDesk) -> None:
    await desk.create_job("alice", "demo", {})
    verified = await desk.verify_worker_token(await desk.create_worker_token("gpu-1", types="demo"))
    forged = [
        Worker("gpu-1", frozenset({"demo"})),
        Worker("gpu-1", None, verified.proof),  # a real proof, stretched to every type
        Worker("gpu-2", frozenset({"demo"}), verified.proof),
    ]
    for worker in forged:
        with pytest.raises(Unauthorized):
            await desk.claim_jobs(worker)
    assert len(await desk.claim_jobs(verified)) == 1
