"""JSON documents (inputs, results, error details) and error payloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobdesk import validation
from jobdesk.errors import InvalidInput

# Any text but U+0000 (PostgreSQL cannot store it) and lone surrogates (not valid
# Unicode), which jobdesk refuses.
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**18), 10**18)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children) | st.dictionaries(texts, children),
    max_leaves=20,
)


def refusal(call: Callable[[], object]) -> InvalidInput:
    """The InvalidInput that ``call`` raises."""
    with pytest.raises(InvalidInput) as caught:
        call()
    return caught.value


def document(value: object, max_bytes: int = 1000, max_depth: int = 32) -> str:
    return validation.json_document("input", value, max_bytes, max_depth)


def nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_document_is_serialised_compactly_without_escaping_text() -> None:
    assert document({"episode_ids": ["ep-1", "ép-2"], "n": 1.5}) == (
        '{"episode_ids":["ep-1","ép-2"],"n":1.5}'
    )


def test_a_tuple_is_serialised_as_a_list() -> None:
    assert document({"size": (640, 480)}) == '{"size":[640,480]}'


@pytest.mark.parametrize(
    "value", ["a\x00b", ["ok", {"k": "\x00"}], {"key\x00": 1}], ids=["text", "nested", "key"]
)
def test_the_nul_character_is_refused_anywhere_in_a_document(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        document(value, max_bytes=10**6)
    assert caught.value.field == "input"
    assert "U+0000" in caught.value.rule


def test_a_lone_surrogate_is_refused_as_invalid_unicode() -> None:
    with pytest.raises(InvalidInput) as caught:
        document({"text": "\ud800"}, max_bytes=10**6)
    assert (caught.value.field, caught.value.rule) == (
        "input",
        "must be valid Unicode (no lone surrogates)",
    )


@given(json_values)
def test_any_json_value_round_trips(value: Any) -> None:
    assert json.loads(document(value, max_bytes=10**7)) == value


def test_a_document_of_exactly_the_size_limit_is_accepted() -> None:
    assert document("x" * 8, max_bytes=10) == '"xxxxxxxx"'


def test_a_document_one_byte_over_the_size_limit_is_refused() -> None:
    error = refusal(lambda: document("x" * 9, max_bytes=10))
    assert error.field == "input"
    assert "10 bytes" in error.rule


@pytest.mark.parametrize(
    ("text", "encoded_bytes"),
    [("ééé", 8), ("名前だ", 11), ("🙂", 6), ("aé", 5)],
    ids=["accents", "kanji", "emoji", "mixed"],
)
def test_the_size_limit_counts_utf8_bytes_not_characters(text: str, encoded_bytes: int) -> None:
    assert document(text, max_bytes=encoded_bytes) == json.dumps(text, ensure_ascii=False)
    assert refusal(lambda: document(text, max_bytes=encoded_bytes - 1)).field == "input"


@given(texts, st.integers(2, 200))
def test_a_document_is_accepted_exactly_when_its_utf8_fits(text: str, max_bytes: int) -> None:
    size = len(json.dumps(text, ensure_ascii=False).encode())
    if size <= max_bytes:
        assert document(text, max_bytes=max_bytes)
    else:
        assert refusal(lambda: document(text, max_bytes=max_bytes)).field == "input"


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (1, 0),
        ([], 1),
        ({}, 1),
        ([1, "two"], 1),
        ([[1]], 2),
        ({"a": {"b": 1}}, 2),
        ({"a": [{"b": []}]}, 4),
        ([[], [[[]]]], 4),
    ],
)
def test_a_document_nested_up_to_the_depth_limit_is_accepted(value: object, depth: int) -> None:
    assert document(value, max_depth=max(depth, 1))
    if depth > 1:
        assert refusal(lambda: document(value, max_depth=depth - 1)).field == "input"


def test_a_100000_deep_list_is_refused_without_exhausting_the_stack() -> None:
    error = refusal(lambda: document(nested_lists(100_000)))
    assert error.field == "input"
    assert "32 levels" in error.rule


def test_a_100000_deep_object_is_refused_without_exhausting_the_stack() -> None:
    value: dict[str, Any] = {}
    for _ in range(100_000):
        value = {"a": value}
    assert refusal(lambda: document(value)).field == "input"


def test_a_document_that_contains_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert refusal(lambda: document(loop)).field == "input"


@pytest.mark.parametrize(
    "value",
    [
        object(),
        {"ids": {1, 2}},
        b"bytes",
        [datetime(2026, 3, 1, tzinfo=UTC)],
        float("nan"),
        {"score": float("inf")},
        [float("-inf")],
        10**5000,
    ],
    ids=["object", "set", "bytes", "datetime", "nan", "inf", "minus-inf", "huge-int"],
)
def test_a_value_json_cannot_represent_is_refused(value: object) -> None:
    error = refusal(lambda: document(value, max_bytes=10**6))
    assert error.field == "input"
    assert "JSON" in error.rule


@pytest.mark.parametrize(
    "value",
    [{1: "one"}, {None: 1}, {"ok": {2.5: "x"}}, [{("a", "b"): 1}], {True: 1}],
    ids=["int", "none", "nested-float", "tuple-in-list", "bool"],
)
def test_an_object_with_a_key_that_is_not_a_string_is_refused(value: object) -> None:
    error = refusal(lambda: document(value))
    assert error.field == "input"
    assert "keys" in error.rule


def test_the_refusal_names_the_field_it_was_given() -> None:
    error = refusal(lambda: validation.json_document("result", float("nan"), 100, 32))
    assert error.field == "result"


def test_an_error_message_becomes_a_payload() -> None:
    assert validation.error_payload("the GPU ran out of memory") == {
        "message": "the GPU ran out of memory"
    }


def test_an_exception_becomes_a_payload_coded_by_its_class() -> None:
    assert validation.error_payload(TimeoutError("took too long")) == {
        "message": "took too long",
        "code": "TimeoutError",
    }


def test_an_exception_without_a_message_is_described_by_its_class() -> None:
    assert validation.error_payload(KeyError()) == {"message": "KeyError", "code": "KeyError"}


def test_a_full_error_mapping_is_kept() -> None:
    error = {"message": "bad frame", "code": "decode", "details": {"frame": 12, "codec": ["h264"]}}
    assert validation.error_payload(error) == error


def test_missing_code_and_details_are_left_out() -> None:
    payload = validation.error_payload({"message": "bad frame", "code": None, "details": None})
    assert payload == {"message": "bad frame"}


def test_a_long_error_message_is_cut_to_1000_characters() -> None:
    payload = validation.error_payload("x" * 5000)
    assert payload["message"] == "x" * 1000


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("", "error.message"),
        ({}, "error.message"),
        ({"message": 5}, "error.message"),
        ({"message": ""}, "error.message"),
        ({"code": "oom"}, "error.message"),
        ({"message": "m", "code": 500}, "error.code"),
        ({"message": "m", "code": "c" * 129}, "error.code"),
        ({"message": "m", "details": {"when": datetime(2026, 3, 1)}}, "error.details"),
        ({"message": "m", "details": nested_lists(40)}, "error.details"),
        ({"message": "m", "details": "x" * (64 * 1024)}, "error.details"),
        ({"message": "m", "trace": "..."}, "error"),
        ({"message": "m", "Message": "M"}, "error"),
        ({"message": "m", 1: "one", "extra": 2}, "error"),
        ({"message": "m", 1: "one"}, "error"),
        (42, "error"),
        (["message"], "error"),
        (None, "error"),
    ],
    ids=[
        "empty-message",
        "empty-mapping",
        "message-not-text",
        "mapping-empty-message",
        "no-message",
        "code-not-text",
        "code-too-long",
        "details-not-json",
        "details-too-deep",
        "details-too-big",
        "unknown-key",
        "misspelt-key",
        "unknown-keys-of-mixed-types",
        "unknown-number-key",
        "number",
        "list",
        "none",
    ],
)
def test_a_bad_error_is_refused_naming_the_part_at_fault(value: object, field: str) -> None:
    assert refusal(lambda: validation.error_payload(value)).field == field


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"message": "bad \ud800"}, "error.message"),
        ({"message": "m", "code": "x\x00"}, "error.code"),
        ({"message": "m", "code": "\udfff"}, "error.code"),
    ],
    ids=["surrogate-message", "nul-code", "surrogate-code"],
)
def test_an_error_no_store_can_keep_is_refused(value: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validation.error_payload(value)
    assert caught.value.field == field


@pytest.mark.parametrize("text", ["nul \x00", "lone \ud800"], ids=["nul", "surrogate"])
def test_a_progress_message_no_store_can_keep_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validation.message(text)
    assert caught.value.field == "message"
