"""View tokens: short-lived, read-only grants to follow one job or one group.

A host application's backend asks for one (``JobDesk.create_view_token``) and hands
it to its page, so that the browser follows that job's or group's event stream (and
reads its state) directly, without a proxy and without any other credential. It can
read nothing else and change nothing.

A view token is not stored: it is the grant (user, job or group, expiry) and an
HMAC-SHA256 over it, keyed by the deployment's secret (a key of its own,
``signing_key("view-token")``), so every process of a deployment accepts it until it
expires, and none after. ``jdv_<base64url(grant)>~<base64url(mac)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from jobdesk.errors import Unauthorized

__all__ = ["MAX_VIEW_TTL", "VIEW_PREFIX", "ViewGrant", "sign_view", "verify_view"]

VIEW_PREFIX = "jdv_"
#: the longest a view token may live, in seconds (24 h)
MAX_VIEW_TTL = 24 * 3600
_MAC_BYTES = 20
_MAX_LENGTH = 1024

ViewKind = Literal["job", "group"]


@dataclass(frozen=True, slots=True)
class ViewGrant:
    """What a view token allows: reading one job or one group of one user, until a time."""

    user_id: str
    kind: ViewKind
    #: the job's or the group's id
    target_id: str
    expires_at: datetime

    def allows(self, kind: ViewKind, target_id: str) -> bool:
        """Whether the grant covers reading ``kind`` ``target_id``."""
        return self.kind == kind and hmac.compare_digest(self.target_id, target_id)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES]


def sign_view(key: bytes, grant: ViewGrant) -> str:
    """The token for ``grant``, signed with ``key``."""
    document = {
        "u": grant.user_id,
        "k": grant.kind,
        "t": grant.target_id,
        "e": int(grant.expires_at.timestamp()),
    }
    body = _b64(json.dumps(document, separators=(",", ":")).encode())
    return f"{VIEW_PREFIX}{body}~{_b64(_mac(key, body))}"


def verify_view(key: bytes, token: object, now: datetime) -> ViewGrant:
    """The grant of a genuine, unexpired view token; :class:`Unauthorized` otherwise."""
    if not isinstance(token, str) or not token.startswith(VIEW_PREFIX) or len(token) > _MAX_LENGTH:
        raise Unauthorized(f"not a view token: view tokens start with {VIEW_PREFIX!r}")
    body, _, mac = token[len(VIEW_PREFIX) :].partition("~")
    try:
        genuine = hmac.compare_digest(_unb64(mac), _mac(key, body))
        document = json.loads(_unb64(body)) if genuine else None
    except (binascii.Error, ValueError, UnicodeDecodeError):
        genuine = False
    if not genuine or not isinstance(document, dict):
        raise Unauthorized("invalid view token: ask the application for a new one")
    grant = ViewGrant(
        str(document["u"]),
        "group" if document["k"] == "group" else "job",
        str(document["t"]),
        datetime.fromtimestamp(int(document["e"]), UTC),
    )
    if grant.expires_at <= now:
        raise Unauthorized("the view token expired: ask the application for a new one")
    return grant
