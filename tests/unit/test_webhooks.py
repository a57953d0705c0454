"""The webhook rules: signing as Standard Webhooks says, secrets, endpoints, the backoff."""

from __future__ import annotations

import pytest

from jobdesk.errors import InvalidInput, Unauthorized
from jobdesk.webhooks import (
    BACKOFF_SECONDS,
    check_address,
    check_url,
    new_secret,
    next_delay,
    parse_secret,
    sign,
    verify,
)

# The test vector of the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TIME, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_is_the_standard_webhooks_one() -> None:
    assert sign(parse_secret(SPEC_SECRET), SPEC_ID, SPEC_TIME, SPEC_BODY) == SPEC_SIGNATURE


def test_a_receiver_verifies_and_refuses_altered_or_replayed_deliveries() -> None:
    headers = {
        "Webhook-Id": SPEC_ID,
        "Webhook-Timestamp": str(SPEC_TIME),
        "Webhook-Signature": f"v1,bm90IGl0 {SPEC_SIGNATURE}",
    }
    assert verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIME + 10) == SPEC_ID
    with pytest.raises(Unauthorized, match="matches"):
        verify(SPEC_SECRET, headers, SPEC_BODY + b" ", now=SPEC_TIME)
    with pytest.raises(Unauthorized, match="too far"):
        verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIME + 301)
    with pytest.raises(Unauthorized, match="headers"):
        verify(SPEC_SECRET, {"webhook-id": SPEC_ID}, SPEC_BODY)
    with pytest.raises(Unauthorized):
        verify(new_secret(), headers, SPEC_BODY, now=SPEC_TIME)


def test_secrets_are_whsec_base64_of_at_least_24_bytes() -> None:
    assert len(parse_secret(new_secret())) == 32
    for bad in ("hunter2", "whsec_c2hvcnQ=", "whsec_!!!", 42):
        with pytest.raises(InvalidInput) as caught:
            parse_secret(bad)
        assert caught.value.field == "secret"


def test_endpoints_are_https_and_public_unless_allowed() -> None:
    assert check_url("https://example.com/hook") == "https://example.com/hook"
    assert check_url("http://example.com/hook", allow_http=True)
    for bad in ("http://example.com/hook", "ftp://x/y", "https:///nohost", "", "x" * 2001):
        with pytest.raises(InvalidInput):
            check_url(bad)
    check_address("example.com", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    for private in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1",
                    "::ffff:127.0.0.1", "0.0.0.0", "fd00::1"):  # fmt: skip
        with pytest.raises(InvalidInput, match="private"):
            check_address("h", ["93.184.215.14", private])
        check_address("h", [private], allow_private=True)
    with pytest.raises(InvalidInput, match="resolve"):
        check_address("nowhere.invalid", [])


def test_retries_back_off_for_more_than_a_day_then_stop() -> None:
    delays = [next_delay(tries) for tries in range(1, len(BACKOFF_SECONDS) + 2)]
    assert delays[-1] is None
    numbers = [delay for delay in delays if delay is not None]
    assert numbers == sorted(numbers)
    assert sum(numbers) > 24 * 3600
    assert next_delay(0) == 0.0
