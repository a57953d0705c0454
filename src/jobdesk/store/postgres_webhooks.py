"""PostgresWebhooks: webhooks and their outbox on PostgreSQL (migrations 0010 and 0013).

A statement trigger on ``job_events`` copies each job's history entries to the outbox in
the transaction that wrote them; it is enabled only while a webhook asks for a job
event, so the claim and complete paths pay nothing for webhooks they do not have. Two
more (migration 0013) announce groups' status changes, enabled only while a webhook asks
for group events.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg.types.json import Jsonb

from jobdesk.groups import GroupStatus
from jobdesk.models import Job, JobStatus
from jobdesk.store.common import load_queries
from jobdesk.store.postgres_connections import Connection
from jobdesk.store.postgres_groups import PostgresGroups
from jobdesk.store.postgres_rows import Row, job_from_row
from jobdesk.webhooks import Delivery, Outcome, Webhook

__all__ = ["PostgresWebhooks"]

W = load_queries("jobdesk.store", "postgres_webhooks.sql")


def webhook_from_row(row: Row) -> Webhook:
    """The one place a row becomes a :class:`~jobdesk.webhooks.Webhook`."""
    return Webhook(
        id=row["id"],
        url=row["url"],
        statuses=frozenset(JobStatus(status) for status in row["statuses"]),
        group_statuses=frozenset(GroupStatus(status) for status in row["group_statuses"]),
        created_at=row["created_at"],
        user_id=row["user_id"],
        project_id=row["project_id"],
        allow_http=row["allow_http"],
        allow_private=row["allow_private"],
        secret=row["secret"],
    )


def delivery_from_row(row: Row) -> Delivery:
    """The one place an outbox row becomes a :class:`~jobdesk.webhooks.Delivery`."""
    return Delivery(
        id=str(row["id"]),
        webhook_id=row["webhook_id"],
        job_id=row["job_id"],
        status=(
            GroupStatus(row["status"]) if row["subject"] == "group" else JobStatus(row["status"])
        ),
        subject=row["subject"],
        attempt=row["attempt"],
        at=row["at"],
        state=row["state"],
        tries=row["tries"],
        next_attempt_at=row["next_attempt_at"],
        last_status=row["last_status"],
        last_response=row["last_response"],
        delivered_at=row["delivered_at"],
    )


class PostgresWebhooks(PostgresGroups):
    """Webhooks on PostgreSQL: set, removed, listed; the outbox claimed, recorded, redelivered."""

    async def set_webhook(self, webhook: Webhook) -> Webhook:
        owner = {"user_id": webhook.user_id, "project_id": webhook.project_id}

        async def work(connection: Connection) -> Webhook:
            rows = await self._fetch_all(
                "SELECT id FROM jobdesk.webhooks WHERE user_id IS NOT DISTINCT FROM "
                "%(user_id)s::text AND project_id IS NOT DISTINCT FROM %(project_id)s::text",
                owner,
                connection,
            )
            webhook_id = rows[0]["id"] if rows else webhook.id
            await connection.execute(W["delete_webhook_of_owner"], owner)
            await connection.execute(
                W["insert_webhook"],
                {
                    **owner,
                    "id": webhook_id,
                    "url": webhook.url,
                    "secret": webhook.secret,
                    "statuses": sorted(status.value for status in webhook.statuses),
                    "group_statuses": sorted(status.value for status in webhook.group_statuses),
                    "allow_http": webhook.allow_http,
                    "allow_private": webhook.allow_private,
                    "now": self._now_param(),
                },
            )
            await self._switch_triggers(connection)
            [row] = await self._fetch_all(
                "SELECT * FROM jobdesk.webhooks WHERE id = %(id)s", {"id": webhook_id}, connection
            )
            return webhook_from_row(row)

        return await self._run(work)

    async def remove_webhook(self, webhook_id: str) -> bool:
        async def work(connection: Connection) -> bool:
            cursor = await connection.execute(W["delete_webhook"], {"id": webhook_id})
            removed = cursor.rowcount
            await connection.execute(W["delete_outbox_of_webhook"], {"webhook_id": webhook_id})
            await self._switch_triggers(connection)
            return bool(removed)

        return await self._run(work)

    async def _switch_triggers(self, connection: Connection) -> None:
        """The job trigger on while a webhook asks for a job event, the group triggers
        while one asks for a group event, off otherwise; every group tally forgotten (it
        may be from before a time they were off)."""
        if await self._fetch_value(W["count_job_webhooks"], {}, connection):
            await connection.execute(W["enable_outbox_trigger"])
        else:
            await connection.execute(W["disable_outbox_trigger"])
        await connection.execute(W["forget_group_tallies"])
        if await self._fetch_value(W["count_group_webhooks"], {}, connection):
            await connection.execute(W["enable_group_outbox_triggers"])
        else:
            await connection.execute(W["disable_group_outbox_triggers"])

    async def list_webhooks(self) -> list[Webhook]:
        async def work(connection: Connection) -> list[Webhook]:
            return [
                webhook_from_row(row)
                for row in await self._fetch_all(W["list_webhooks"], {}, connection)
            ]

        return await self._run(work, write=False, single=True)

    async def claim_deliveries(
        self, limit: int, lease_seconds: float
    ) -> list[tuple[Delivery, Webhook]]:
        params = {"limit": limit, "lease": lease_seconds, "now": self._now_param()}

        async def work(connection: Connection) -> list[tuple[Delivery, Webhook]]:
            await connection.execute(W["lock_claims"])
            rows = await self._fetch_all(W["claim_deliveries"], params, connection)
            rows.sort(key=lambda row: (row["next_attempt_at"], row["id"]))
            return [
                (
                    delivery_from_row(row),
                    Webhook(
                        id=row["webhook_id"],
                        url=row["url"],
                        statuses=frozenset(),
                        created_at=row["at"],
                        allow_http=row["allow_http"],
                        allow_private=row["allow_private"],
                        secret=row["secret"],
                    ),
                )
                for row in rows
            ]

        return await self._run(work)

    async def record_deliveries(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        rows = [
            {
                "id": int(outcome.delivery_id),
                "state": outcome.state,
                "counted": int(outcome.counted),
                "delay": outcome.delay,
                "last_status": outcome.last_status,
                "last_response": outcome.last_response,
            }
            for outcome in outcomes
        ]
        params = {"outcomes": Jsonb(rows), "now": self._now_param()}

        async def work(connection: Connection) -> None:
            await connection.execute(W["record_deliveries"], params)

        await self._run(work, single=True)

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []

        async def work(connection: Connection) -> list[Job]:
            rows = await self._fetch_all(W["get_jobs"], {"ids": list(job_ids)}, connection)
            return [job_from_row(row) for row in rows]

        return await self._run(work, write=False, single=True)

    async def list_deliveries(
        self, *, state: str | None, webhook_id: str | None, limit: int
    ) -> list[Delivery]:
        params = {"state": state, "webhook_id": webhook_id, "limit": limit}

        async def work(connection: Connection) -> list[Delivery]:
            rows = await self._fetch_all(W["list_deliveries"], params, connection)
            return [delivery_from_row(row) for row in rows]

        return await self._run(work, write=False, single=True)

    async def redeliver(self, delivery_id: str) -> bool:
        params = {"id": int(delivery_id), "now": self._now_param()}

        async def work(connection: Connection) -> bool:
            cursor = await connection.execute(W["redeliver"], params)
            return bool(cursor.rowcount)

        return await self._run(work, single=True)
