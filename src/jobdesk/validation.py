"""Checks for every public argument, run before anything reaches a query.

Each function returns the value in its canonical form or raises
:class:`~jobdesk.errors.InvalidInput` naming the field and the rule.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from jobdesk.errors import InvalidInput
from jobdesk.ids import JOB_ID_PATTERN
from jobdesk.models import JobStatus, JSONValue, Worker

TYPE_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
MAX_ID_LENGTH = 128
MAX_PRIORITY = 1000
MAX_ATTEMPTS = 100
MAX_PAGE = 100
MAX_MESSAGE = 1000
#: the highest attempt number: the stores keep attempts in a 32-bit integer column
MAX_ATTEMPT = 2**31 - 1
#: the most jobs (or completions) one batch call may carry
MAX_BATCH = 1000
#: the largest share a user may be given (``set_user_limits(weight=)``)
MAX_WEIGHT = 1000.0
#: the longest a worker may snooze a job: 30 days, in seconds
MAX_SNOOZE_SECONDS = 30 * 86_400.0
# PostgreSQL cannot store U+0000 in text or jsonb; refusing it everywhere keeps the
# stores alike.
_NUL_RULE = "must not contain the NUL character (U+0000)"


def principal_id(field: str, value: object) -> str:
    """A user or project id: 1-128 printable characters."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidInput(field, f"must be 1-{MAX_ID_LENGTH} characters long")
    if not value.isprintable():
        raise InvalidInput(field, "must contain only printable characters")
    return value


def optional_principal_id(field: str, value: object) -> str | None:
    """A project id or None."""
    return None if value is None else principal_id(field, value)


def job_id(value: object, field: str = "job_id") -> str:
    """A job id as jobdesk makes them (26 characters of Crockford base32)."""
    if not isinstance(value, str) or not JOB_ID_PATTERN.fullmatch(value):
        raise InvalidInput(
            field, "must be a job id (26 characters, 0-9 and A-Z without I, L, O, U)"
        )
    return value


def job_type(value: object, registered: Collection[str] | None = None, field: str = "type") -> str:
    """A job type: one of ``registered`` when given, else ``[a-z0-9_.-]{1,64}``."""
    if not isinstance(value, str) or not TYPE_PATTERN.fullmatch(value):
        raise InvalidInput(field, "must match [a-z0-9_.-]{1,64}")
    if registered is not None and value not in registered:
        raise InvalidInput(
            field, f"must be one of the registered types: {', '.join(sorted(registered))}"
        )
    return value


def job_types(
    value: object, registered: Collection[str] | None = None, field: str = "types"
) -> frozenset[str] | None:
    """None, one type, or a non-empty collection of types."""
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({job_type(value, registered, field)})
    if not isinstance(value, Iterable) or isinstance(value, Mapping | bytes):
        raise InvalidInput(field, "must be a type or a list of types")
    types = frozenset(job_type(item, registered, field) for item in value)
    if not types:
        raise InvalidInput(field, "must name at least one type")
    if len(types) > MAX_PAGE:
        raise InvalidInput(field, f"must name at most {MAX_PAGE} types")
    return types


def statuses(value: object, field: str = "status") -> tuple[JobStatus, ...] | None:
    """None, one status, or a non-empty collection of statuses."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable) or isinstance(items, Mapping | bytes):
        raise InvalidInput(field, "must be a status or a list of statuses")
    allowed = ", ".join(status.value for status in JobStatus)
    result: list[JobStatus] = []
    for item in items:
        try:
            status = JobStatus(item)
        except ValueError:
            raise InvalidInput(field, f"must be one of: {allowed}") from None
        if status not in result:
            result.append(status)
    if not result:
        raise InvalidInput(field, "must name at least one status")
    return tuple(result)


def integer(field: str, value: object, low: int, high: int) -> int:
    """An int (not a bool) in ``[low, high]``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(field, "must be an integer")
    if not low <= value <= high:
        raise InvalidInput(field, f"must be between {low} and {high}")
    return value


def attempt(value: object, field: str = "attempt") -> int:
    """An attempt number a worker holds: 1 to :data:`MAX_ATTEMPT`."""
    return integer(field, value, 1, MAX_ATTEMPT)


def weight(value: object, field: str = "weight") -> float:
    """A user's share: a finite number above 0 and at most :data:`MAX_WEIGHT`."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 < value <= MAX_WEIGHT
    ):
        raise InvalidInput(field, f"must be a finite number above 0 and at most {MAX_WEIGHT:g}")
    return float(value)


def seconds(field: str, value: object, high: float) -> float:
    """A finite number of seconds (int or float, not a bool) from 0 to ``high``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidInput(field, "must be a number of seconds")
    if not 0 <= value <= high:
        raise InvalidInput(field, f"must be between 0 and {high:g} seconds")
    return float(value)


