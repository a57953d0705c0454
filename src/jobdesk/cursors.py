"""Opaque, tamper-checked cursors for keyset pagination of a user's jobs.

A cursor carries the id of the last job on a page and an HMAC over that id and
the user it was issued to, keyed by a secret kept in the database (so every
process of one deployment accepts every other's cursors). A cursor edited by
hand, or taken from another user, is refused before it reaches a query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from jobdesk import validation
from jobdesk.errors import InvalidInput

_MAC_BYTES = 12
_ID_BYTES = 26


def _mac(secret: bytes, user_id: str, last_id: str) -> bytes:
    message = f"{user_id}\x1f{last_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def encode(secret: bytes, user_id: str, last_id: str) -> str:
    """The cursor for the page after the job ``last_id``."""
    raw = last_id.encode("ascii") + _mac(secret, user_id, last_id)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


_RULE = "must be the `next_cursor` of an earlier page, unchanged"


def decode(secret: bytes, user_id: str, cursor: object) -> str:
    """The job id a cursor continues after, or :class:`InvalidInput` if it was altered."""
    if not isinstance(cursor, str) or len(cursor) > 64:
        raise InvalidInput("cursor", _RULE)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput("cursor", _RULE) from None
    if len(raw) != _ID_BYTES + _MAC_BYTES:
        raise InvalidInput("cursor", _RULE)
    last_id_bytes, mac = raw[:_ID_BYTES], raw[_ID_BYTES:]
    try:
        last_id = validation.job_id(last_id_bytes.decode("ascii"), field="cursor")
    except UnicodeDecodeError:
        raise InvalidInput("cursor", _RULE) from None
    if not hmac.compare_digest(mac, _mac(secret, user_id, last_id)):
        raise InvalidInput("cursor", "was altered or issued for another user")
    return last_id
