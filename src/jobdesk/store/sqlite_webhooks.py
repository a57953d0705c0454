"""SQLiteWebhooks: webhooks and their outbox on SQLite (migrations 7 and 10).

While a webhook asks for a job event, a trigger copies each job's history entry to the
outbox in the transaction that wrote it; with none, the trigger is dropped, so the claim
and complete paths pay nothing for webhooks they do not have. Two more (migration 10)
announce groups' status changes, made only while a webhook asks for group events.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import timedelta

from jobdesk.groups import GroupStatus
from jobdesk.models import Job, JobStatus
from jobdesk.store.common import load_queries
from jobdesk.store.sqlite_groups import SQLiteGroups, datetime_of
from jobdesk.store.sqlite_rows import job_from_row, parse_time, time_text
from jobdesk.webhooks import Delivery, Outcome, Webhook

__all__ = ["SQLiteWebhooks"]

W = load_queries("jobdesk.store", "sqlite_webhooks.sql")


def webhook_from_row(row: sqlite3.Row) -> Webhook:
    """The one place a row becomes a :class:`~jobdesk.webhooks.Webhook`."""
    return Webhook(
        id=row["id"],
        url=row["url"],
        statuses=frozenset(JobStatus(status) for status in json.loads(row["statuses"])),
        group_statuses=frozenset(
            GroupStatus(status) for status in json.loads(row["group_statuses"])
        ),
        created_at=datetime_of(row["created_at"]),
        user_id=row["user_id"],
        project_id=row["project_id"],
        allow_http=bool(row["allow_http"]),
        allow_private=bool(row["allow_private"]),
        secret=row["secret"],
    )


def delivery_from_row(row: sqlite3.Row) -> Delivery:
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
        at=datetime_of(row["at"]),
        state=row["state"],
        tries=row["tries"],
        next_attempt_at=parse_time(row["next_attempt_at"]),
        last_status=row["last_status"],
        last_response=row["last_response"],
        delivered_at=parse_time(row["delivered_at"]),
    )


class SQLiteWebhooks(SQLiteGroups):
    """Webhooks on SQLite: set, removed, listed; the outbox claimed, recorded, redelivered."""

    async def set_webhook(self, webhook: Webhook) -> Webhook:
        def work(connection: sqlite3.Connection) -> Webhook:
            owner = {"user_id": webhook.user_id, "project_id": webhook.project_id}
            existing = connection.execute(
                "SELECT id FROM webhooks WHERE user_id IS :user_id AND project_id IS :project_id",
                owner,
            ).fetchone()
            webhook_id = webhook.id if existing is None else existing[0]
            connection.execute(W["delete_webhook_of_owner"], owner)
            now = self._clock()
            connection.execute(
                W["insert_webhook"],
                {
                    **owner,
                    "id": webhook_id,
                    "url": webhook.url,
                    "secret": webhook.secret,
                    "statuses": json.dumps(sorted(s.value for s in webhook.statuses)),
                    "group_statuses": json.dumps(sorted(s.value for s in webhook.group_statuses)),
                    "allow_http": webhook.allow_http,
                    "allow_private": webhook.allow_private,
                    "created_at": time_text(now),
                },
            )
            _switch_triggers(connection)
            row = connection.execute(
                "SELECT * FROM webhooks WHERE id = :id", {"id": webhook_id}
            ).fetchone()
            return webhook_from_row(row)

        return await self._write(work)

    async def remove_webhook(self, webhook_id: str) -> bool:
        def work(connection: sqlite3.Connection) -> bool:
            removed = connection.execute(W["delete_webhook"], {"id": webhook_id}).rowcount
            connection.execute(W["delete_outbox_of_webhook"], {"webhook_id": webhook_id})
            _switch_triggers(connection)
            return bool(removed)

        return await self._write(work)

    async def list_webhooks(self) -> list[Webhook]:
        def work(connection: sqlite3.Connection) -> list[Webhook]:
            return [webhook_from_row(row) for row in connection.execute(W["list_webhooks"])]

        return await self._run(work)

    async def claim_deliveries(
        self, limit: int, lease_seconds: float
    ) -> list[tuple[Delivery, Webhook]]:
        def work(connection: sqlite3.Connection) -> list[tuple[Delivery, Webhook]]:
            now = self._clock()
            rows = connection.execute(
                W["due_deliveries"], {"now": time_text(now), "limit": limit}
            ).fetchall()
            until = time_text(now + timedelta(seconds=lease_seconds))
            connection.executemany(
                W["lease_delivery"], [{"id": row["id"], "until": until} for row in rows]
            )
            return [(delivery_from_row(row), _webhook_of_claim(row)) for row in rows]

        return await self._write(work)

    async def record_deliveries(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return

        def work(connection: sqlite3.Connection) -> None:
            now = self._clock()
            connection.executemany(
                W["record_delivery"],
                [
                    {
                        "id": int(outcome.delivery_id),
                        "counted": int(outcome.counted),
                        "state": outcome.state,
                        "next_attempt_at": time_text(now + timedelta(seconds=outcome.delay)),
                        "last_status": outcome.last_status,
                        "last_response": outcome.last_response,
                        "delivered_at": time_text(now) if outcome.delivered else None,
                    }
                    for outcome in outcomes
                ],
            )

        await self._write(work)

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []

        def work(connection: sqlite3.Connection) -> list[Job]:
            rows = connection.execute(W["get_jobs"], {"ids": json.dumps(list(job_ids))})
            return [job_from_row(row) for row in rows]

        return await self._run(work)

    async def list_deliveries(
        self, *, state: str | None, webhook_id: str | None, limit: int
    ) -> list[Delivery]:
        params = {"state": state, "webhook_id": webhook_id, "limit": limit}

        def work(connection: sqlite3.Connection) -> list[Delivery]:
            return [
                delivery_from_row(row) for row in connection.execute(W["list_deliveries"], params)
            ]

        return await self._run(work)

    async def redeliver(self, delivery_id: str) -> bool:
        def work(connection: sqlite3.Connection) -> bool:
            params = {"id": int(delivery_id), "now": time_text(self._clock())}
            return bool(connection.execute(W["redeliver"], params).rowcount)

        return await self._write(work)


def _switch_triggers(connection: sqlite3.Connection) -> None:
    """The job trigger made while a webhook asks for a job event, the group triggers
    while one asks for a group event, dropped otherwise; every group tally forgotten (it
    may be from before a time there were none)."""
    (job_webhooks,) = connection.execute(W["count_job_webhooks"]).fetchone()
    connection.execute(W["create_outbox_trigger" if job_webhooks else "drop_outbox_trigger"])
    connection.execute(W["forget_group_tallies"])
    (wanted,) = connection.execute(W["count_group_webhooks"]).fetchone()
    if wanted:
        connection.execute(W["create_group_outbox_trigger"])
        connection.execute(W["create_group_cancel_trigger"])
    else:
        connection.execute(W["drop_group_outbox_trigger"])
        connection.execute(W["drop_group_cancel_trigger"])


def _webhook_of_claim(row: sqlite3.Row) -> Webhook:
    return Webhook(
        id=row["webhook_id"],
        url=row["url"],
        statuses=frozenset(),
        created_at=datetime_of(row["at"]),
        allow_http=bool(row["allow_http"]),
        allow_private=bool(row["allow_private"]),
        secret=row["secret"],
    )
