"""Webhooks: job and group transitions delivered to the host application, signed, at least once.

The rules, all here: what an endpoint may be (:func:`check_url`, :func:`check_address`:
https, and no loopback, link-local or private address unless the operator allows it),
what a secret must be (:func:`parse_secret`), how a delivery is signed (:func:`sign`,
the Standard Webhooks scheme) and checked by a receiver (:func:`verify`), and when a
failed delivery is tried again (:func:`next_delay`: exponential backoff over more than
24 hours, then dead).

Signing follows https://www.standardwebhooks.com: the headers ``webhook-id`` (the
delivery's id: the same on every retry, so a receiver dedupes on it),
``webhook-timestamp`` (seconds since 1970) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``), keyed by the secret's bytes
(``whsec_<base64>``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from jobdesk.errors import InvalidInput, Unauthorized
from jobdesk.groups import GroupStatus
from jobdesk.models import JobStatus

__all__ = [
    "BACKOFF_SECONDS",
    "EVENTS",
    "GROUP_EVENTS",
    "JOB_EVENTS",
    "SECRET_PREFIX",
    "Delivery",
    "DeliveryState",
    "Outcome",
    "Webhook",
    "check_address",
    "check_url",
    "new_secret",
    "next_delay",
    "parse_events",
    "parse_secret",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the secrets' prefix, not a secret
#: the fewest bytes a secret may hold
MIN_SECRET_BYTES = 24
#: ``job.<status>``: a job entered that status (one per status a job enters)
JOB_EVENTS = tuple(f"job.{status.value}" for status in JobStatus)
#: ``group.<status>``: a group's status (:func:`jobdesk.groups.summarize`) became that one
GROUP_EVENTS = tuple(f"group.{status.value}" for status in GroupStatus)
#: the events a webhook may ask for
EVENTS = JOB_EVENTS + GROUP_EVENTS
#: the wait before each retry of a failed delivery: 28.6 hours in all, then dead
BACKOFF_SECONDS = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 46800)
#: how far a receiver accepts a ``webhook-timestamp`` from its own clock, in seconds
TOLERANCE_SECONDS = 300

DeliveryState = str
"""``pending`` (to send, maybe again), ``delivered`` or ``dead`` (retries spent)."""


@dataclass(frozen=True, slots=True)
class Webhook:
    """An endpoint of a user's or a project's transitions (exactly one of the two)."""

    id: str
    url: str
    #: the job statuses it receives (``job.<status>`` events)
    statuses: frozenset[JobStatus]
    created_at: datetime
    user_id: str | None = None
    project_id: str | None = None
    #: the operator allowed http:// (not https)
    allow_http: bool = False
    #: the operator allowed loopback, link-local and private addresses
    allow_private: bool = False
    #: ``whsec_...``; shown to operators, never in a delivery
    secret: str = ""
    #: the group statuses it receives (``group.<status>`` events)
    group_statuses: frozenset[GroupStatus] = frozenset()

    @property
    def events(self) -> list[str]:
        """The events it receives, as :func:`parse_events` reads them."""
        return sorted(
            [f"job.{status.value}" for status in self.statuses]
            + [f"group.{status.value}" for status in self.group_statuses]
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One transition to deliver to one webhook: its outbox row.

    A job's (``subject`` ``job``: ``job_id`` is the job's id, ``status`` a
    :class:`~jobdesk.models.JobStatus`) or a group's (``subject`` ``group``: ``job_id``
    is the group's id, ``status`` a :class:`~jobdesk.groups.GroupStatus`).
    """

    id: str
    webhook_id: str
    #: the job's id, or the group's for a group event
    job_id: str
    #: the status the job (or group) entered (the event is ``<subject>.<status>``)
    status: JobStatus | GroupStatus
    attempt: int
    #: when the transition happened
    at: datetime
    state: DeliveryState
    #: sends made so far
    tries: int = 0
    next_attempt_at: datetime | None = None
    last_status: int | None = None
    #: the start of the last response's body, or the error that stopped the send
    last_response: str | None = None
    delivered_at: datetime | None = None
    #: ``job`` or ``group``
    subject: str = "job"

    @property
    def event(self) -> str:
        """The event type: ``job.<status>`` or ``group.<status>``."""
        return f"{self.subject}.{self.status.value}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed delivery, for the store to record."""

    delivery_id: str
    #: delivered, pending (to send again) or dead
    state: DeliveryState
    #: seconds from now to the next try (when pending)
    delay: float
    last_status: int | None
    last_response: str | None
    #: a send was made (False: handed back unsent, behind a failure of its job)
    counted: bool = True

    @property
    def delivered(self) -> bool:
        """Whether the receiver took it (a 2xx answer)."""
        return self.state == "delivered"


