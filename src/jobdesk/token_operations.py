"""TokenOperations: the bearer tokens of workers, users and admins.

Create (the plaintext is shown once; only a hash is stored), verify, revoke and
list them. A token is checked in constant time against the stored hash, and
refused once revoked or expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jobdesk import tokens, validation
from jobdesk.desk_base import DeskBase
from jobdesk.errors import InvalidInput, Unauthorized
from jobdesk.models import TokenRecord, WorkerTokenInfo
from jobdesk.store import Store

__all__ = ["TokenOperations", "verify_token"]


class TokenOperations(DeskBase):
    """The token operations of :class:`jobdesk.JobDesk`."""

    async def create_worker_token(
        self,
        name: str,
        *,
        types: str | Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        """A new worker token named ``name``, optionally limited to job types.

        The plaintext is returned once and never stored; keep it secret.
        """
        name = validation.token_name(name)
        allowed = validation.job_types(types, self.types)
        return await self._issue("worker", name, allowed, expires_at)

    async def revoke_worker_token(self, name: str) -> int:
        """Revoke every live token named ``name``; how many were revoked."""
        return await self.store.revoke_tokens("worker", validation.token_name(name))

    async def list_worker_tokens(self) -> list[WorkerTokenInfo]:
        """Every worker token, newest first, without secrets."""
        return [
            WorkerTokenInfo(r.subject, r.types, r.created_at, r.expires_at, r.revoked_at)
            for r in await self.store.list_tokens("worker")
        ]

    async def create_user_token(self, user_id: str, *, expires_at: datetime | None = None) -> str:
        """A bearer token for ``user_id`` (for the HTTP API); shown once, stored hashed."""
        return await self._issue(
            "user", validation.principal_id("user_id", user_id), None, expires_at
        )

    async def verify_user_token(self, token: str) -> str:
        """The user id a user token stands for; :class:`~jobdesk.errors.Unauthorized` otherwise."""
        return (await verify_token(self.store, token, "user")).subject

    async def revoke_user_tokens(self, user_id: str) -> int:
        """Revoke every token of ``user_id``; how many were revoked."""
        return await self.store.revoke_tokens("user", validation.principal_id("user_id", user_id))

    async def create_admin_token(self, name: str, *, expires_at: datetime | None = None) -> str:
        """A new admin token (``jda_...``, for the operator's dashboard) named ``name``.

        The plaintext is returned once and never stored; keep it secret.
        """
        name = validation.token_name(name)
        live = [r for r in await self.store.list_tokens("admin") if r.revoked_at is None]
        if any(record.subject == name for record in live):
            raise InvalidInput("name", f"a live admin token named {name!r} exists; revoke it first")
        return await self._issue("admin", name, None, expires_at)

    async def verify_admin_token(self, token: str) -> str:
        """The name of an admin token; :class:`~jobdesk.errors.Unauthorized` otherwise."""
        return (await verify_token(self.store, token, "admin")).subject

    async def revoke_admin_token(self, name: str) -> int:
        """Revoke every live admin token named ``name``; how many were revoked."""
        return await self.store.revoke_tokens("admin", validation.token_name(name))

    async def _issue(
        self,
        kind: tokens.TokenKind,
        subject: str,
        types: frozenset[str] | None,
        expires_at: datetime | None,
    ) -> str:
        now = await self.store.now()
        if expires_at is not None:
            expires_at = validation.aware_datetime("expires_at", expires_at)
            if expires_at <= now:
                raise InvalidInput("expires_at", "must be in the future")
        token, parsed = tokens.generate(kind)
        record = TokenRecord(
            parsed.key_id, kind, subject, parsed.secret_hash, now, types, expires_at
        )
        await self.store.insert_token(record)
        return token


async def verify_token(store: Store, token: object, kind: tokens.TokenKind) -> TokenRecord:
    """The live record of a ``kind`` token; :class:`~jobdesk.errors.Unauthorized` otherwise."""
    parsed = tokens.parse(token, kind)
    record = await store.get_token(kind, parsed.key_id)
    if not tokens.matches(parsed, None if record is None else record.secret_hash):
        raise Unauthorized(f"unknown {kind} token")
    assert record is not None  # matches() is False for a missing record
    if record.revoked_at is not None:
        raise Unauthorized(f"this {kind} token was revoked")
    if record.expires_at is not None and record.expires_at <= await store.now():
        raise Unauthorized(f"this {kind} token expired at {record.expires_at.isoformat()}")
    return record
