"""Job ids: 26 characters of Crockford base32, ordered by creation, unique across threads."""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobdesk import ids
from jobdesk.ids import CROCKFORD, JOB_ID_PATTERN, new_job_id


def milliseconds_of(job_id: str) -> int:
    value = 0
    for char in job_id:
        value = value * 32 + CROCKFORD.index(char)
    return value >> 80


def test_a_job_id_is_26_crockford_characters() -> None:
    job_id = new_job_id()
    assert len(job_id) == 26
    assert JOB_ID_PATTERN.fullmatch(job_id)
    assert set(job_id) <= set(CROCKFORD)


def test_a_job_id_starts_with_its_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    job_id = new_job_id()
    after = time.time_ns() // 1_000_000
    assert before <= milliseconds_of(job_id) <= after


def test_ids_are_strictly_increasing_over_10000_calls() -> None:
    made = [new_job_id() for _ in range(10_000)]
    assert all(JOB_ID_PATTERN.fullmatch(job_id) for job_id in made)
    assert all(earlier < later for earlier, later in itertools.pairwise(made))


def test_ids_made_on_several_threads_are_all_unique_and_each_thread_sees_them_grow() -> None:
    def make(count: int) -> list[str]:
        return [new_job_id() for _ in range(count)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(pool.map(make, [2_000] * 8))
    every = [job_id for batch in batches for job_id in batch]
    assert len(set(every)) == 16_000
    for batch in batches:
        assert batch == sorted(batch)
        assert len(set(batch)) == len(batch)


def test_ids_keep_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    before = new_job_id()
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: 0))
    after = [new_job_id() for _ in range(3)]
    assert before < after[0] < after[1] < after[2]


@given(st.integers(min_value=0, max_value=2**130 - 1))
def test_the_encoding_is_the_number_in_26_crockford_digits(value: int) -> None:
    encoded = ids.encode(value)
    assert len(encoded) == 26
    decoded = 0
    for char in encoded:
        decoded = decoded * 32 + CROCKFORD.index(char)
    assert decoded == value


def test_the_first_id_of_a_moment_sorts_before_every_id_made_from_it_on() -> None:
    at = datetime.now(UTC)
    bound = ids.first_id_at(at)
    assert milliseconds_of(bound) == int(at.timestamp() * 1000)
    assert bound <= new_job_id()


def test_a_forked_child_does_not_reuse_its_parents_random_bytes() -> None:
    new_job_id()  # the parent now holds random bytes for its next ids
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write_end, new_job_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    parent_id = new_job_id()
    # Ids made in one millisecond from the same bytes would share their 80 random bits.
    assert JOB_ID_PATTERN.fullmatch(child_id)
    assert child_id[10:] != parent_id[10:]
