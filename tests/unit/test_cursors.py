"""Signed pagination cursors: they round-trip for their user and nothing else gets through."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobdesk import cursors
from jobdesk.errors import InvalidInput
from jobdesk.ids import new_job_id

SECRET = b"the-deployment-secret"
LAST_ID = "01JNQ0000000000000000000AB"
CURSOR = cursors.encode(SECRET, "user-1", LAST_ID)
URLSAFE = string.ascii_letters + string.digits + "-_"


def unwrap(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def wrap(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def refused(secret: bytes, user_id: str, cursor: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        cursors.decode(secret, user_id, cursor)
    assert caught.value.field == "cursor"
    return caught.value


@pytest.mark.parametrize("last_id", [LAST_ID, new_job_id(), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"])
@pytest.mark.parametrize("user_id", ["user-1", "名前", "u" * 128])
def test_a_cursor_round_trips_for_its_user(last_id: str, user_id: str) -> None:
    cursor = cursors.encode(SECRET, user_id, last_id)
    assert cursors.decode(SECRET, user_id, cursor) == last_id


def test_a_cursor_is_short_and_safe_in_a_url() -> None:
    assert len(CURSOR) <= 64
    assert set(CURSOR) <= set(URLSAFE)


@pytest.mark.parametrize("other_user", ["user-2", "user-10", "user-", "User-1", "user-1 "])
def test_a_cursor_issued_to_one_user_is_refused_for_another(other_user: str) -> None:
    assert "another user" in refused(SECRET, other_user, CURSOR).rule


def test_a_cursor_signed_with_another_secret_is_refused() -> None:
    refused(b"another-deployment", "user-1", CURSOR)


@given(position=st.integers(0, 37), flip=st.integers(1, 255))
def test_any_tampered_byte_is_refused(position: int, flip: int) -> None:
    raw = bytearray(unwrap(CURSOR))
    raw[position] ^= flip
    refused(SECRET, "user-1", wrap(bytes(raw)))


def test_the_job_id_cannot_be_swapped_under_the_same_signature() -> None:
    raw = unwrap(CURSOR)
    other = unwrap(cursors.encode(SECRET, "user-1", new_job_id()))
    refused(SECRET, "user-1", wrap(other[:26] + raw[26:]))


def outcome(cursor: str) -> str:
    """The job id ``cursor`` leads to, or which field the refusal named."""
    try:
        return cursors.decode(SECRET, "user-1", cursor)
    except InvalidInput as error:
        return f"refused: {error.field}"


@given(position=st.integers(0, len(CURSOR) - 1), replacement=st.sampled_from(URLSAFE))
def test_an_edited_character_never_leads_to_another_job(position: int, replacement: str) -> None:
    edited = CURSOR[:position] + replacement + CURSOR[position + 1 :]
    # Only the two unused low bits of the last base64 character can change harmlessly.
    assert outcome(edited) in {LAST_ID, "refused: cursor"}


@given(st.text(max_size=100))
def test_any_text_is_refused_as_invalid_input(garbage: str) -> None:
    refused(SECRET, "user-1", garbage)


@given(st.text(alphabet=URLSAFE + "=", max_size=70))
def test_any_base64_looking_text_is_refused_as_invalid_input(garbage: str) -> None:
    refused(SECRET, "user-1", garbage)


@given(st.binary(min_size=38, max_size=38))
def test_well_formed_base64_of_random_bytes_is_refused(raw: bytes) -> None:
    refused(SECRET, "user-1", wrap(raw))


@pytest.mark.parametrize(
    "cursor",
    [None, 42, CURSOR.encode(), [CURSOR], "", CURSOR + "A" * 20, CURSOR[:-4], "=" * 60, "é" * 51],
    ids=["none", "number", "bytes", "list", "empty", "too-long", "short", "padding", "non-ascii"],
)
def test_a_malformed_cursor_is_refused(cursor: object) -> None:
    refused(SECRET, "user-1", cursor)


def test_a_signed_cursor_that_does_not_hold_a_job_id_is_refused() -> None:
    refused(SECRET, "user-1", cursors.encode(SECRET, "user-1", "x" * 26))


def test_a_cursor_whose_id_is_not_text_is_refused() -> None:
    refused(SECRET, "user-1", wrap(b"\xff" * 26 + unwrap(CURSOR)[26:]))
