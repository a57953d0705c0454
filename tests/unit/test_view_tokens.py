"""View tokens: a grant and its signature, checked without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdesk.errors import Unauthorized
from jobdesk.view_tokens import VIEW_PREFIX, ViewGrant, sign_view, verify_view

KEY = b"k" * 32
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRANT = ViewGrant("alice", "group", "01J0000000000000000000000A", NOW + timedelta(minutes=5))


def test_a_token_carries_its_grant_until_it_expires() -> None:
    token = sign_view(KEY, GRANT)
    assert token.startswith(VIEW_PREFIX)
    assert token.count(".") == 0  # never mistaken for a JWT
    assert verify_view(KEY, token, NOW) == GRANT
    assert GRANT.allows("group", GRANT.target_id)
    assert not GRANT.allows("job", GRANT.target_id)
    assert not GRANT.allows("group", "01J0000000000000000000000B")
    with pytest.raises(Unauthorized, match="expired"):
        verify_view(KEY, token, GRANT.expires_at)


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        lambda token: token.replace(VIEW_PREFIX, VIEW_PREFIX + "x"),
        lambda token: token.split("~")[0],
        lambda token: "jdu_" + token[4:],
        lambda token: token + "~extra",
        lambda token: VIEW_PREFIX + "!!!~!!!",
        lambda token: 42,
        lambda token: token * 10,
    ],
)
def test_an_altered_token_is_refused(forge: object) -> None:
    token = sign_view(KEY, GRANT)
    with pytest.raises(Unauthorized):
        verify_view(KEY, forge(token), NOW)  # type: ignore[operator]


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(Unauthorized, match="invalid"):
        verify_view(b"other" * 8, sign_view(KEY, GRANT), NOW)


def test_a_grant_for_another_user_cannot_be_made_from_a_token() -> None:
    token = sign_view(KEY, GRANT)
    body, mac = token[len(VIEW_PREFIX) :].split("~")
    other = sign_view(KEY, ViewGrant("mallory", "group", GRANT.target_id, GRANT.expires_at))
    other_body = other[len(VIEW_PREFIX) :].split("~")[0]
    with pytest.raises(Unauthorized):
        verify_view(KEY, f"{VIEW_PREFIX}{other_body}~{mac}", NOW)
    assert body != other_body