def parse_events(events: object) -> tuple[frozenset[JobStatus], frozenset[GroupStatus]]:
    """The job and group statuses a webhook's ``events`` ask for (None: every event);
    InvalidInput naming ``events`` for an empty list or an unknown event."""
    if events is None:
        return frozenset(JobStatus), frozenset(GroupStatus)
    if isinstance(events, str | bytes) or not isinstance(events, Iterable):
        raise InvalidInput("events", f"must be a non-empty list of {list(EVENTS)}")
    found = list(events)
    if not found:
        raise InvalidInput("events", f"must be a non-empty list of {list(EVENTS)}")
    unknown = [event for event in found if event not in EVENTS]
    if unknown:
        raise InvalidInput("events", f"unknown events {unknown}: use {list(EVENTS)}")
    return (
        frozenset(JobStatus(event.removeprefix("job.")) for event in found if event in JOB_EVENTS),
        frozenset(
            GroupStatus(event.removeprefix("group.")) for event in found if event in GROUP_EVENTS
        ),
    )


def new_secret() -> str:
    """A fresh random secret, ``whsec_`` and 32 bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def parse_secret(secret: object) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret of at least 24 bytes, or InvalidInput."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidInput("secret", f"must start with {SECRET_PREFIX!r} (then base64)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("secret", "must be whsec_ followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidInput("secret", f"is too short: at least {MIN_SECRET_BYTES} random bytes")
    return key


def check_url(url: object, *, allow_http: bool = False) -> str:
    """An endpoint URL: https (http only if allowed), a host, no credentials, at most 2000
    characters; else InvalidInput naming ``url``."""
    if not isinstance(url, str) or not 0 < len(url) <= 2000:
        raise InvalidInput("url", "must be a URL of at most 2000 characters")
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise InvalidInput("url", "must be https:// (http:// only if the operator allows it)")
    if not parts.hostname or parts.username or parts.password:
        raise InvalidInput("url", "must name a host, without user or password")
    return url


def check_address(host: str, addresses: Iterable[str], *, allow_private: bool = False) -> None:
    """Refuse an endpoint whose host resolves to a loopback, link-local, private, reserved,
    multicast or unspecified address (SSRF), unless the operator allows private ones."""
    found = list(addresses)
    if not found:
        raise InvalidInput("url", f"the host {host!r} does not resolve")
    if allow_private:
        return
    for text in found:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if (
            address.is_loopback
            or address.is_link_local
            or address.is_private
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            raise InvalidInput(
                "url",
                f"the host {host!r} resolves to {address}, a loopback, link-local or "
                "private address: refused unless the operator allows private endpoints",
            )


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> str:
    """For a receiver: check a delivery's signature and timestamp; its ``webhook-id``.

    :class:`~jobdesk.errors.Unauthorized` if a header is missing, the timestamp is more
    than 5 minutes from ``now`` (replays), or no ``v1`` signature matches.
    """
    key = parse_secret(secret)
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        raise Unauthorized("missing or malformed webhook-* headers") from None
    if now is not None and abs(now - timestamp) > TOLERANCE_SECONDS:
        raise Unauthorized("the webhook-timestamp is too far from now (a replay?)")
    expected = sign(key, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise Unauthorized("no webhook-signature matches")
    return message_id


def next_delay(tries: int) -> float | None:
    """Seconds before the next try after ``tries`` failed sends; None: give up (dead)."""
    if tries < 1:
        return 0.0
    if tries > len(BACKOFF_SECONDS):
        return None
    return float(BACKOFF_SECONDS[tries - 1])
