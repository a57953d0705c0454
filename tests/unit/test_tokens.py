"""Token format: prefix per kind, checksum refusing typos without a store, hash comparison."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobdesk import tokens
from jobdesk.errors import Unauthorized

WORKER_TOKEN, WORKER_PARSED = tokens.generate("worker")
USER_TOKEN, USER_PARSED = tokens.generate("user")
BASE62 = string.digits + string.ascii_letters
ISSUED: list[tuple[str, tokens.TokenKind]] = [(WORKER_TOKEN, "worker"), (USER_TOKEN, "user")]


@pytest.mark.parametrize(
    ("kind", "prefix"), [("worker", "jdw_"), ("user", "jdu_"), ("admin", "jda_")]
)
def test_a_token_starts_with_the_prefix_of_its_kind(kind: tokens.TokenKind, prefix: str) -> None:
    token, parsed = tokens.generate(kind)
    assert token.startswith(prefix)
    assert len(token) == tokens.TOKEN_LENGTH == 54
    assert set(token[4:]) <= set(BASE62)
    assert parsed.kind == kind


@pytest.mark.parametrize("kind", ["worker", "user", "admin"])
def test_a_generated_token_parses_back_to_what_the_store_keeps(kind: tokens.TokenKind) -> None:
    token, kept = tokens.generate(kind)
    assert tokens.parse(token, kind) == kept
    assert kept.key_id == token[4:16]
    assert kept.secret_hash == hashlib.sha256(token.encode()).digest() == tokens.hash_token(token)


def test_every_generated_token_is_new() -> None:
    generated = {tokens.generate("worker")[0] for _ in range(200)}
    assert len(generated) == 200
    assert len({token[4:16] for token in generated}) == 200


def test_a_user_token_is_refused_as_a_worker_token() -> None:
    with pytest.raises(Unauthorized, match="jdw_"):
        tokens.parse(USER_TOKEN, "worker")


def test_a_worker_token_is_refused_as_a_user_token() -> None:
    with pytest.raises(Unauthorized, match="jdu_"):
        tokens.parse(WORKER_TOKEN, "user")


@pytest.mark.parametrize("token", [None, 42, WORKER_TOKEN.encode(), ["jdw_"]])
def test_something_that_is_not_a_string_is_refused(token: object) -> None:
    with pytest.raises(Unauthorized):
        tokens.parse(token, "worker")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "jdw_",
        WORKER_TOKEN[:-1],
        WORKER_TOKEN[:20],
        WORKER_TOKEN + "a",
        WORKER_TOKEN + WORKER_TOKEN[-1],
        WORKER_TOKEN + " ",
        " " + WORKER_TOKEN,
        WORKER_TOKEN.upper(),
        WORKER_TOKEN[:4] + WORKER_TOKEN[5:] + WORKER_TOKEN[4],
    ],
    ids=[
        "empty",
        "prefix-only",
        "one-short",
        "truncated",
        "one-long",
        "last-char-doubled",
        "trailing-space",
        "leading-space",
        "upper-cased",
        "rotated",
    ],
)
def test_a_truncated_extended_or_mangled_token_is_refused(token: str) -> None:
    with pytest.raises(Unauthorized):
        tokens.parse(token, "worker")


@given(position=st.integers(0, tokens.TOKEN_LENGTH - 1), replacement=st.characters())
def test_any_single_character_change_is_refused_without_a_store(
    position: int, replacement: str
) -> None:
    for token, kind in ISSUED:
        if token[position] == replacement:
            continue
        changed = token[:position] + replacement + token[position + 1 :]
        with pytest.raises(Unauthorized):
            tokens.parse(changed, kind)


@given(position=st.integers(4, tokens.TOKEN_LENGTH - 2))
def test_swapping_two_neighbouring_characters_is_refused(position: int) -> None:
    token = WORKER_TOKEN
    swapped = token[:position] + token[position + 1] + token[position] + token[position + 2 :]
    if swapped != token:
        with pytest.raises(Unauthorized):
            tokens.parse(swapped, "worker")
    else:
        assert tokens.parse(swapped, "worker") == WORKER_PARSED


def test_the_stored_hash_matches_its_own_token() -> None:
    assert tokens.matches(WORKER_PARSED, WORKER_PARSED.secret_hash) is True


def test_another_tokens_hash_does_not_match() -> None:
    assert tokens.matches(WORKER_PARSED, USER_PARSED.secret_hash) is False


def test_a_missing_record_never_matches() -> None:
    assert tokens.matches(WORKER_PARSED, None) is False


@pytest.mark.parametrize("stored", [b"", b"\0" * 32, WORKER_PARSED.secret_hash[:16]])
def test_a_hash_that_differs_in_value_or_length_does_not_match(stored: bytes) -> None:
    assert tokens.matches(WORKER_PARSED, stored) is False
