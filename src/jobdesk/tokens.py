"""Token format: a recognisable prefix, a public key id, a secret and a checksum.

``jdw_`` (worker), ``jdu_`` (user) or ``jda_`` (admin: the operator's dashboard),
then 12 characters of key id, 32 of secret and 6 of CRC32 checksum, all base62. The
checksum lets a mistyped or truncated token be refused without a query; the key id
finds the row; the SHA-256 of the whole token is compared with the stored hash in constant time.
Only the hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from dataclasses import dataclass
from typing import Literal

from jobdesk.errors import Unauthorized

TokenKind = Literal["worker", "user", "admin"]

PREFIXES: dict[TokenKind, str] = {"worker": "jdw_", "user": "jdu_", "admin": "jda_"}
_ALPHABET = string.digits + string.ascii_letters
_KEY_ID_LENGTH = 12
_SECRET_LENGTH = 32
_CHECKSUM_LENGTH = 6
_BODY_LENGTH = _KEY_ID_LENGTH + _SECRET_LENGTH
TOKEN_LENGTH = 4 + _BODY_LENGTH + _CHECKSUM_LENGTH


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A well-formed token: which row to look up and what hash it must match."""

    kind: TokenKind
    key_id: str
    secret_hash: bytes


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode("ascii"))
    chars = []
    for _ in range(_CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def hash_token(token: str) -> bytes:
    """The SHA-256 digest stored in place of the token."""
    return hashlib.sha256(token.encode("ascii")).digest()


def generate(kind: TokenKind) -> tuple[str, ParsedToken]:
    """A new token (shown to its owner once) and what the store keeps of it."""
    body = _random(_BODY_LENGTH)
    token = PREFIXES[kind] + body + _checksum(body)
    return token, ParsedToken(kind, body[:_KEY_ID_LENGTH], hash_token(token))


def parse(token: object, kind: TokenKind) -> ParsedToken:
    """Check a token's shape and checksum without touching the database."""
    prefix = PREFIXES[kind]
    if not isinstance(token, str) or not token.startswith(prefix):
        article = "an" if kind == "admin" else "a"
        raise Unauthorized(f"not {article} {kind} token: {kind} tokens start with {prefix!r}")
    if len(token) != TOKEN_LENGTH or not all(char in _ALPHABET for char in token[4:]):
        raise Unauthorized(f"malformed {kind} token: check that it was copied whole")
    body, checksum = token[4 : 4 + _BODY_LENGTH], token[4 + _BODY_LENGTH :]
    if not hmac.compare_digest(checksum, _checksum(body)):
        raise Unauthorized(f"malformed {kind} token: checksum mismatch, check for typos")
    return ParsedToken(kind, body[:_KEY_ID_LENGTH], hash_token(token))


def matches(parsed: ParsedToken, stored_hash: bytes | None) -> bool:
    """Constant-time comparison with the stored hash (a missing row compares too)."""
    expected = stored_hash if stored_hash is not None else b"\0" * 32
    return hmac.compare_digest(parsed.secret_hash, expected) and stored_hash is not None