def interval(field: str, value: object, *, zero: bool = False) -> float:
    """A positive, finite number of seconds (``zero``: 0 allowed too), such as a poll
    interval or a grace period; int or float, not a bool."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero)
    ):
        kind = "non-negative" if zero else "positive"
        raise InvalidInput(field, f"must be a {kind}, finite number of seconds")
    return float(value)


def page_limit(value: object) -> int:
    """A page size or claim batch: 1-100."""
    return integer("limit", value, 1, MAX_PAGE)


def progress(value: object) -> float:
    """A progress percentage: a finite number from 0 to 100."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidInput("progress", "must be a number")
    if not 0 <= value <= 100:
        raise InvalidInput("progress", "must be between 0 and 100")
    return float(value)


def message(value: object, field: str = "message") -> str | None:
    """An optional human-readable message of at most 1000 characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    if len(value) > MAX_MESSAGE:
        raise InvalidInput(field, f"must be at most {MAX_MESSAGE} characters long")
    return storable_text(field, value)


def storable_text(field: str, value: str) -> str:
    """``value`` if every store can keep it: no NUL, no lone surrogate."""
    if "\x00" in value:
        raise InvalidInput(field, _NUL_RULE)
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidInput(field, "must be valid Unicode (no lone surrogates)") from None
    return value


#: the earliest datetime accepted as input
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
#: the first datetime refused as input: far enough from year 9999 for any arithmetic
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def aware_datetime(field: str, value: object) -> datetime:
    """A timezone-aware datetime between 1900 and 9000 (``EARLIEST``, ``LATEST``), in UTC.

    The range leaves room for the arithmetic done on times (a lease, a backoff, an
    offset) far from the calendar's end, where Python's datetime overflows.
    """
    if not isinstance(value, datetime):
        raise InvalidInput(field, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, "must be timezone-aware (for example datetime.now(UTC))")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise InvalidInput(field, "must be between 1900-01-01 and 9000-01-01 (UTC)")
    return utc


def idempotency_key(value: object) -> str | None:
    """An optional client-chosen key of 1-255 printable characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not value.isprintable():
        raise InvalidInput("idempotency_key", "must be 1-255 printable characters")
    return value


def token_name(value: object) -> str:
    """A worker token's name: ``[A-Za-z0-9_.:@-]{1,64}``."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidInput("name", "must match [A-Za-z0-9_.:@-]{1,64}")
    return value


def worker(value: object) -> Worker:
    """A :class:`Worker` from ``verify_worker_token``."""
    if not isinstance(value, Worker):
        raise InvalidInput("worker", "must be the Worker returned by verify_worker_token")
    return value


def json_document(field: str, value: object, max_bytes: int, max_depth: int) -> str:
    """``value`` serialized as compact JSON, within the size and depth limits."""
    _check_depth(field, value, max_depth)
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"must be JSON-serialisable ({exc})") from None
    # Limits are in bytes: a character may take up to four of them in UTF-8.
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise InvalidInput(field, "must be valid Unicode (no lone surrogates)") from None
    if size > max_bytes:
        raise InvalidInput(field, f"must be at most {max_bytes} bytes of JSON")
    return text


def _check_depth(field: str, value: object, max_depth: int) -> None:
    # Iterative, so a hostile 100,000-deep document cannot exhaust the stack.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
            for key in item:
                if not isinstance(key, str):
                    raise InvalidInput(field, "object keys must be strings")
                if "\x00" in key:
                    raise InvalidInput(field, _NUL_RULE)
        elif isinstance(item, list | tuple):
            children = item
        else:
            if isinstance(item, str) and "\x00" in item:
                raise InvalidInput(field, _NUL_RULE)
            continue
        if depth > max_depth:
            raise InvalidInput(field, f"must be nested at most {max_depth} levels deep")
        stack.extend((child, depth + 1) for child in children)


def error_payload(value: object) -> dict[str, JSONValue]:
    """A failure description: a message string or ``{message, code?, details?}``."""
    if isinstance(value, BaseException):
        value = {"message": str(value) or type(value).__name__, "code": type(value).__name__}
    if isinstance(value, str):
        value = {"message": value}
    if not isinstance(value, Mapping):
        raise InvalidInput("error", "must be a message or a mapping with 'message'")
    unknown = set(value) - {"message", "code", "details"}
    if unknown:
        raise InvalidInput(
            "error", f"unknown keys {sorted(unknown, key=repr)}; allowed: message, code, details"
        )
    text = value.get("message")
    if not isinstance(text, str) or not text:
        raise InvalidInput("error.message", "must be a non-empty string")
    payload: dict[str, JSONValue] = {"message": storable_text("error.message", text[:MAX_MESSAGE])}
    code = value.get("code")
    if code is not None:
        if not isinstance(code, str) or len(code) > 128:
            raise InvalidInput("error.code", "must be a string of at most 128 characters")
        payload["code"] = storable_text("error.code", code)
    if value.get("details") is not None:
        json_document("error.details", value["details"], 64 * 1024, 32)
        payload["details"] = value["details"]
    return payload
